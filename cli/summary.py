"""The end-of-run summary: per step outcome counts, failures by kind, where the outputs are."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from auto_label.api import OUTCOMES, RunSummary
from auto_label.cli import figures
from auto_label.probing import ProbeReport


def print_summary(console: Console, summary: RunSummary) -> None:
    """The end of a run: outcomes per step; elapsed, requests, tokens, cost (when the price is
    known) and failed attempts by kind; failures with examples, skips, input problems; the
    outputs. Messages are printed as text (never read as markup) and never cut at the width; the
    outcomes are a table where it fits whole, else one line per step."""
    _outcomes(console, summary)
    for alarm in summary.alarms:
        _say(console, ("WARNING: ", "bold yellow"), alarm)
    _figures(console, summary)
    if summary.failures:
        kinds = ", ".join(f"{kind} {figures.number(n)}"
                          for kind, n in summary.failures.most_common())
        _say(console, ("failures by kind: ", "red"), kinds)
        for example in summary.examples:
            _say(console, ("  - ", "dim"), example)
    for reason, count in summary.skip_reasons.most_common(3):
        _say(console, ("skipped ", "yellow"), f"{figures.number(count)}: {reason}")
    if summary.warnings:
        _say(console, (f"{len(summary.warnings)} input problem(s) skipped", "yellow"), ", e.g.:")
        for warning in summary.warnings[:3]:
            _say(console, ("  - ", "dim"), warning)
    print_outputs(console, summary.outputs, summary.records)


COLUMNS = (*OUTCOMES, "not reached", "of them nothing found")


def _outcomes(console: Console, summary: RunSummary) -> None:
    """Per step: its name whole, then each outcome's count."""
    title = f"{summary.pipeline}: {figures.number(summary.images)} images"
    rows: list[tuple[str, list[int]]] = []
    for number, name in summary.steps:
        outcomes = summary.counts.get(number) or Counter()
        reached = sum(outcomes.values())
        rows.append((name, [outcomes.get(o, 0) for o in OUTCOMES]
                     + [summary.images - reached, summary.nothing_found.get(number, 0)]))
    table = Table(title=title, title_justify="left")
    table.add_column("step", no_wrap=True)
    for column in COLUMNS:
        table.add_column(column, justify="right", no_wrap=column != COLUMNS[-1])
    for name, counts in rows:
        table.add_row(name, *(figures.number(n) for n in counts))
    needed = Measurement.get(console, console.options.update_width(10_000), table).minimum
    if needed <= console.width:
        console.print(table)
        return
    _say(console, (title, "italic"))
    for name, counts in rows:  # wrapped between words (a name is one word, so it stays whole)
        console.print(Text.assemble((name, "bold"), ": " + ", ".join(
            f"{figures.number(n)} {column}" for column, n in zip(COLUMNS, counts, strict=True))),
            soft_wrap=False, highlight=False)


def _figures(console: Console, summary: RunSummary) -> None:
    final = summary.final
    if final is None:
        _say(console, f"requests sent: {figures.number(summary.requests)}")
        return
    _say(console, f"elapsed {figures.duration(final.elapsed)}, requests sent: "
                  f"{figures.number(summary.requests)}")
    spent = f", cost {figures.usd(final.cost)}" if final.cost is not None else ""
    _say(console, figures.tokens(final.tokens) + spent)
    if final.retries:
        _say(console, (figures.retries(final), "yellow"))


def _say(console: Console, *parts: str | tuple[str, str]) -> None:
    """One line of plain text and (text, style) pairs: no markup read, never cut or wrapped."""
    console.print(Text.assemble(*parts), soft_wrap=True, highlight=False)


def print_outputs(console: Console, outputs: list[Path], records: int,
                  counts: dict[Path, int] | None = None) -> None:
    """One line per file written; `counts` (file -> entries) where known, else `records` for
    annotations.jsonl-like files."""
    for path in outputs:
        if path.is_dir():
            console.print(f"wrote legacy files in {path}", highlight=False, markup=False)
            continue
        count = counts.get(path) if counts is not None else records
        what = f" ({figures.number(count)} records)" if count is not None else ""
        console.print(f"wrote {path}{what}", highlight=False, markup=False)


def print_probe(console: Console, report: ProbeReport) -> None:
    configured = report.configured
    source = {"spec": "set in the spec", "profile": f"the {configured.profile} profile",
              "default": "the backend's default: no profile knows the model"}[configured.source]
    console.print(f"{report.backend} {report.model}: {report.requests} requests; boxes are read "
                  f"now as {configured.coordinates} ({source})", markup=False)
    for failure in report.failures:
        console.print(f"[red]failed:[/] {escape(failure)}")
    table = Table(title="readings of the answers, best first", title_justify="left")
    table.add_column("reading")
    table.add_column("mean IoU", justify="right")
    table.add_column("objects found", justify="right")
    for entry in report.scores:
        table.add_row(entry.candidate.describe(), f"{entry.mean_iou:.3f}",
                      f"{entry.hits}/{entry.objects}")
    console.print(table)
    if not report.fits:
        console.print(f"[bold red]no reading explains the answers[/] (best mean IoU "
                      f"{report.best.mean_iou:.2f}): the model may not ground objects, or "
                      "answers in a shape the parser does not read; see `auto_label status`")
        return
    console.print("Spec lines that fit:")
    console.print(report.spec_lines(), markup=False, highlight=False)
