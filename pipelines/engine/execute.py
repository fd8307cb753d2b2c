"""Running one step for one image: the request/response loop and the events it leaves.

Each attempt appends `request_sent`, then `response_received` and/or `attempt_failed`; the step ends
with exactly one `step_completed` or `step_failed` (or with neither when the run is stopped, so that
the next run picks the image up again). A response and the completion parsed from it are committed
in the same transaction. A request records its prompt's template key and values; before the first
request of each template the executor records the template's text with the backend parameters
(`request_template`, once per run and template).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from auto_label.backends.base import (
    Backend,
    BackendError,
    PreparedImage,
    RateLimited,
    VLMRequest,
    VLMResponse,
)
from auto_label.ledger.events import (
    AttemptFailed,
    RequestSent,
    RequestTemplate,
    ResponseReceived,
    StepCompleted,
    StepFailed,
    Usage,
)
from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.writer import LedgerWriter
from auto_label.pipelines.config import RetryConfig
from auto_label.pipelines.contract import Immediate, Step, StepInput, StepOutput
from auto_label.pipelines.engine.answering import Answer, Unusable, read_answer
from auto_label.pipelines.engine.budget import Budget
from auto_label.pipelines.engine.endpoint import TRANSPORT_KINDS, Breaker, aborting
from auto_label.pipelines.engine.rereading import StoredAnswer, reread
from auto_label.pipelines.engine.retry import RetryableFailure, Stopped, retrying
from auto_label.pipelines.templating import Prompt


class Pacer(Protocol):
    def acquire(self, stop: threading.Event) -> bool:
        """Wait for the next request slot; False when the run stops meanwhile."""

    def feedback(self, rate_limited: bool) -> None:
        """How the last request went."""

    def pause(self, seconds: float) -> None:
        """Start no request for `seconds` (the endpoint asked every client to wait)."""


def response_event(run_id: str, request_id: str, image_id: str, step: str, attempt: int,
                   response: VLMResponse, latency: float,
                   answer_in: str = "content") -> ResponseReceived:
    """The `response_received` event of an answer (`latency` in seconds; `answer_in`: where the
    answer was read, `reasoning` or the content)."""
    return ResponseReceived(
        run_id=run_id, request_id=request_id, image_id=image_id, step=step, attempt=attempt,
        text=response.text, finish_reason=response.finish_reason,
        usage=Usage(prompt_tokens=response.prompt_tokens,
                    completion_tokens=response.completion_tokens,
                    thinking_tokens=response.thinking_tokens),
        latency_s=round(latency, 4), model_version=response.model_version,
        response_id=response.response_id, thinking=response.thinking,
        answer_in="reasoning" if answer_in == "reasoning" else "content",
    )


class Transport(Protocol):
    """How a request reaches the model when not directly (batch mode: `batch_jobs`)."""

    def send(self, image_id: str, step: str, fingerprint: str, attempt: int, request_id: str,
             request: VLMRequest) -> VLMResponse:
        """The answer; raises BackendError as `Backend.complete` does, Stopped when the run
        stops while it waits."""

    def recorded(self, request_id: str) -> None:
        """What the request got is queued for the ledger."""


@dataclass(frozen=True)
class StepJob:
    image_id: str
    step: Step
    fingerprint: str
    upstream: dict[str, str]
    """upstream step -> the output hash this job builds on"""
    ctx: StepInput
    image: PreparedImage
    record_outcome: bool = True
    """False for requests about no dataset image (the probe): their requests and responses are
    recorded (naming the file sent, which no seed names), but no step_completed / step_failed"""
    request_fingerprint: str = ""
    """the request's fingerprint when it differs from the completion's (a parser version > 1)"""

    @property
    def asked(self) -> str:
        """The fingerprint its requests are recorded under."""
        return self.request_fingerprint or self.fingerprint


@dataclass(frozen=True)
class Completed:
    output: StepOutput
    output_hash: str


@dataclass(frozen=True)
class Failed:
    kind: str
    message: str


class _Tries:
    attempts = 0
    parse_failures = 0


class StepExecutor:
    def __init__(self, backend: Backend, writer: LedgerWriter, retry: RetryConfig,
                 stop: threading.Event, *, run_id: str, run_number: int, generation: int,
                 pacer: Pacer | None = None, budget: Budget | None = None,
                 spec_block: str = "", transport: Transport | None = None) -> None:
        self.backend = backend
        self.transport = transport
        """batch mode's job coordinator; None: `backend.complete`"""
        self.writer = writer
        self.retry = retry
        self.stop = stop
        self.run_id = run_id
        self.request_prefix = f"{run_number}-"
        """request ids are `<the run's number in the ledger>-<n>`: unique in the ledger, short"""
        self.generation = generation
        self.pacer = pacer
        self.budget = budget
        """`workflow.max_cost`: no request starts once it is spent"""
        self.spec_block = spec_block
        """the pipeline's block of the spec, to name spec keys in messages"""
        key, limit = backend.token_limit
        self.token_limit = (f"{spec_block}.{key}" if spec_block else key, limit)
        self.parameters = backend.describe()
        self.breaker = Breaker(retry.endpoint_failures, backend.endpoint)
        self.requests = 0
        self.reread = 0
        """steps completed from a stored answer, read again (no request)"""
        self._count_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._templates: dict[str, str] = {}
        """template key -> its text, as recorded by this run"""
        self._recorded: set[tuple[str, str]] = set()
        """(step, template key) recorded by this run"""
        self._step_templates: dict[str, str] = {}
        """step -> the key of the first template this run recorded for it"""
        self._template_lock = threading.Lock()

    def execute(self, job: StepJob) -> Completed | Failed | None:
        """Run the step; None when the run was stopped before it ended."""
        built = job.step.build(job.ctx)
        if isinstance(built, Immediate):
            return self._complete(job, built.output, None, None)
        prompt = built if isinstance(built, Prompt) else Prompt.whole(built)
        request = VLMRequest(prompt=prompt, image=job.image, json_output=job.step.json_output)
        tries = _Tries()
        try:
            for attempt in retrying(self.retry, self.stop):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    return self._attempt(job, request, prompt, number, tries)
        except RetryableFailure as last:
            if self.stop.is_set():
                return None
            plural = "s" if tries.attempts != 1 else ""
            return self._fail(job, last.kind, f"{last} (gave up after {tries.attempts} "
                              f"attempt{plural})")
        except Stopped:
            return None
        return None  # not reached: the loop returns or raises

    def reuse(self, job: StepJob, answers: Sequence[StoredAnswer]) -> Completed | None:
        """Complete the step from an answer stored for the same request, read with today's
        parser (no request is sent); None when none of `answers` reads."""
        if not answers:
            return None
        sent = answers[0].request  # of the same fingerprint: the same image, the same frame
        ctx = replace(job.ctx, sent_size=sent.sent_size(job.ctx.original_size))
        found = reread(job.step, ctx, answers, self.spec_block)
        if found is None or not isinstance(found.result, Answer):
            return None
        with self._count_lock:
            self.reread += 1
        return self._complete(job, found.result.output, found.answer.request.request_id, None)

    def _attempt(self, job: StepJob, request: VLMRequest, prompt: Prompt, number: int,
                 tries: _Tries) -> Completed | Failed:
        if self.pacer is not None and not self.pacer.acquire(self.stop):
            raise Stopped
        if self.budget is not None and not self.budget.admit(job.step.number):
            raise Stopped  # the budget stops the run: the image is left for the next one
        tries.attempts = number
        request_id = f"{self.request_prefix}{next(self._ids)}"
        key = self._record_template(prompt, job.step.number)
        # a dataset image is sent as its seed's file: the seed names its sha256, and its
        # upright size when it is sent at that size
        own = job.record_outcome
        sent = None if own and job.image.sent_size == job.ctx.original_size \
            else job.image.sent_size
        self.writer.put(RequestSent(
            run_id=self.run_id, request_id=request_id, image_id=job.image_id,
            step=job.step.number, attempt=number, fingerprint=job.asked,
            prompt_template=key, prompt_vars=prompt.values,
            image_sha256=None if own else job.image.sha256,
            sent_width=sent[0] if sent else None, sent_height=sent[1] if sent else None,
        ))
        with self._count_lock:
            self.requests += 1
        try:
            return self._exchange(job, request, request_id, number, tries)
        finally:
            if self.transport is not None:
                self.transport.recorded(request_id)

    def _exchange(self, job: StepJob, request: VLMRequest, request_id: str, number: int,
                  tries: _Tries) -> Completed | Failed:
        """Send the recorded request; record what came back."""
        started = time.monotonic()
        try:
            response = self._send(job, request, request_id, number)
        except BackendError as exc:
            return self._backend_error(job, exc, request_id, number, started)
        self.breaker.answered()
        self._feedback(False)
        answer = read_answer(job.step, job.ctx, response, self.token_limit)
        received = self._received(job, request_id, number, response, time.monotonic() - started,
                                  answer.answer_in if isinstance(answer, Answer) else "content")
        if isinstance(answer, Unusable):
            return self._unusable(job, request_id, number, tries, received, answer.kind,
                                  answer.message, response.text or response.thinking or "")
        return self._complete(job, answer.output, request_id, received)

    def _record_template(self, prompt: Prompt, step: str) -> str | None:
        """Record the prompt's template with the backend parameters, once per run and step that
        uses it (queued before the request that first uses it). Returns the key the request
        names: None when it is the first template the run recorded for `step` (the readers' rule:
        `auto_label.ledger.templates`). Raises ValueError for a key with another text."""
        key, text = prompt.template.key, prompt.template.text
        with self._template_lock:
            recorded = self._templates.get(key)
            if recorded is not None and recorded != text:
                raise ValueError(f"the prompt template {key} has two texts: a changed text "
                                 "needs a new version")
            if (step, key) not in self._recorded:
                self.writer.put(RequestTemplate(
                    run_id=self.run_id, template=key, step=step, text=text,
                    backend=self.backend.name, model=str(self.parameters.get("model", "")),
                    parameters=self.parameters))
                self._templates[key] = text
                self._recorded.add((step, key))
                self._step_templates.setdefault(step, key)
            return None if self._step_templates[step] == key else key

    def _backend_error(self, job: StepJob, exc: BackendError, request_id: str, number: int,
                       started: float) -> Failed:
        """Record the failed attempt; raise what stops the run or retries the step; else fail."""
        transport = isinstance(exc, TRANSPORT_KINDS)
        if not transport:
            self.breaker.answered()
        self._feedback(isinstance(exc, RateLimited))
        if isinstance(exc, RateLimited) and exc.retry_after and self.pacer is not None:
            self.pacer.pause(exc.retry_after)  # the endpoint's wait holds for every worker
        received = None
        if exc.response is not None:  # an answer came (blocked): recorded with its usage
            received = self._received(job, request_id, number, exc.response,
                                      time.monotonic() - started, "content")
        self.writer.put(*([received] if received is not None else []), AttemptFailed(
            run_id=self.run_id, request_id=request_id, image_id=job.image_id,
            step=job.step.number, attempt=number, kind=exc.kind, message=str(exc),
            retry_after_s=exc.retry_after, status_code=exc.status_code,
        ))
        if exc.stops_run:
            raise aborting(exc, self.backend.endpoint) from None
        if transport:
            tripped = self.breaker.failed(exc)
            if tripped is not None:
                raise tripped from None
        if exc.retryable:
            raise RetryableFailure(exc.kind, str(exc), exc.retry_after) from None
        return self._fail(job, exc.kind, str(exc), raw_text=exc.raw_text, request_id=request_id)

    def _unusable(self, job: StepJob, request_id: str, number: int, tries: _Tries,
                  received: ResponseReceived, kind: str, message: str, text: str) -> Failed:
        """An answer that cannot be used: a fresh sample while parse retries last, then fail."""
        if tries.parse_failures < self.retry.parse_retries:
            tries.parse_failures += 1
            self.writer.put(received, AttemptFailed(
                run_id=self.run_id, request_id=request_id, image_id=job.image_id,
                step=job.step.number, attempt=number, kind=kind, message=message,
            ))
            raise RetryableFailure(kind, message)
        return self._fail(job, kind, message, raw_text=text, request_id=request_id,
                          received=received)

    def _send(self, job: StepJob, request: VLMRequest, request_id: str,
              number: int) -> VLMResponse:
        """`backend.complete` (or the transport's), its answer (a blocked one's too) charged to
        the budget."""
        step = job.step.number
        if self.budget is None:
            return self._ask(job, request, request_id, number)
        answered: VLMResponse | None = None
        try:
            answered = self._ask(job, request, request_id, number)
            return answered
        except BackendError as exc:
            answered = exc.response
            raise
        finally:
            self.budget.settle(step, answered)

    def _ask(self, job: StepJob, request: VLMRequest, request_id: str,
             number: int) -> VLMResponse:
        if self.transport is None:
            return self.backend.complete(request)
        return self.transport.send(job.image_id, job.step.number, job.asked, number, request_id,
                                   request)

    def _feedback(self, rate_limited: bool) -> None:
        if self.pacer is not None:
            self.pacer.feedback(rate_limited)

    def _received(self, job: StepJob, request_id: str, number: int, response: VLMResponse,
                  latency: float, answer_in: str) -> ResponseReceived:
        return response_event(self.run_id, request_id, job.image_id, job.step.number, number,
                              response, latency, answer_in)

    def _complete(self, job: StepJob, output: StepOutput, request_id: str | None,
                  received: ResponseReceived | None) -> Completed:
        stored = output.to_stored()
        output_hash = content_hash(stored)
        completed = StepCompleted(
            run_id=self.run_id, image_id=job.image_id, step=job.step.number,
            fingerprint=job.fingerprint, generation=self.generation, output=stored,
            output_version=output.class_version, output_hash=output_hash,
            upstream=job.upstream, request_id=request_id, found=output.found(),
        ).answering(job.asked if request_id is not None else None)
        outcome = [completed] if job.record_outcome else []
        self.writer.put(*([received] if received is not None else []), *outcome)
        return Completed(output, output_hash)

    def _fail(self, job: StepJob, kind: str, message: str, *, raw_text: str | None = None,
              request_id: str | None = None, received: ResponseReceived | None = None) -> Failed:
        line = f"{job.image_id} step {job.step.number} ({job.step.name}): {message}"
        failed = StepFailed(
            run_id=self.run_id, image_id=job.image_id, step=job.step.number,
            fingerprint=job.fingerprint, kind=kind, message=line, raw_text=raw_text,
            request_id=request_id,
        )
        outcome = [failed] if job.record_outcome else []
        self.writer.put(*([received] if received is not None else []), *outcome)
        return Failed(kind, line)
