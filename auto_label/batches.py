"""`auto_label batches`: the provider batch jobs of a results_dir, their state now, and cancelling
them.

The ledger says which jobs the runs created and how each ended for us (`ledger.batch_view`); for
the jobs still open, the provider is asked their state now (and, with `cancel`, asked to cancel
them), through the backend of the latest run's spec with the key from the environment (a spec
in the ledger never holds a key). Nothing is recorded: the run that owns a job, or the next run,
polls it and records what it finds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from auto_label.backends.base import BackendError
from auto_label.backends.registry import create_backend
from auto_label.errors import AutoLabelError, LedgerError
from auto_label.ledger.batch_view import BatchJobView, batch_jobs
from auto_label.ledger.events import RunStarted
from auto_label.ledger.store import Ledger
from auto_label.pipelines.engine.batch_jobs import batch_api_of
from auto_label.spec import spec_model


@dataclass(frozen=True)
class BatchesReport:
    jobs: list[BatchJobView]
    """every job, oldest first; an open one's state as the provider says it now, when it could
    be asked"""
    notes: list[str] = field(default_factory=list)
    """one line per thing that could not be done (the provider could not be asked...)"""
    cancelled: list[str] = field(default_factory=list)
    """the job ids asked to cancel"""


def batch_report(results_dir: str | Path, *, cancel: bool = False,
                 ask_provider: bool = True) -> BatchesReport:
    """The batch jobs of `results_dir` (see the module). Raises LedgerError when there is no
    ledger there; a provider that cannot be asked is a note, not an error."""
    with Ledger.open(results_dir, create=False) as ledger:
        jobs = batch_jobs(ledger)
        started = ledger.latest("run_started")
    open_jobs = [j for j in jobs if j.open and j.job_id]
    if not open_jobs or not (ask_provider or cancel):
        return BatchesReport(jobs)
    if not isinstance(started, RunStarted):
        raise LedgerError(f"{results_dir}: no run has been recorded yet")
    notes: list[str] = []
    cancelled: list[str] = []
    try:
        spec = spec_model().model_validate(_keyless(started.spec))
        backend = create_backend(spec.block.vlm)
    except AutoLabelError as exc:
        return BatchesReport(jobs, [f"cannot ask the provider: {exc}"])
    except ValueError as exc:
        return BatchesReport(jobs, [f"cannot ask the provider: the run's spec does not load "
                                    f"({str(exc).splitlines()[0]})"])
    try:
        api = batch_api_of(backend, f"{spec.autolabel_type}.workflow.mode")
        now = {}
        for job in open_jobs:
            assert job.job_id is not None
            try:
                if cancel:
                    api.cancel(job.job_id)
                    cancelled.append(job.job_id)
                state = api.poll(job.job_id)
                now[job.key] = replace(job, state=state.state, total=state.total,
                                       completed=state.completed, failed=state.failed)
            except BackendError as exc:
                notes.append(f"{job.job_id}: {exc}")
                if exc.stops_run:
                    break
    except AutoLabelError as exc:
        return BatchesReport(jobs, [f"cannot ask the provider: {exc}"])
    finally:
        backend.close()
    return BatchesReport([now.get(j.key, j) for j in jobs], notes, cancelled)


def _keyless(spec: dict[str, Any]) -> dict[str, Any]:
    """The run's spec with its masked keys emptied, so the environment's key is used."""
    spec = copy.deepcopy(spec)
    for block in spec.values():
        vlm = block.get("vlm") if isinstance(block, dict) else None
        for config in (vlm or {}).values():
            if isinstance(config, dict) and "api_key" in config:
                config["api_key"] = ""
    return spec
