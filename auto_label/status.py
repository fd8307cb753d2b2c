"""What a results directory's ledger holds, against the input it was made from: how far the runs
got per step, which images failed and why, whether a run is live, what each run spent.

`auto_label status RESULTS_DIR` prints this (`--json`: `LedgerStatus.to_json()`); `--check` adds
the integrity check of `auto_label.ledger.check`. Reading never writes to the ledger beyond
bringing its schema up to date, and never takes the run lock (`lock.lock_holder` peeks at it).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from auto_label.backends.prices import (
    BATCH_DISCOUNT,
    price_from_spec,
    thinking_in_completion,
    usage_cost,
)
from auto_label.errors import AutoLabelError
from auto_label.ledger import queries, status_queries
from auto_label.ledger.batch_view import BatchJobView, batch_jobs, batch_usage
from auto_label.ledger.check import check_ledger
from auto_label.ledger.events import RunStarted, Usage, parse_event
from auto_label.ledger.lock import lock_holder
from auto_label.ledger.store import Ledger
from auto_label.pipelines.contract import Pipeline
from auto_label.pipelines.registry import get_pipeline
from auto_label.status_steps import InputSize, StepStatus, read_input, step_names, step_statuses

RUNNING = "running"
KILLED = "killed (or crashed)"


@dataclass(frozen=True)
class FailedImage:
    """An image whose latest attempt at a step failed."""

    image_id: str
    step: str
    step_name: str
    kind: str
    """e.g. image_missing, unparseable, truncated, blocked"""
    reason: str
    """the failure's message, one line"""
    at: float
    """unix time of the failure"""
    source: str | None
    """where the input listed the image (`input.jsonl:12`), when known"""


@dataclass(frozen=True)
class LiveRun:
    """The run holding the results_dir's lock now."""

    pid: int | None
    host: str | None
    since: float | None
    """unix time it took the lock"""
    last_progress: float | None
    """unix time of the ledger's newest event"""


@dataclass(frozen=True)
class RunReport:
    """One run, with what it spent and added."""

    number: int
    run_id: str
    purpose: str
    """generate, probe or replay"""
    model: str | None
    started_at: float
    finished_at: float | None
    duration_s: float
    """to its end; for a live run to now, for a killed one to its last event"""
    status: str
    """completed, interrupted, aborted, running, or killed (or crashed)"""
    stopped_by: str | None
    """why an interrupted run stopped, when it recorded why: `max_cost` (its budget), else None
    (Ctrl-C, a signal)"""
    requests: int
    tokens: dict[str, int]
    """prompt, answer, thinking"""
    cost_usd: float | None
    """at the price the run used (its spec's `vlm.<backend>.price`, else the table's for its
    model: `backends.prices`); None when no price is known"""
    new_images: int
    """images first seeded by this run"""
    failed_images: int
    """images with a step that failed in this run"""
    input_problems: int = 0
    """input problems the run skipped (an image without a label file...): its `input` warning"""

    @property
    def phrase(self) -> str:
        """The run's status for people: `stopped by max_cost` for a run its budget stopped,
        `completed, N failed, M input problems`; `(probe)`, `(replay)` after other purposes."""
        said = (f"stopped by {self.stopped_by}"
                if self.status == "interrupted" and self.stopped_by else self.status)
        if self.status == "completed":
            said = ", ".join([said, *_afflictions(self.failed_images, self.input_problems)])
        return said if self.purpose == "generate" else f"{said} ({self.purpose})"


