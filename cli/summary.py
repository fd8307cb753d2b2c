"""The end-of-run summary: per step outcome counts, failures by kind, where the outputs are."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from auto_label.api import OUTCOMES, RunSummary
from auto_label.probing import ProbeReport


def print_summary(console: Console, summary: RunSummary) -> None:
    table = Table(title=f"{summary.pipeline}: {summary.images} images", title_justify="left")
    table.add_column("step")
    for outcome in OUTCOMES:
        table.add_column(outcome, justify="right")
    table.add_column("not reached", justify="right")
    table.add_column("of them nothing found", justify="right")
    for number, name in summary.steps:
        counts = summary.counts.get(number) or Counter()
        reached = sum(counts.values())
        table.add_row(name, *(str(counts.get(o, 0)) for o in OUTCOMES),
                      str(summary.images - reached), str(summary.nothing_found.get(number, 0)))
    console.print(table)
    for alarm in summary.alarms:
        console.print(f"[bold yellow]WARNING:[/] {escape(alarm)}")
    console.print(f"requests sent: {summary.requests}")
    if summary.failures:
        kinds = ", ".join(f"{kind} {n}" for kind, n in summary.failures.most_common())
        console.print(f"[red]failures by kind:[/] {kinds}")
        for example in summary.examples:
            console.print(f"  [dim]-[/] {escape(example)}", highlight=False)
    for reason, count in summary.skip_reasons.most_common(3):
        console.print(f"[yellow]skipped[/] {count}: {escape(reason)}", highlight=False)
    if summary.warnings:
        console.print(f"[yellow]{len(summary.warnings)} input problem(s) skipped[/], e.g.:")
        for warning in summary.warnings[:3]:
            console.print(f"  [dim]-[/] {escape(warning)}", highlight=False)
    print_outputs(console, summary.outputs, summary.records)


def print_outputs(console: Console, outputs: list[Path], records: int) -> None:
    for path in outputs:
        if path.is_dir():
            console.print(f"wrote legacy files in {path}", highlight=False, markup=False)
        else:
            console.print(f"wrote {path} ({records} records)", highlight=False, markup=False)


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
