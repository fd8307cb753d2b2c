"""`auto_label batches`: list (and cancel) the provider batch jobs of a results_dir."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from auto_label.cli.app import app, fail, out
from auto_label.errors import AutoLabelError


@app.command()
def batches(
    results_dir: Annotated[Path, typer.Argument(help="A results_dir with a ledger.db.")],
    cancel: Annotated[bool, typer.Option(
        "--cancel", help="Ask the provider to cancel every job still open (stop the run "
                         "first: a running one sends the unanswered requests again).",
    )] = False,
    offline: Annotated[bool, typer.Option(
        "--offline", help="Only what the ledger says; do not ask the provider.")] = False,
) -> None:
    """The provider batch jobs of batch-mode runs (workflow.mode: batch): each job's id, state,
    requests and how it ended; open jobs as the provider says now (its key from the
    environment)."""
    from auto_label.batches import batch_report

    try:
        report = batch_report(results_dir, cancel=cancel, ask_provider=not offline)
    except AutoLabelError as error:
        raise fail(error) from None
    if not report.jobs:
        out.print(f"{results_dir}: no batch jobs (runs in workflow.mode: batch create them)",
                  markup=False)
        return
    table = Table(title=f"batch jobs of {results_dir}", title_justify="left")
    table.add_column("job", no_wrap=True)
    for column in ("created", "requests", "state", "done", "answered", "failed"):
        table.add_column(column, justify="left" if column == "state" else "right")
    for job in report.jobs:
        created = datetime.datetime.fromtimestamp(job.created_at).strftime("%Y-%m-%d %H:%M")
        ended = job.finished
        progress = (f"{job.completed or 0}/{job.total}" if job.total else "-") if ended is None \
            else f"{ended.answered + ended.failed}/{len(job.requests)}"
        table.add_row(job.job_id or "(not submitted)", created, f"{len(job.requests):,}",
                      job.state + ("" if ended is None else " (closed)"), progress,
                      "-" if ended is None else f"{ended.answered:,}",
                      "-" if ended is None else f"{ended.failed + ended.unanswered:,}")
    out.print(table)
    for job_id in report.cancelled:
        out.print(f"asked the provider to cancel {job_id}; the next run records its "
                  "answers so far and asks again for the rest", markup=False)
    for note in report.notes:
        out.print(f"note: {note}", markup=False)
