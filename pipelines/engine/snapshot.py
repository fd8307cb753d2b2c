"""What a progress display shows: the run's header (`RunInfo`, fixed at its start) and its live
figures (`Snapshot`, an immutable copy taken whenever a display refreshes; the run's summary keeps
the last one). `Monitor` (monitor.py) keeps the figures; displays only read them.

Units: seconds for durations, unix time for moments, USD for costs, steps (image, step pairs)
per minute for rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from auto_label.backends.base import Backend
from auto_label.pipelines.config import WorkflowConfig


@dataclass(frozen=True)
class RunInfo:
    """Which run this is: shown once, as the display's header."""

    pipeline: str
    backend: str = ""
    model: str = ""
    endpoint: str = ""
    """the URL requests go to (never a key)"""
    workers: int = 0
    batch_jobs: int = 0
    """batch mode: the most requests per provider job (0: online)"""
    inputs: tuple[tuple[str, str], ...] = ()
    """(data setting, path) of what the run reads, e.g. ("input_jsonl", "/data/input.jsonl")"""
    results_dir: Path = Path()
    steps: tuple[tuple[str, str], ...] = ()
    """(number, name) of each selected step"""
    images: int = 0
    """images this run works on (known once the inputs are read)"""
    priced: bool = False
    """whether the model's price is known (else no cost is shown)"""
    progress_interval: float = 30.0
    """seconds between the plain display's lines (`workflow.progress_interval`)"""

    @classmethod
    def of(cls, pipeline: str, backend: Backend, workflow: WorkflowConfig, data: Any,
           results_dir: Path,
           steps: list[tuple[str, str]], *, priced: bool) -> RunInfo:
        """The header of a run of `pipeline` with `backend`, its `workflow` settings and its
        `data` settings (a pydantic model: its non-empty path settings are the inputs)."""
        return cls(pipeline=pipeline, backend=backend.name, model=backend.model,
                   endpoint=backend.endpoint, workers=workflow.max_workers,
                   batch_jobs=workflow.batch.max_requests if workflow.mode == "batch" else 0,
                   inputs=_inputs(data), results_dir=results_dir, steps=tuple(steps),
                   priced=priced, progress_interval=workflow.progress_interval)

    def with_images(self, images: int) -> RunInfo:
        return replace(self, images=images)


INPUT_SETTINGS = ("_jsonl", "_dir", "_root", "_path", "_file")
"""how the names of the data settings that point at inputs end"""


def _inputs(data: Any) -> tuple[tuple[str, str], ...]:
    fields = getattr(type(data), "model_fields", {})
    found = []
    for name in fields:
        value = getattr(data, name, None)
        if value and name.endswith(INPUT_SETTINGS):
            found.append((name, str(value)))
    return tuple(found)


@dataclass(frozen=True)
class StepFigures:
    """One step's outcomes so far (image counts) and its requests awaiting an answer."""

    number: str
    name: str
    completed: int = 0
    """answered, parsed and recorded by this run"""
    cached: int = 0
    """completed before this run, for the same fingerprint"""
    failed: int = 0
    skipped: int = 0
    in_flight: int = 0
    """requests sent whose answer (or failure) is not recorded yet"""

    @property
    def done(self) -> int:
        """completed + cached: what a progress bar counts (failed and skipped are not done)."""
        return self.completed + self.cached

    @property
    def reached(self) -> int:
        """images with an outcome for this step"""
        return self.completed + self.cached + self.failed + self.skipped


@dataclass(frozen=True)
class Tokens:
    """Tokens of the responses recorded by this run. `answer` excludes thinking whatever the
    backend's count does (OpenAI's completion_tokens include reasoning tokens, Gemini's exclude
    them)."""

    prompt: int = 0
    answer: int = 0
    thinking: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.answer + self.thinking


@dataclass(frozen=True)
class Snapshot:
    """The run's figures at one moment."""

    time: float = 0.0
    """unix time of the snapshot"""
    elapsed: float = 0.0
    """seconds since the run began"""
    images: int = 0
    steps: tuple[StepFigures, ...] = ()
    requests: int = 0
    """requests sent by this run (recorded)"""
    in_flight: int = 0
    retrying: int = 0
    """(image, step) pairs whose last attempt failed and that wait for their next one"""
    rate: float | None = None
    """steps finished (completed or failed) by this run per minute over the last minute of
    active time (pool-wide waits left out); None while too few have finished to measure it.
    Cached and skipped steps are not work and do not count"""
    eta: float | None = None
    """seconds until every (image, step) pair is reached: the rest of `pause`, then the pairs
    left at `rate`; None when unknown (no rate, a rate of 0, or the run is stopping)"""
    tokens: Tokens = field(default_factory=Tokens)
    cost: float | None = None
    """USD of this run's responses; None when the model's price is unknown"""
    retries: tuple[tuple[str, int], ...] = ()
    """(kind, failed attempts) of this run, most frequent first"""
    waiting: str = ""
    """what the run is waiting for, e.g. "waiting 59 s: rate limited (HTTP 429) at 03:40:12
    asked for 60 s" (the attempt that set the wait in force); empty when it is not held up"""
    pause: float = 0.0
    """seconds left of the pool-wide wait an endpoint asked for (0: none)"""
    pace: float | None = None
    """requests per minute the pacer slowed to after 429s (None: not slowed)"""
    last_error: str = ""
    """the last failed attempt or step, one line"""
    last_error_at: float | None = None
    """unix time of `last_error`"""
    quiet: float = 0.0
    """seconds since the last outcome (since the start when none yet)"""
    stopping: bool = False
    """a stop was asked for: the requests in flight are finishing"""

    @property
    def total(self) -> int:
        """(image, step) pairs of the run"""
        return self.images * len(self.steps)

    @property
    def left(self) -> int:
        """(image, step) pairs without an outcome yet"""
        return max(0, self.total - sum(s.reached for s in self.steps))

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.steps)
