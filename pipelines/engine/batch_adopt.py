"""Batch mode, on a rerun: finish the provider jobs an earlier run left open, before planning.

A job without `batch_finished` was left by a run that stopped or was killed somewhere between
recording its requests and recording their answers. Before planning anything, the new run:

- finds the job at the provider by its key when its submission was never recorded (a kill right
  after submitting); a job the provider does not have was never submitted: it is closed
  (`not_submitted`) and its requests are simply planned again;
- polls the open jobs until they are done, and records each answer (`response_received`, under
  the request id the earlier run recorded) or each failure (`attempt_failed`), then
  `batch_finished`.

Planning then finds those answers as stored answers to the same requests (`rereading`) and
completes the steps from them without asking again: no request is submitted twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from auto_label.backends.base import Backend, BackendError, VLMResponse
from auto_label.ledger.events import (
    AttemptFailed,
    BatchFinished,
    BatchSubmitted,
    BatchUpdated,
    Event,
)
from auto_label.ledger.store import Ledger
from auto_label.ledger.writer import LedgerWriter
from auto_label.pipelines.config import BatchConfig
from auto_label.pipelines.engine.execute import response_event
from auto_label.pipelines.engine.options import RunOptions
from auto_label.pipelines.engine.session import RunSession

if TYPE_CHECKING:
    from auto_label.backends.batching import BatchAPI
    from auto_label.ledger.batch_view import BatchJobView
    from auto_label.pipelines.engine.batch_jobs import BatchCoordinator

# the batch modules are imported in batch mode only: an online run does not wait for them before
# its first request (launch time, issue 12)


def batch_mode(options: RunOptions, block: str, backend: Backend, session: RunSession,
               stop: threading.Event, say: Callable[[str], None]) -> BatchCoordinator | None:
    """For `workflow.mode: batch`: the run's job coordinator, started, after the jobs of earlier
    runs are finished (`adopt_open_jobs`); None in online mode. Raises SpecError when the backend
    has no batch API, the BackendError that stops the run."""
    workflow = options.workflow
    if workflow.mode != "batch":
        return None
    from auto_label.pipelines.engine.batch_jobs import BatchCoordinator, batch_api_of

    api = batch_api_of(backend, f"{block}.workflow.mode")
    adopt_open_jobs(session.ledger, api, session.writer, session.run_id, workflow.batch, stop,
                    say)
    jobs = BatchCoordinator(api, backend, session.writer, session.run_id, workflow.batch, stop,
                            say)
    jobs.start()
    return jobs


def adopt_open_jobs(ledger: Ledger, api: BatchAPI, writer: LedgerWriter, run_id: str,
                    config: BatchConfig, stop: threading.Event,
                    say: Callable[[str], None]) -> int:
    """Finish every open job of `ledger` (see the module); the number adopted. Returns early
    when `stop` is set (the jobs stay open for the next run). Raises the BackendError that stops
    the run (a rejected key, an unreachable endpoint...)."""
    from auto_label.ledger.batch_view import batch_jobs
    from auto_label.pipelines.engine.batch_jobs import MAX_POLL_SECONDS

    waiting: list[tuple[BatchJobView, str]] = []
    for job in (j for j in batch_jobs(ledger) if j.open):
        job_id = job.job_id or api.find(job.key)
        if job_id is None:
            writer.put(BatchFinished(run_id=run_id, key=job.key, state="not_submitted",
                                     unanswered=len(job.requests)))
            continue
        if job.job_id is None:
            writer.put(BatchSubmitted(run_id=run_id, key=job.key, job_id=job_id))
        waiting.append((job, job_id))
    if not waiting:
        return 0
    say(f"{len(waiting)} batch job(s) of an earlier run are still open: waiting for their "
        "answers before planning")
    states = {job.key: job.state for job, _ in waiting}
    interval = config.poll_seconds
    left = list(waiting)
    while left and not stop.is_set():
        for job, job_id in list(left):
            try:
                state = api.poll(job_id)
                if state.state != states[job.key]:
                    states[job.key] = state.state
                    writer.put(BatchUpdated(run_id=run_id, key=job.key, state=state.state,
                                            total=state.total, completed=state.completed,
                                            failed=state.failed))
                    say(f"batch job {job_id}: {state.state}")
                if state.done:
                    _record(ledger, writer, run_id, job, state.state, api.results(job_id))
                    left.remove((job, job_id))
            except BackendError as exc:
                if exc.stops_run:
                    raise
                say(f"batch job {job_id}: {exc}; trying again")
        if left:
            stop.wait(interval)
            interval = min(interval * 1.5, MAX_POLL_SECONDS)
    writer.flush()
    return len(waiting) - len(left)


def _record(ledger: Ledger, writer: LedgerWriter, run_id: str, job: BatchJobView, state: str,
            results: dict[str, VLMResponse | BackendError]) -> None:
    """Each request's answer or failure (unless already recorded), then `batch_finished`."""
    from auto_label.pipelines.engine.batch_jobs import usage_of

    known = _recorded(ledger, {r.image_id for r in job.requests})
    events: list[Event] = []
    answered = failed = unanswered = 0
    came: list[VLMResponse] = []
    for request in job.requests:
        outcome = results.get(request.request_id)
        if outcome is None:
            unanswered += 1
            continue
        if request.request_id in known:
            continue
        rid, image_id, step, attempt = (request.request_id, request.image_id, request.step,
                                        request.attempt)
        response = outcome if isinstance(outcome, VLMResponse) else outcome.response
        if response is not None:  # latency unknown: the job ran while no run watched
            events.append(response_event(run_id, rid, image_id, step, attempt, response, 0.0))
            came.append(response)
        if isinstance(outcome, BackendError):
            failed += 1
            events.append(AttemptFailed(
                run_id=run_id, request_id=rid, image_id=image_id, step=step, attempt=attempt,
                kind=outcome.kind, message=str(outcome), status_code=outcome.status_code))
        else:
            answered += 1
    events.append(BatchFinished(run_id=run_id, key=job.key, state=state, answered=answered,
                                failed=failed, unanswered=unanswered, usage=usage_of(came)))
    writer.put(*events)


def _recorded(ledger: Ledger, image_ids: set[str]) -> set[str]:
    """The request ids of these images that already have an answer or a failure recorded."""
    found: set[str] = set()
    for image_id in image_ids:
        for _, event in ledger.events(["response_received", "attempt_failed"],
                                      image_id=image_id):
            found.add(getattr(event, "request_id", ""))
    return found
