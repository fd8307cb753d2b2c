"""Batch mode: the run's requests go to the provider as batch jobs instead of one at a time.

The workers run exactly as online (planning, prompts, request_sent, parsing, completions); only
the transport differs: `BatchCoordinator.send` queues a worker's request and blocks until its
job answered. The coordinator's thread groups the queued requests into jobs (full at
`batch.max_requests` or the provider's byte limit, or sent once no request came for
`batch.linger_seconds`), and for each job:

1. records `batch_created` (its key, a content hash of the requests, and every request) and
   waits until it is committed: record before act;
2. submits the job carrying the key, and records `batch_submitted` with the provider's job id;
3. polls it with a growing interval (`batch_updated` when its state changes);
4. when it is done, hands each worker its answer or the error its request met inside the job
   (or `JobLost` when the job ended without answering it: a retryable failure, so the executor
   asks again in a later job, or online with `batch.finish_online`), waits until the workers
   recorded them, and records `batch_finished` with the tokens it delivered.

A run killed anywhere in between leaves a job without `batch_finished`: the next run adopts it
(`batch_adopt`) before planning anything, so its requests are never submitted twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field

from auto_label.backends.base import Backend, BackendError, VLMRequest, VLMResponse
from auto_label.backends.batching import BatchAPI, BatchEntry, JobLost, JobState
from auto_label.errors import SpecError
from auto_label.ledger.events import (
    BatchCreated,
    BatchFinished,
    BatchRequest,
    BatchSubmitted,
    BatchUpdated,
    Usage,
)
from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.writer import LedgerWriter
from auto_label.pipelines.config import BatchConfig
from auto_label.pipelines.engine.retry import Stopped

MAX_POLL_SECONDS = 600.0
"""the longest wait between two polls of a job"""


def batch_api_of(backend: Backend, key: str) -> BatchAPI:
    """The backend's batch API. Raises SpecError naming `key` (the spec's workflow.mode) when
    the backend has none."""
    make = getattr(backend, "batch_api", None)
    if make is None:
        raise SpecError(f"{key} is batch, but the {backend.name} backend has no batch API; "
                        "use mode online")
    api = make()
    assert isinstance(api, BatchAPI)
    return api


def usage_of(responses: Iterable[VLMResponse]) -> Usage:
    """The tokens of the answers a job brought back (blocked ones included: they are billed)."""
    answers = list(responses)
    return Usage(prompt_tokens=sum(r.prompt_tokens or 0 for r in answers),
                 completion_tokens=sum(r.completion_tokens or 0 for r in answers),
                 thinking_tokens=sum(r.thinking_tokens or 0 for r in answers))


def job_key(requests: list[BatchRequest]) -> str:
    """Our key of a job: a content hash of what it asks (image, step, fingerprint, attempt)."""
    digest = content_hash(sorted([r.image_id, r.step, r.fingerprint, r.attempt]
                                 for r in requests))
    return "auto-label-" + digest.split(":")[-1][:24]


@dataclass
class _Pending:
    entry: BatchEntry
    request: BatchRequest
    answer: Future[VLMResponse] = field(default_factory=Future)


@dataclass
class _Job:
    key: str
    job_id: str
    pending: list[_Pending]
    interval: float
    next_poll: float
    state: str = ""
    recording: set[str] = field(default_factory=set)
    """request ids handed their answer whose workers have not recorded it yet"""
    final: BatchFinished | None = None


class BatchCoordinator:
    """Gathers the workers' requests into provider jobs; see the module's docstring."""

    def __init__(self, api: BatchAPI, backend: Backend, writer: LedgerWriter, run_id: str,
                 config: BatchConfig, stop: threading.Event, say: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.backend = backend
        self.writer = writer
        self.run_id = run_id
        self.config = config
        self.stop = stop
        self.say = say
        self.clock = clock
        self.max_requests = min(config.max_requests, api.max_requests)
        self.jobs_submitted = 0
        self._cond = threading.Condition()
        self._group: list[_Pending] = []
        self._group_bytes = 0
        self._last_queued = clock()
        self._jobs: list[_Job] = []
        self._submitting: list[_Pending] = []
        """the group being submitted (in no job yet)"""
        self._dead: BaseException | None = None
        """what stopped the thread, if anything did: later requests fail with it at once"""
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="batch-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop the thread (the run ended or stopped): jobs still open are adopted next run."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()

    # -- the workers' side ---------------------------------------------------------------------

    def send(self, image_id: str, step: str, fingerprint: str, attempt: int, request_id: str,
             request: VLMRequest) -> VLMResponse:
        """Queue the request for a job and wait for its answer. Raises the BackendError its
        request met (JobLost when the job ended without answering it), Stopped when the run
        stops meanwhile."""
        if attempt > 1 and self.config.finish_online:
            return self.backend.complete(request)
        pending = _Pending(BatchEntry(request_id, request), BatchRequest(
            request_id=request_id, image_id=image_id, step=step, attempt=attempt,
            fingerprint=fingerprint))
        size = self.api.request_bytes(pending.entry)
        with self._cond:
            if self._dead is not None:
                raise self._dead
            self._group.append(pending)
            self._group_bytes += size
            self._last_queued = self.clock()
            self._cond.notify_all()
        while True:
            try:
                return pending.answer.result(timeout=0.2)
            except TimeoutError:
                if self.stop.is_set():
                    raise Stopped from None

    def recorded(self, request_id: str) -> None:
        """The worker recorded what its request got (called after its events are queued)."""
        with self._cond:
            for job in self._jobs:
                job.recording.discard(request_id)
            self._cond.notify_all()

    # -- the coordinator's thread --------------------------------------------------------------

    def _loop(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # a bug or a ledger that cannot be written: fail loudly
            self.say(f"batch jobs: stopped by an internal error ({type(exc).__name__}: {exc})")
            with self._cond:
                self._dead = exc
                waiting = [*self._group, *self._submitting,
                           *(p for j in self._jobs for p in j.pending)]
                self._group = []
            for pending in waiting:  # each worker's step fails with it (internal_error)
                if not pending.answer.done():
                    pending.answer.set_exception(exc)

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait(timeout=0.05)
                finished = [j for j in self._jobs if j.final is not None and not j.recording]
                for job in finished:
                    self._jobs.remove(job)
                ending = self._closing or self.stop.is_set()
                group = [] if ending else self._take_group()
                if ending:
                    self._fail_group(None)
            for job in finished:
                assert job.final is not None
                self.writer.put(job.final)
            if ending:
                return
            if group:
                self._submitting = group
                self._submit(group)
                self._submitting = []
            for job in [j for j in self._jobs if j.final is None]:
                if self.clock() >= job.next_poll:
                    self._poll(job)

    def _take_group(self) -> list[_Pending]:
        """The queued requests, when they make a job now (lock held)."""
        if not self._group:
            return []
        full = len(self._group) >= self.max_requests or self._group_bytes >= self.api.max_bytes
        quiet = self.clock() - self._last_queued >= self.config.linger_seconds
        if not (full or quiet):
            return []
        group, self._group = self._group[:self.max_requests], self._group[self.max_requests:]
        self._group_bytes = sum(self.api.request_bytes(p.entry) for p in self._group)
        return group

    def _fail_group(self, error: BackendError | None) -> None:
        """Hand every queued request `error` (None: the run stops; lock held)."""
        for pending in self._group:
            if error is not None:
                pending.answer.set_exception(error)
        self._group, self._group_bytes = [], 0

    def _submit(self, group: list[_Pending]) -> None:
        requests = [p.request for p in group]
        key = job_key(requests)
        self.writer.flush(self.writer.put(BatchCreated(
            run_id=self.run_id, key=key, backend=self.backend.name, requests=requests)))
        try:
            job_id = self.api.submit([p.entry for p in group], key)
        except BackendError as exc:
            self.writer.put(BatchFinished(run_id=self.run_id, key=key, state="not_submitted",
                                          unanswered=len(group)))
            for pending in group:
                pending.answer.set_exception(exc)
            return
        self.writer.flush(self.writer.put(BatchSubmitted(run_id=self.run_id, key=key,
                                                         job_id=job_id)))
        self.jobs_submitted += 1
        self.say(f"batch job {job_id}: {len(group)} requests submitted")
        now = self.clock()
        with self._cond:
            self._jobs.append(_Job(key, job_id, group, self.config.poll_seconds,
                                   now + self.config.poll_seconds))

    def _poll(self, job: _Job) -> None:
        try:
            state = self.api.poll(job.job_id)
        except BackendError as exc:
            if exc.stops_run:
                self._deliver(job, JobState(job.job_id, "poll_failed", True), {}, exc)
                return
            self.say(f"batch job {job.job_id}: polling failed ({exc}); trying again")
            self._later(job)
            return
        if state.state != job.state:
            job.state = state.state
            self.writer.put(BatchUpdated(run_id=self.run_id, key=job.key, state=state.state,
                                         total=state.total, completed=state.completed,
                                         failed=state.failed))
            counts = f", {state.completed}/{state.total} done" if state.total else ""
            self.say(f"batch job {job.job_id}: {state.state}{counts}")
        if not state.done:
            self._later(job)
            return
        try:
            results = self.api.results(job.job_id)
        except BackendError as exc:
            if exc.stops_run:
                self._deliver(job, state, {}, exc)
                return
            self.say(f"batch job {job.job_id}: downloading its results failed ({exc}); "
                     "trying again")
            self._later(job)
            return
        self._deliver(job, state, results, None)

    def _later(self, job: _Job) -> None:
        job.next_poll = self.clock() + job.interval
        job.interval = min(job.interval * 1.5, MAX_POLL_SECONDS)

    def _deliver(self, job: _Job, state: JobState, results: dict[str, VLMResponse | BackendError],
                 error: BackendError | None) -> None:
        """Hand each worker its outcome; `batch_finished` follows once they recorded them."""
        answered = failed = unanswered = 0
        came: list[VLMResponse] = []
        with self._cond:
            job.recording = {p.request.request_id for p in job.pending}
        for pending in job.pending:
            outcome = results.get(pending.request.request_id)
            if isinstance(outcome, VLMResponse):
                answered += 1
                came.append(outcome)
                pending.answer.set_result(outcome)
                continue
            if outcome is not None and outcome.response is not None:  # blocked: billed too
                came.append(outcome.response)
            if outcome is None:
                unanswered += 1
                outcome = error or JobLost(f"the batch job {job.job_id} ended ({state.state}) "
                                           "without answering this request")
            else:
                failed += 1
            pending.answer.set_exception(outcome)
        with self._cond:
            job.final = BatchFinished(
                run_id=self.run_id, key=job.key, state=state.state, answered=answered,
                failed=failed, unanswered=unanswered, usage=usage_of(came))
            self._cond.notify_all()
        self.say(f"batch job {job.job_id}: {state.state}; {answered} answered, {failed} failed "
                 f"inside it, {unanswered} unanswered")
