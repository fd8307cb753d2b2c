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
    failed: Annotated[bool, typer.Option(
        "--failed", help="List every image whose latest attempt at a step failed, with the "
                         "step, the kind and the reason.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the report as one JSON object, failed images included (keys: "
                       "see auto_label.status.LedgerStatus).")] = False,
) -> None:
    """How far the runs got against the input, per step; failures; a live run; what runs spent."""
    import json

    from auto_label.cli.status_view import print_status
    from auto_label.status import ledger_status

    try:
        report = ledger_status(results_dir, check=check)
    except AutoLabelError as error:
        raise fail(error) from None
    if as_json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print_status(out, report, list_failed=failed)
    if report.problems:
        raise typer.Exit(1)
