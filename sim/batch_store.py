"""Batch jobs of the VLM SIMULATOR (tests and demos only): files, jobs, their life, their answers.

The provider-neutral core of both providers' batch APIs; batch_openai.py and batch_gemini.py give
it the wire shapes of OpenAI's Batch API and Gemini's Batch Mode. Everything lives in memory for
the life of the server, so a job survives its client: a client killed while polling finds it
again (by id, or by listing and reading the metadata / display name it gave it).

Life of a job (states below are the simulator's; each provider module maps them to its own):
created "pending" (OpenAI "validating", Gemini BATCH_STATE_PENDING); "running" once half of
`SimConfig.batch_delay` has passed; when the whole delay has passed, the next read ends it:
"completed" (every request answered), "expired" (a fault: on OpenAI the first half of its
requests were answered before it expired, as OpenAI documents partial results of an expired
batch; on Gemini none, as Gemini documents no results for one), or "failed" (its input did not
validate, or a scripted fault).
A cancelled job is "cancelling" until the next read, then "cancelled": nothing runs after the
cancel, and since the simulator answers all requests at the deadline, nothing ran before it.

Each request of a job is answered by an `Engine` (engine.py), the code that answers online
requests: same task detection, same pixel reading, same answer text and usage for the same
request. That engine has the online-only behaviours off (faults, latency, rpm, scripts): inside a
job, errors come from `SimConfig.batch_errors` (or `script_lines`), drawn per request from
(seed, the request's digest, how many times that request was seen in jobs before), so a request
retried in a later job draws anew and a rerun of the same workload meets the same errors.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .engine import Engine, RequestRecord
from .faults import SimConfig, unit
from .protocols import ChatRequest, error_body

PENDING, RUNNING, COMPLETED = "pending", "running", "completed"
EXPIRED, FAILED, CANCELLING, CANCELLED = "expired", "failed", "cancelling", "cancelled"
ENDED = frozenset({COMPLETED, EXPIRED, FAILED, CANCELLED})
BATCH_OUTCOMES: tuple[str, ...] = (COMPLETED, EXPIRED, FAILED)  # how a job ends (script_jobs)
LINE_OUTCOMES: tuple[str, ...] = ("ok", "error")  # how a request inside a job ends (script_lines)
PROVIDERS: tuple[str, ...] = ("openai", "gemini")

# The messages each provider sends with an internal error (the same as online, protocols.py).
_INTERNAL = {"openai": "The server had an error while processing your request. Sorry about that!",
             "gemini": "An internal error has occurred. Please retry."}


class JobStateError(ValueError):
    """An operation the job's state does not allow (cancelling an ended job)."""


@dataclass
class StoredFile:
    """An uploaded or generated file: OpenAI's `file-...` or Gemini's `files/...`."""

    provider: str
    name: str
    data: bytes
    filename: str  # OpenAI's filename; Gemini's display name
    purpose: str  # OpenAI: "batch", "batch_output"; Gemini: "UPLOADED" or "GENERATED" (source)
    mime_type: str
    created: float = field(default_factory=time.time)


@dataclass
class Line:
    """One request of a job: its key (custom_id / key / index), what the model is asked."""

    key: str
    request: ChatRequest | None  # None: unreadable, answered with a 400
    digest: str  # sha256 of the request as sent (draws of batch_errors)
    problem: str | None = None  # why the request could not be read
    metadata: Any = None  # Gemini inline requests' metadata, echoed with the answer


@dataclass
class Answer:
    """What became of one line: `status` 200 and the reply body, an error status and the
    error body (the protocol's online shape), or `stopped` ("expired", "cancelled"): never ran."""

    key: str
    status: int
    body: dict[str, Any] | None
    metadata: Any = None
    stopped: str | None = None


@dataclass
class Job:
    """A batch job; `name` is OpenAI's `batch_...` id or Gemini's `batches/...` name."""

    provider: str
    name: str
    ordinal: int
    model: str
    lines: list[Line]
    source: str  # "inline", or the input file's id / name
    outcome: str  # how it will end, drawn (or scripted) when it was created: BATCH_OUTCOMES
    delay: float
    metadata: dict[str, str] = field(default_factory=dict)  # OpenAI's metadata
    display_name: str | None = None  # Gemini's display name
    extra: dict[str, Any] = field(default_factory=dict)  # endpoint, completion_window, version
    problems: list[tuple[int | None, str]] = field(default_factory=list)  # (line, why): failed
    state: str = PENDING
    created: float = field(default_factory=time.time)
    created_mono: float = field(default_factory=time.monotonic)
    times: dict[str, float] = field(default_factory=dict)  # state -> when it was entered
    answers: list[Answer] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # provider's result files, by role
    lock: threading.RLock = field(default_factory=threading.RLock)

    def count(self, status_ok: bool) -> int:
        return sum(1 for a in self.answers if (a.status == 200) == status_ok)


