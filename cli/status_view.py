"""`auto_label status` on a terminal: the state of the latest run, the input against what each step
has done, failures, runs with what they spent, and the integrity check."""

from __future__ import annotations

import time

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from auto_label.estimate import usd
from auto_label.status import FailedImage, LedgerStatus, LiveRun, RunReport

SHOWN_KINDS = 5


def hms(seconds: float) -> str:
    """A duration as hh:mm:ss (hours go past 99 if they must)."""
    whole = max(0, round(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def clock(at: float | None) -> str:
    """A unix time as local `YYYY-MM-DD hh:mm:ss`, or `-`."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at is not None else "-"


def dollars(cost: float | None) -> str:
    """US dollars as the whole tool writes them (`estimate.usd`), `-` when unknown."""
    return "-" if cost is None else usd(cost)


def print_status(console: Console, report: LedgerStatus, *, list_failed: bool = False) -> None:
    """The report, readable; `list_failed` lists every failed image with its reason."""
    console.print(f"{report.path}: {report.pipeline or 'no run yet'}, {report.runs:,} run(s), "
                  f"last {report.last_run or '-'}", markup=False)
    if report.live is not None:
        console.print(_live(report.live), markup=False)
    _print_input(console, report)
    for warning in report.warnings:
        console.print(f"[bold yellow]WARNING[/] {escape(warning)}")
    if report.steps:
        console.print(_steps_table(report))
        _print_blocked(console, report)
    _print_failures(console, report, list_failed)
    retried = ", ".join(f"{k} {n:,}" for k, n in report.attempt_failures.most_common())
    console.print(f"requests sent: {report.requests:,}" + (f" (failed attempts: {retried})"
                                                            if retried else ""), markup=False)
    tokens = report.tokens
    console.print(f"tokens: {tokens['prompt']:,} prompt, {tokens['answer']:,} answer, "
                  f"{tokens['thinking']:,} thinking; cost {dollars(report.cost_usd)}",
                  markup=False)
    if report.batch_jobs:
        _print_batch_jobs(console, report)
    if report.history:
        _print_runs(console, report.history)
    if report.problems is not None:
        if report.problems:
            console.print(f"[red]{len(report.problems)} problem(s) found:[/]")
            for problem in report.problems:
                console.print(f"  - {problem}", markup=False)
        else:
            console.print("check: the ledger is sound (integrity_check ok, invariants hold)")


def _print_batch_jobs(console: Console, report: LedgerStatus) -> None:
    """One line for all the provider jobs, one per job still open."""
    jobs = report.batch_jobs
    still = [j for j in jobs if j.open]
    answered = sum(j.finished.answered for j in jobs if j.finished)
    console.print(f"batch jobs: {len(jobs):,}, {len(still):,} open; {answered:,} requests "
                  "answered in closed jobs (`auto_label batches` for each)", markup=False)
    for job in still:
        done = f", {job.completed or 0:,}/{job.total:,} done" if job.total else ""
        console.print(f"  {job.job_id or '(not submitted yet)'}: {job.state}, "
                      f"{len(job.requests):,} requests{done}", markup=False)


def _live(live: LiveRun) -> str:
    who = f"pid {live.pid} on {live.host or '?'}" if live.pid is not None else "pid unknown"
    now = time.time()
    since = f", since {clock(live.since)} ({hms(now - live.since)})" if live.since else ""
    progress = (f", last progress {clock(live.last_progress)} "
                f"({hms(now - live.last_progress)} ago)" if live.last_progress else "")
    return f"running now: {who}{since}{progress}"


def _print_input(console: Console, report: LedgerStatus) -> None:
    size = report.input
    if size.images is None:
        console.print(f"input: cannot be read now ({size.problem}); images seeded: "
                      f"{report.images:,}", markup=False)
        return
    skipped = f", {size.skipped:,} skipped by the reader" if size.skipped else ""
    console.print(f"input: {size.images:,} images, {size.seeded or 0:,} of them seeded{skipped} "
                  f"(images seeded in all: {report.images:,})", markup=False)


def _steps_table(report: LedgerStatus) -> Table:
    """done / of them nothing found / failed / (blocked, when a step is) / pending per step; on
    a narrow screen the nothing-found header wraps rather than the step names being cut."""
    tag = any(step.selected for step in report.steps)
    unselected = tag and not all(step.selected for step in report.steps)
    blocked = any(step.blocked for step in report.steps)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left",
                  caption="* not among the latest run's steps" if unselected else None,
                  caption_justify="left")
    table.add_column("step", no_wrap=True)
    for column in ("done", "of them nothing found", "failed", *(["blocked"] if blocked else []),
                   "pending"):
        table.add_column(column, justify="right", no_wrap=column != "of them nothing found")
    for step in report.steps:
        name = f"{step.name} *" if tag and not step.selected else step.name
        cells = [f"{step.done:,}", f"{step.nothing_found:,}", f"{step.failed:,}",
                 *([f"{step.blocked:,}"] if blocked else []),
                 "-" if step.pending is None else f"{step.pending:,}"]
        table.add_row(escape(name), *cells)
    return table


def _print_blocked(console: Console, report: LedgerStatus) -> None:
    """Why the blocked images cannot run, per step, as `generate` says when it skips them."""
    for step in report.steps:
        if step.blocked:
            needs = " or ".join(step.blocked_by)
            console.print(f"blocked: {step.name} {step.blocked:,} (needs step {needs}, which "
                          "failed)", markup=False, highlight=False)


def _print_failures(console: Console, report: LedgerStatus, list_failed: bool) -> None:
    failed = report.failed_images
    if not failed:
        return
    images = len({f.image_id for f in failed})
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in report.failures.most_common(SHOWN_KINDS))
    more = len(report.failures) - SHOWN_KINDS
    kinds += f" and {more} more kinds" if more > 0 else ""
    hint = "" if list_failed else "; `--failed` lists them"
    console.print(f"[red]failed:[/] {images:,} image(s), {len(failed):,} step(s): "
                  f"{escape(kinds)}{hint}", highlight=False)
    if list_failed:
        for failure in failed:
            console.print(_failure_line(failure), markup=False, highlight=False)


def _failure_line(failure: FailedImage) -> str:
    where = f" [{failure.source}]" if failure.source else ""
    return f"  {failure.image_id}  {failure.step_name}  {failure.kind}: {failure.reason}{where}"


def _print_runs(console: Console, history: list[RunReport]) -> None:
    console.print("runs:")
    width = max(21, *(len(run.phrase) for run in history))
    for run in history:
        console.print(
            f"  {run.number:>3}  {clock(run.started_at)}  {hms(run.duration_s)}  "
            f"{run.phrase:<{width}} {run.requests:>6,} requests  "
            f"{sum(run.tokens.values()):>10,} tokens  cost {dollars(run.cost_usd):>9}  "
            f"{run.new_images:>6,} new images",
            markup=False, highlight=False)
