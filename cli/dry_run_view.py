"""`generate --dry-run`: the requests a run would send, per step, with their tokens and cost.

Plain lines (no table): they read the same in a terminal, a log file and a CI job's output.
"""

from __future__ import annotations

from rich.console import Console

from auto_label.estimate import DEFAULT_TOKENS, DryRun, StepPlan, TokenMeans, usd


def _tokens(prompt: int, answer: int, thinking: int) -> str:
    text = f"{prompt:,} in + {answer:,} out"
    return text + (f" + {thinking:,} thinking" if thinking else "")


def _source(means: TokenMeans) -> str:
    if means.source == "default":
        return "a default, no earlier answer"
    plural = "" if means.responses == 1 else "s"
    where = "" if means.source == "history" else " of other models"
    return f"mean of {means.responses:,} earlier answer{plural}{where}"


def step_line(plan: StepPlan, price_known: bool) -> str:
    """`step1_grounding: ask 5, re-read 0, reuse 3, skip 0 -> 5 requests, ... tokens (...), $x`"""
    cost = usd(plan.cost or 0.0) if price_known else "unknown price"
    line = (f"{plan.name}: ask {plan.ask:,}, re-read {plan.reread:,}, reuse {plan.reuse:,}, "
            f"skip {plan.skip:,} -> {plan.requests:,} requests")
    if not plan.requests:
        return line
    return f"{line}, {_tokens(*plan.total_tokens)} tokens ({_source(plan.tokens)}), {cost}"


def print_dry_run(console: Console, report: DryRun) -> None:
    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    images = f"{report.images:,} input images" if report.images == report.input_images else \
        f"{report.images:,} of the {report.input_images:,} input images (--retry-failed)"
    moved = f", {report.rehashed:,} moved or touched (read: same content)" \
        if report.rehashed else ""
    say(f"dry run (no request sent, nothing written): {report.pipeline}, {report.backend} "
        f"{report.model} at {report.endpoint}; {images}, {report.unseeded:,} of them not seeded "
        f"yet{moved}; results_dir {report.results_dir}"
        + ("" if report.ledger else " (no ledger yet: everything is new)"))
    known = report.price is not None
    for plan in report.steps:
        say("  " + step_line(plan, known))
    cost = report.cost
    say(f"in all: {report.requests:,} requests (retries not counted), "
        f"{_tokens(*report.tokens)} tokens, "
        + (f"about {usd(cost)}" if cost is not None else "cost unknown"))
    if report.price is None:
        say(f"unknown price: no table entry for {report.model!r}; set "
            f"{report.pipeline}.vlm.{report.backend}.price: {{input_per_million: ..., "
            "output_per_million: ...} to see costs")
    else:
        price = report.price
        say(f"price: ${price.input_per_million:g} in, ${price.output_per_million:g} out per "
            f"million tokens ({price.source})")
    if any(plan.ask and plan.tokens.source == "default" for plan in report.steps):
        say(f"'a default' is a guess, not a measurement: {DEFAULT_TOKENS.prompt:,.0f} in + "
            f"{DEFAULT_TOKENS.answer:,.0f} out tokens per request, as the ledger holds no "
            "earlier answer to that step")
    if report.max_cost is not None and cost is not None:
        fits = "fit in it" if cost <= report.max_cost else "stop before the end"
        say(f"workflow.max_cost {usd(report.max_cost)} (per run): this run would {fits}")
    for note in report.notes:
        say(f"note: {note}")
