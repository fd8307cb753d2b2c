"""The commands that read a results_dir's ledger: export, status."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auto_label import api
from auto_label.cli.app import app, fail, out
from auto_label.errors import AutoLabelError


@app.command()
def export(
    results_dir: Annotated[Path, typer.Argument(help="A results_dir with a ledger.db.")],
    output_format: Annotated[str | None, typer.Option(
        "--format", help=f"{', '.join(api.EXPORT_FORMATS)} (default: the last run's "
                         "output_format, else jsonl)."
    )] = None,
) -> None:
    """Write annotations.jsonl (and legacy files, if the spec asks) from the ledger."""
    from auto_label.cli.summary import print_outputs

    try:
        result = api.export(results_dir, output_format=output_format)
    except AutoLabelError as error:
        raise fail(error) from None
    print_outputs(out, result.files, result.records)


@app.command()
def status(
    results_dir: Annotated[Path, typer.Argument(help="A results_dir with a ledger.db.")],
    check: Annotated[bool, typer.Option(
        "--check", help="Also run SQLite's integrity check and the ledger's invariants "
                        "(exit 1 if anything is wrong).")] = False,
) -> None:
    """What the ledger holds: runs, images, per-step outcomes, failures, tokens."""
    from auto_label.cli.summary import print_status
    from auto_label.status import ledger_status

    try:
        report = ledger_status(results_dir, check=check)
    except AutoLabelError as error:
        raise fail(error) from None
    print_status(out, report)
    if report.problems:
        raise typer.Exit(1)
