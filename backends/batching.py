"""Provider batch APIs: what a backend offers when it can run requests as one asynchronous job.

A backend that supports batch mode returns a `BatchAPI` from `batch_api()`. The engine records
each job's requests before it submits them and finds a job again by the key it put on it, so
every method here is a plain call to the provider: no state beyond the client.

Jobs are named by the provider (`job_id`); `key` is ours (a content hash of the job's requests),
stored in the job's metadata or display name, so that a job submitted by a run killed before it
recorded the id is found again (`find`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from auto_label.backends.base import BackendError, VLMRequest, VLMResponse


@dataclass(frozen=True)
class BatchEntry:
    """One request of a job: `custom_id` is our request id (the provider echoes it back)."""

    custom_id: str
    request: VLMRequest


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str
    """the provider's name for it (OpenAI `in_progress`, Gemini `JOB_STATE_RUNNING`...)"""
    done: bool
    """terminal: no answer will come that has not come"""
    total: int | None = None
    completed: int | None = None
    failed: int | None = None


class JobLost(BackendError):
    """The job ended (expired, cancelled, failed) without answering this request: it goes into a
    later job."""

    kind = "batch_unanswered"
    retryable = True


@runtime_checkable
class BatchAPI(Protocol):
    """A provider's batch API, through its SDK."""

    max_requests: int
    """the most requests one job may hold (the provider's documented limit)"""
    max_bytes: int
    """the most bytes of requests one job may hold (the provider's documented limit); what a
    batch answer costs is `prices.BATCH_DISCOUNT`, by backend"""

    def submit(self, entries: Sequence[BatchEntry], key: str) -> str:
        """Create a job of `entries` carrying `key`; its job id. Raises BackendError."""
        ...

    def find(self, key: str) -> str | None:
        """The id of the job carrying `key`, if the provider has one. Raises BackendError."""
        ...

    def poll(self, job_id: str) -> JobState:
        """The job's state now. Raises BackendError."""
        ...

    def results(self, job_id: str) -> dict[str, VLMResponse | BackendError]:
        """custom_id -> the answer, or why that request failed inside the job, for every request
        the job answered (a done job). Raises BackendError."""
        ...

    def cancel(self, job_id: str) -> None:
        """Ask the provider to cancel the job. Raises BackendError."""
        ...

    def request_bytes(self, entry: BatchEntry) -> int:
        """About how many bytes `entry` adds to a job (for `max_bytes`)."""
        ...
