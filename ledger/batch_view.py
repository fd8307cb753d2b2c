"""The provider batch jobs a ledger knows, folded from their events (`batch_created`,
`batch_submitted`, `batch_updated`, `batch_finished`; read through the `events_by_type` index).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from auto_label.ledger.events import (
    BatchCreated,
    BatchFinished,
    BatchRequest,
    BatchSubmitted,
    BatchUpdated,
    Usage,
)
from auto_label.ledger.store import Ledger

BATCH_TYPES = ("batch_created", "batch_submitted", "batch_updated", "batch_finished")


@dataclass(frozen=True)
class BatchJobView:
    key: str
    backend: str
    run_id: str
    """the run that created it"""
    created_at: float
    requests: list[BatchRequest] = field(default_factory=list)
    job_id: str | None = None
    """the provider's name of it; None until the submission is recorded"""
    state: str = "created"
    """the latest state polled (the provider's name), `created` before any"""
    total: int | None = None
    completed: int | None = None
    failed: int | None = None
    finished: BatchFinished | None = None
    """how it ended for us; None while it is open"""

    @property
    def open(self) -> bool:
        return self.finished is None


def batch_jobs(ledger: Ledger) -> list[BatchJobView]:
    """Every batch job of the ledger, oldest first. Raises LedgerError for a damaged event."""
    jobs: dict[str, BatchJobView] = {}
    for _, event in ledger.events(BATCH_TYPES):
        if isinstance(event, BatchCreated):
            jobs[event.key] = BatchJobView(event.key, event.backend, event.run_id, event.at,
                                           list(event.requests))
            continue
        job = jobs.get(getattr(event, "key", ""))
        if job is None:
            continue
        if isinstance(event, BatchSubmitted):
            jobs[job.key] = replace(job, job_id=event.job_id, state="submitted")
        elif isinstance(event, BatchUpdated):
            jobs[job.key] = replace(job, state=event.state, total=event.total,
                                    completed=event.completed, failed=event.failed)
        elif isinstance(event, BatchFinished):
            jobs[job.key] = replace(job, finished=event, state=event.state)
    return list(jobs.values())


def batch_usage(ledger: Ledger) -> dict[str, Usage]:
    """run_id -> the tokens of the answers its batch jobs delivered (billed at the batch
    price)."""
    found: dict[str, list[int]] = {}
    for _, event in ledger.events(["batch_finished"]):
        if isinstance(event, BatchFinished):
            sums = found.setdefault(event.run_id, [0, 0, 0])
            sums[0] += event.usage.prompt_tokens or 0
            sums[1] += event.usage.completion_tokens or 0
            sums[2] += event.usage.thinking_tokens or 0
    return {run: Usage(prompt_tokens=p, completion_tokens=c, thinking_tokens=t)
            for run, (p, c, t) in found.items()}