@dataclass(frozen=True)
class BatchJobInfo:
    """What a test reads of a job (`Simulator.batch_jobs()`): `state` is the simulator's
    (pending, running, completed, expired, failed, cancelling, cancelled), as of the clients'
    last read (observing does not advance a job)."""

    provider: str
    name: str
    ordinal: int  # 0, 1, ... in creation order, per server
    state: str
    model: str
    keys: tuple[str, ...]  # custom_ids (OpenAI), keys (Gemini file), indexes (Gemini inline)
    source: str
    outcome: str
    metadata: dict[str, str]
    display_name: str | None
    answered: int  # requests answered with status 200
    failed: int  # requests answered with an error, or never run (expired, cancelled)

    @property
    def requests(self) -> int:
        """How many requests the job was submitted with."""
        return len(self.keys)

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "name": self.name, "ordinal": self.ordinal,
                "state": self.state, "model": self.model, "keys": list(self.keys),
                "requests": self.requests, "source": self.source, "outcome": self.outcome,
                "metadata": self.metadata, "display_name": self.display_name,
                "answered": self.answered, "failed": self.failed}


class BatchStore:
    """Files, upload sessions and jobs of both providers, and the engine answering their lines."""

    def __init__(self, config: SimConfig, stopping: threading.Event) -> None:
        self.config = config
        self.engine = Engine(replace(config, faults={}, latency_mean=0.0, latency_jitter=0.0,
                                     rpm=None), stopping)
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, dict[str, Any]] = {}
        self._jobs: dict[str, Job] = {}
        self._seen: Counter[str] = Counter()
        self._job_script: deque[tuple[str, str | None]] = deque()
        self._line_script: deque[str] = deque()

    # --- files ------------------------------------------------------------------------------

    def add_file(self, provider: str, data: bytes, filename: str, purpose: str,
                 mime_type: str = "application/jsonl") -> StoredFile:
        name = (f"file-{secrets.token_hex(12)}" if provider == "openai"
                else f"files/{secrets.token_hex(8)}")
        stored = StoredFile(provider, name, data, filename, purpose, mime_type)
        with self._lock:
            self._files[name] = stored
        return stored

    def file(self, name: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(name)

    def delete_file(self, name: str) -> bool:
        with self._lock:
            return self._files.pop(name, None) is not None

    def start_upload(self, session: dict[str, Any]) -> str:
        """A resumable upload session (Gemini): its id, the capability its URL carries."""
        upload_id = secrets.token_urlsafe(24)
        with self._lock:
            self._uploads[upload_id] = {**session, "data": b""}
        return upload_id

    def upload(self, upload_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._uploads.get(upload_id)

    def end_upload(self, upload_id: str) -> None:
        with self._lock:
            self._uploads.pop(upload_id, None)

    # --- jobs -------------------------------------------------------------------------------

    def create_job(self, provider: str, model: str, lines: list[Line], source: str, *,
                   metadata: dict[str, str] | None = None, display_name: str | None = None,
                   extra: dict[str, Any] | None = None,
                   problems: list[tuple[int | None, str]] | None = None) -> Job:
        name = (f"batch_{secrets.token_hex(16)}" if provider == "openai"
                else f"batches/{secrets.token_hex(12)}")
        with self._lock:
            ordinal = len(self._jobs)
            outcome = self._take_job(provider)
        if outcome is None:
            drawn = unit("batch_expire", self.config.seed, provider, ordinal)
            outcome = EXPIRED if drawn < self.config.batch_expire else COMPLETED
        job = Job(provider, name, ordinal, model, lines, source, outcome,
                  self.config.batch_delay, dict(metadata or {}), display_name, dict(extra or {}),
                  list(problems or []))
        job.times[PENDING] = job.created
        with self._lock:
            self._jobs[name] = job
        return job

    def job(self, name: str) -> Job | None:
        """The job, advanced to now (which may answer its requests), or None."""
        with self._lock:
            job = self._jobs.get(name)
        if job is not None:
            self._advance(job)
        return job

    def jobs(self, provider: str) -> list[Job]:
        """The provider's jobs, newest first, advanced to now."""
        with self._lock:
            found = [j for j in self._jobs.values() if j.provider == provider]
        for job in found:
            self._advance(job)
        return found[::-1]

    def owner(self, name: str) -> str | None:
        """Which provider holds a job or file of that name."""
        with self._lock:
            held = self._jobs.get(name) or self._files.get(name)
        return held.provider if held is not None else None

    def cancel(self, name: str) -> Job | None:
        """Ask for the job's cancellation (JobStateError when it has ended)."""
        job = self.job(name)
        if job is None:
            return None
        with job.lock:
            if job.state in ENDED:
                raise JobStateError(f"a {job.state} batch cannot be cancelled")
            if job.state != CANCELLING:
                job.state = CANCELLING
                job.times[CANCELLING] = time.time()
        return job

    def delete_job(self, name: str) -> bool:
        with self._lock:
            return self._jobs.pop(name, None) is not None

    def _advance(self, job: Job) -> None:
        with job.lock:
            if job.state in ENDED:
                return
            if job.state == CANCELLING:
                self._end(job, CANCELLED, self._stopped(job.lines, CANCELLED))
                return
            if job.problems:  # its input did not validate: it never ran
                job.state = FAILED
                job.times[FAILED] = time.time()
                return
            elapsed = time.monotonic() - job.created_mono
            if elapsed < job.delay / 2:
                return
            job.times.setdefault(RUNNING, time.time())
            if elapsed < job.delay:
                job.state = RUNNING
                return
            if job.outcome == FAILED:
                self._end(job, FAILED, [])
            elif job.outcome == EXPIRED:
                half = len(job.lines) // 2 if job.provider == "openai" else 0
                self._end(job, EXPIRED, self._run(job, job.lines[:half])
                          + self._stopped(job.lines[half:], EXPIRED))
            else:
                self._end(job, COMPLETED, self._run(job, job.lines))

    def _end(self, job: Job, state: str, answers: list[Answer]) -> None:
        job.times.setdefault(RUNNING, time.time())
        job.answers = answers
        job.state = state
        job.times[state] = time.time()

    @staticmethod
    def _stopped(lines: list[Line], why: str) -> list[Answer]:
        return [Answer(line.key, 0, None, line.metadata, why) for line in lines]

    def _run(self, job: Job, lines: list[Line]) -> list[Answer]:
        answers: list[Answer] = []
        for line in lines:
            with self._lock:
                n = self._seen[line.digest]
                self._seen[line.digest] += 1
                scripted = self._line_script.popleft() if self._line_script else None
            error = scripted == "error" or (scripted is None and unit(
                "batch_error", self.config.seed, line.digest, n) < self.config.batch_errors)
            if line.request is None:
                status, body = 400, error_body(job.provider, 400,
                                               f"Invalid request: {line.problem}")
            elif error:
                status, body = 500, error_body(job.provider, 500, _INTERNAL[job.provider])
            else:
                status, body = self._answer(job.provider, line.request)
            answers.append(Answer(line.key, status, body, line.metadata))
        return answers

    def _answer(self, provider: str, request: ChatRequest) -> tuple[int, dict[str, Any]]:
        reply = self.engine.handle(request, True, True)
        if reply.status == 0:  # the server is stopping
            return 503, error_body(provider, 503, "The service is unavailable.")
        try:
            body = json.loads(reply.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return 500, error_body(provider, 500, _INTERNAL[provider])
        return reply.status, body if isinstance(body, dict) else {}

    # --- tests' view and control ------------------------------------------------------------

    def script_jobs(self, outcomes: Iterable[str], provider: str | None = None) -> None:
        items = list(outcomes)
        unknown = [o for o in items if o not in BATCH_OUTCOMES]
        if unknown or (provider is not None and provider not in PROVIDERS):
            raise ValueError(f"expected outcomes among {BATCH_OUTCOMES} and a provider among "
                             f"{PROVIDERS} (or none), got {items} for {provider!r}")
        with self._lock:
            self._job_script.extend((o, provider) for o in items)

    def script_lines(self, outcomes: Iterable[str]) -> None:
        items = list(outcomes)
        if any(o not in LINE_OUTCOMES for o in items):
            raise ValueError(f"expected outcomes among {LINE_OUTCOMES}, got {items}")
        with self._lock:
            self._line_script.extend(items)

    def _take_job(self, provider: str) -> str | None:
        for i, (outcome, wanted) in enumerate(self._job_script):
            if wanted is None or wanted == provider:
                del self._job_script[i]
                return outcome
        return None

    def infos(self, provider: str | None = None) -> list[BatchJobInfo]:
        with self._lock:
            found = [j for j in self._jobs.values() if provider in (None, j.provider)]
        out: list[BatchJobInfo] = []
        for job in found:
            with job.lock:
                out.append(BatchJobInfo(
                    job.provider, job.name, job.ordinal, job.state, job.model,
                    tuple(line.key for line in job.lines), job.source, job.outcome,
                    dict(job.metadata), job.display_name, job.count(True),
                    job.count(False)))
        return out

    def job_counts(self) -> dict[str, int]:
        with self._lock:
            counted = Counter(j.provider for j in self._jobs.values())
        return {p: counted[p] for p in PROVIDERS}

    def counts(self) -> dict[tuple[str, str], int]:
        return self.engine.counts()

    def records(self) -> list[RequestRecord]:
        return self.engine.records()

    def stats(self) -> dict[str, Any]:
        """What GET /_sim/batches returns."""
        counts = [{"image_sha256": sha, "task": task, "count": count}
                  for (sha, task), count in sorted(self.counts().items())]
        return {"jobs_per_provider": self.job_counts(),
                "jobs": [info.to_dict() for info in self.infos()], "counts": counts}
