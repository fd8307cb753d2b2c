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
    min_score: Annotated[float | None, typer.Option(
        "--min-score", help="Leave out boxes scored below this (0-1).")] = None,
    verified_only: Annotated[bool, typer.Option(
        "--verified-only", help="Only expressions a check confirmed (referring step 3).")] = False,
    step: Annotated[str | None, typer.Option(
        "--step", help="One step's output (with what it builds on), e.g. 2 for the referring "
                       "expressions before the check.")] = None,
    coordinates: Annotated[str | None, typer.Option(
        "--coordinates", help="sft: the box convention of the model to train (xyxy_pixel, "
                              "xyxy_1000, yxyx_1000).")] = None,
    for_model: Annotated[str | None, typer.Option(
        "--for-model", help="sft: the model to train; its profile gives the convention (and "
                            "Qwen2.5-VL's processor frame).")] = None,
    max_pixels: Annotated[int | None, typer.Option(
        "--max-pixels", help="sft with --for-model qwen2.5-vl: the max_pixels its training "
                             "processor uses.")] = None,
) -> None:
    """Write an export from the ledger: annotations.jsonl (and legacy files, if the spec asks),
    or a training format: coco, odvg, sft."""
    from auto_label.cli.summary import print_outputs
    from auto_label.export_options import export_options

    try:
        options = export_options(min_score=min_score, verified_only=verified_only, step=step,
                                 coordinates=coordinates, for_model=for_model,
                                 max_pixels=max_pixels, output_format=output_format)
        result = api.export(results_dir, output_format=output_format, options=options)
    except AutoLabelError as error:
        raise fail(error) from None
    print_outputs(out, result.files, result.records, result.counts)


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