@dataclass
class LedgerStatus:
    """What `auto_label status` reports. `to_json()` gives it as one JSON object, whose keys are
    stable for scripts (times are unix seconds, costs US dollars, null where unknown):

    - `ledger` (path), `pipeline` (of the latest generate run, or null), `state`: the latest
      generate run (probe and replay runs are left out of it) as one phrase: `completed`,
      `completed with N failed` (N: image steps whose latest outcome is a failure now, whichever
      run made it), `completed with M input problems` (input problems the run skipped), both
      (`completed with N failed and M input problems`), `interrupted` (Ctrl-C),
      `stopped by max_cost` (its budget: the run's status is `interrupted`, its `stopped_by`
      says why), `aborted`, `killed (or crashed)`; `running` whenever a run holds the lock;
      null before any generate run;
    - `input`: {`images`, `seeded`, `skipped`, `problem`} (see `InputSize`); `images_seeded`;
    - `steps`: [{`number`, `name`, `selected`, `done`, `nothing_found`, `failed`, `blocked`,
      `blocked_by` ({failed step: images}), `pending`}] in the pipeline's order (see
      `StepStatus`: an image of the input counts in one of done, failed, blocked, pending);
    - `live`: {`pid`, `host`, `since`, `last_progress`} while a run holds the lock, else null;
    - `failed`: [{`image_id`, `step`, `step_name`, `kind`, `reason`, `at`, `source`}];
      `failures_by_kind`: {kind: images};
    - `runs`: [{`number`, `run_id`, `purpose`, `model`, `started_at`, `finished_at`,
      `duration_s`, `status`, `stopped_by`, `requests`, `tokens`: {`prompt`, `answer`,
      `thinking`}, `cost_usd`, `new_images`, `failed_images`, `input_problems`}] oldest first
      (see `RunReport`; `status` is one of completed, interrupted, aborted, running, killed (or
      crashed); `stopped_by` is `max_cost` for a run its budget stopped, else null);
    - `requests`, `attempt_failures` ({kind: failed attempts, retried or not}), `tokens`,
      `cost_usd` (all runs; null if a run that spent tokens has no known price);
    - `warnings` (what runs warned about), `problems` (with `--check`: the integrity
      problems found, [] when sound; else null).
    """

    path: Path
    pipeline: str | None
    last_run: str | None
    """the latest generate run's state, as `state` above"""
    images: int
    """images seeded"""
    input: InputSize = field(default_factory=lambda: InputSize(None, None))
    steps: list[StepStatus] = field(default_factory=list)
    live: LiveRun | None = None
    history: list[RunReport] = field(default_factory=list)
    failed_images: list[FailedImage] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    """failure kind -> (image, step) pairs whose latest attempt failed so"""
    requests: int = 0
    attempt_failures: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    warnings: list[str] = field(default_factory=list)
    """what runs warned about, "run N: ..." (a default or a suspect box convention)"""
    problems: list[str] | None = None
    """with check=True: the integrity problems found (empty: sound)"""
    batch_jobs: list[BatchJobView] = field(default_factory=list)
    """the provider batch jobs of batch-mode runs, oldest first"""

    @property
    def runs(self) -> int:
        return len(self.history)

    @property
    def completed(self) -> dict[str, int]:
        """step -> images with a current completion (steps with none left out)."""
        return {s.number: s.done for s in self.steps if s.done}

    @property
    def nothing_found(self) -> dict[str, int]:
        """step -> images whose current completion found nothing (part of completed)."""
        return {s.number: s.nothing_found for s in self.steps if s.nothing_found}

    @property
    def failed(self) -> dict[str, int]:
        """step -> images whose latest attempt failed (steps with none left out)."""
        return {s.number: s.failed for s in self.steps if s.failed}

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-able values (the keys of the class docstring)."""
        return {
            "ledger": str(self.path), "pipeline": self.pipeline, "state": self.last_run,
            "input": _fields(self.input), "images_seeded": self.images,
            "steps": [_fields(s) for s in self.steps],
            "live": _fields(self.live) if self.live is not None else None,
            "failed": [_fields(f) for f in self.failed_images],
            "failures_by_kind": dict(self.failures.most_common()),
            "runs": [_fields(r) for r in self.history],
            "requests": self.requests, "attempt_failures": dict(self.attempt_failures),
            "tokens": dict(self.tokens), "cost_usd": self.cost_usd,
            "warnings": list(self.warnings), "problems": self.problems,
            "batch_jobs": [{"key": j.key, "job_id": j.job_id, "state": j.state,
                            "open": j.open, "requests": len(j.requests),
                            "answered": j.finished.answered if j.finished else None}
                           for j in self.batch_jobs],
        }


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


def ledger_status(results_dir: str | Path, *, check: bool = False) -> LedgerStatus:
    """What the ledger of `results_dir` holds, against the input its latest generate run names
    (read again now: when it cannot be read, `input.problem` says why in one line and the rest
    is reported without it); with `check`, its integrity problems too.

    Raises LedgerError when there is no ledger there (or it is not ours, or newer).
    """
    results_dir = Path(results_dir)
    with Ledger.open(results_dir, create=False) as ledger:
        holder = lock_holder(results_dir)
        conn = ledger.connection()
        started = _latest_generate(ledger)
        pipeline = _pipeline(started)
        input_ids, size = read_input(started, pipeline)
        seeded = status_queries.seeded_ids(conn)
        if input_ids is not None:
            size = InputSize(len(input_ids), len(input_ids & seeded), size.skipped)
        outcomes = status_queries.failed_outcomes(conn)
        status = LedgerStatus(path=ledger.path, pipeline=started.pipeline if started else None,
                              last_run=None, images=len(seeded), input=size)
        stale = seeded - input_ids if input_ids is not None else set()
        status.steps = step_statuses(
            pipeline, started, outcomes, queries.completed_per_step(conn),
            status_queries.current_of(conn, {o.image_id for o in outcomes} | stale),
            queries.nothing_found_per_step(conn), input_ids)
        status.failed_images = _failed(conn, pipeline, outcomes)
        status.failures = Counter(f.kind for f in status.failed_images)
        if holder is not None:
            status.live = LiveRun(holder.pid, holder.host, holder.since,
                                  status_queries.newest_event_at(conn))
        status.batch_jobs = batch_jobs(ledger)
        status.history = _runs(status_queries.run_facts(conn), batch_usage(ledger),
                               live=holder is not None)
        status.last_run = _state(status.history, len(status.failed_images),
                                 live=holder is not None)
        status.requests = queries.request_count(conn)
        status.attempt_failures = queries.attempt_failures(conn)
        status.tokens = queries.token_totals(conn)
        spent = [r for r in status.history if r.requests or any(r.tokens.values())]
        status.cost_usd = (None if any(r.cost_usd is None for r in spent)
                           else sum(r.cost_usd or 0.0 for r in spent))
        status.warnings = [f"run {number}: {message}"
                           for number, _, message in queries.run_warnings(conn)]
        if check:
            status.problems = check_ledger(ledger)
    return status


def _latest_generate(ledger: Ledger) -> RunStarted | None:
    row = status_queries.latest_generate_run(ledger.connection())
    if row is None:
        return None
    try:
        event = parse_event(json.loads(row[1]))
    except (ValueError, ValidationError):
        return None  # a damaged run_started: `status --check` names it
    return event if isinstance(event, RunStarted) else None


def _pipeline(started: RunStarted | None) -> Pipeline | None:
    if started is None:
        return None
    try:
        return get_pipeline(started.pipeline)
    except AutoLabelError:
        return None


def _reason(outcome: status_queries.LatestOutcome) -> str:
    """The failure's message on one line, without the `<image> step N (<name>): ` the engine
    puts in front (the listing shows both)."""
    lines = (outcome.message or "").strip().splitlines()
    line = lines[0] if lines else ""
    prefix = re.match(rf"{re.escape(outcome.image_id)} step {re.escape(outcome.step)} "
                      r"\([^)]*\): ", line)
    return line[prefix.end():] if prefix else line


def _failed(conn: sqlite3.Connection, pipeline: Pipeline | None,
            outcomes: list[status_queries.LatestOutcome]) -> list[FailedImage]:
    names = step_names(pipeline)
    failures = [o for o in outcomes if o.failed]
    where = status_queries.sources(conn, {o.image_id for o in failures})
    return [FailedImage(o.image_id, o.step, names.get(o.step, o.step), o.kind or "unknown",
                        _reason(o), o.at, where.get(o.image_id)) for o in failures]


def _runs(facts: list[status_queries.RunFacts], batched: dict[str, Usage], *,
          live: bool) -> list[RunReport]:
    now = time.time()
    reports = []
    for index, run in enumerate(facts):
        is_live = live and run.status is None and index == len(facts) - 1
        status = run.status or (RUNNING if is_live else KILLED)
        end = run.finished_at if run.finished_at is not None else (
            now if is_live else run.last_event_at)
        answer = run.answer_tokens  # as the summary counts them: thinking apart, never twice
        if thinking_in_completion(run.backend or ""):
            answer = max(0, answer - run.thinking_tokens)
        tokens = {"prompt": run.prompt_tokens, "answer": answer,
                  "thinking": run.thinking_tokens}
        reports.append(RunReport(
            number=run.number, run_id=run.run_id, purpose=run.purpose, model=run.model,
            started_at=run.started_at, finished_at=run.finished_at,
            duration_s=max(0.0, end - run.started_at), status=status, requests=run.requests,
            tokens=tokens, cost_usd=_cost(run, batched.get(run.run_id)),
            new_images=run.new_images,
            failed_images=run.failed_images, stopped_by=run.stopped_by,
            input_problems=_input_problems(run.input_warning)))
    return reports


def _cost(run: status_queries.RunFacts, batched: Usage | None = None) -> float | None:
    """US dollars of the run's tokens at the price it ran at (its spec's `vlm.<backend>.price`,
    else the table's for its model: `prices.price_from_spec`), the tokens its batch jobs
    delivered (`batched`) at the backend's batch discount (`prices.BATCH_DISCOUNT`); 0 for a run
    that spent none, None when no price is known."""
    if not (run.prompt_tokens or run.answer_tokens or run.thinking_tokens):
        return 0.0
    try:
        spec = json.loads(run.spec) if run.spec else {}
    except ValueError:
        spec = {}
    price = price_from_spec(spec if isinstance(spec, dict) else {}, run.backend or "",
                            run.model or "")
    if price is None:
        return None
    included = thinking_in_completion(run.backend or "")
    cost = usage_cost(price, run.prompt_tokens, run.answer_tokens, run.thinking_tokens,
                      completion_includes_thinking=included)
    if batched is not None:  # those tokens cost only the discounted share
        saved = 1.0 - BATCH_DISCOUNT.get(run.backend or "", 1.0)
        cost -= saved * usage_cost(price, batched.prompt_tokens or 0,
                                   batched.completion_tokens or 0,
                                   batched.thinking_tokens or 0,
                                   completion_includes_thinking=included)
    return cost


def _input_problems(warning: str | None) -> int:
    """How many input problems a run's `input` warning says it skipped (`N input problem(s)
    skipped, e.g. ...`, as `pipelines.engine.runner` writes it); 0 without one."""
    if warning is None:
        return 0
    said = re.match(r"\s*(\d+) input problem", warning)
    return max(1, int(said.group(1))) if said else 1


def _afflictions(failed: int, input_problems: int) -> list[str]:
    plural = "" if input_problems == 1 else "s"
    return ([f"{failed:,} failed"] if failed else []) + (
        [f"{input_problems:,} input problem{plural}"] if input_problems else [])


def _state(history: list[RunReport], failed_now: int, *, live: bool) -> str | None:
    """The latest generate run as one phrase (`LedgerStatus`'s `state`), with `failed_now`
    image steps whose latest outcome is a failure; `running` whenever the lock is held (a run
    that is just starting has not recorded itself yet)."""
    if live:
        return RUNNING
    last = next((run for run in reversed(history) if run.purpose == "generate"), None)
    if last is None:
        return None
    if last.status == "interrupted" and last.stopped_by:
        return f"stopped by {last.stopped_by}"
    said = _afflictions(failed_now, last.input_problems)
    if last.status == "completed" and said:
        return f"completed with {' and '.join(said)}"
    return last.status
