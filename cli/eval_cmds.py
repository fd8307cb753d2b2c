"""`auto_label eval`: score a results_dir against ground truth, or two side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from auto_label.cli.app import app, fail, out
from auto_label.errors import AutoLabelError

MISSES_SHOWN = 20


@app.command("eval")
def evaluate_command(
    results_dir: Annotated[Path, typer.Argument(help="A results_dir with a ledger.db.")],
    truth: Annotated[Path, typer.Option(
        "--truth", help="Ground truth: annotations.jsonl-shaped JSONL, COCO JSON or ODVG JSONL.")],
    compare: Annotated[list[Path] | None, typer.Option(
        "--compare", help="Another results_dir scored against the same truth, shown beside "
                          "(repeat for more).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The figures as JSON.")] = False,
    only_recorded: Annotated[bool, typer.Option(
        "--only-recorded", help="Score only the truth images the results have a record of (a "
                                "pilot on part of the data); else the others count as missed.",
    )] = False,
) -> None:
    """Score the records against ground truth: phrase-grounding accuracy (Acc@0.5 and other
    thresholds), recall@k and mean IoU for grounding; region coverage and expression-to-box
    correctness for referring; and the misses."""
    from auto_label.evaluate import evaluate

    try:
        reports = [evaluate(d, truth, only_recorded=only_recorded)
                   for d in [results_dir, *(compare or [])]]
    except AutoLabelError as error:
        raise fail(error) from None
    if as_json:
        payload = [r.to_json() for r in reports]
        out.print(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2),
                  markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"against {truth}", title_justify="left")
    table.add_column("figure")
    for report in reports:
        table.add_column(str(report.results_dir), justify="right")
    names = list(dict.fromkeys(n for r in reports for n in r.figures()))
    for name in names:
        cells = []
        for report in reports:
            value = report.figures().get(name)
            cells.append("-" if value is None else f"{value:,}" if isinstance(value, int)
                         else f"{value:.3f}")
        table.add_row(name, *cells)
    out.print(table)
    misses = reports[0].misses()
    if misses:
        out.print(f"misses of {reports[0].results_dir} ({len(misses)}):", markup=False)
        for line in misses[:MISSES_SHOWN]:
            out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        if len(misses) > MISSES_SHOWN:
            out.print(f"  ... and {len(misses) - MISSES_SHOWN} more (--json lists them all)",
                      markup=False)
