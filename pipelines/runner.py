"""The run: plan which (image, step) pairs need the model, run them on a worker pool, record it all.

Planning reads the ledger's projections once: images whose file and inputs match their latest seed
are not read again, and a step whose fingerprint already has a completion is `cached`. The rest
become tasks on a priority queue served by `max_workers` threads: an image's later steps go before
other images' earlier ones, so records complete early and memory stays flat. When a step completes,
its downstream steps are evaluated for that image at once (per-image pipelining).
"""

from __future__ import annotations

import itertools
import os
import queue
import socket
import threading
import time
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from auto_label import __version__
from auto_label.backends.base import Backend, PreparedImage
from auto_label.backends.imageprep import prepare_bytes, prepare_image
from auto_label.errors import AuthRejected, LedgerError
from auto_label.ledger.events import (
    ImageRejected,
    RunFinished,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepSelected,
)
from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.lock import RunLock
from auto_label.ledger.store import CurrentRow, Ledger
from auto_label.ledger.writer import LedgerWriter
from auto_label.pipelines.execute import Completed, Failed, Pacer, StepExecutor, StepJob
from auto_label.pipelines.progress import NullProgress, ProgressSink, RunSummary
from auto_label.pipelines.prompts import PROMPT_VERSIONS
from auto_label.pipelines.seeding import ImageProblem, seed_image, unchanged
from auto_label.pipelines.steps import ImageInput, Pipeline, Step, StepInput
from auto_label.spec import Spec

MAX_EXAMPLES = 5
MAX_NOTES = 20


@dataclass
class _Image:
    item: ImageInput
    sha256: str | None = None
    size: tuple[int, int] = (0, 0)
    resolved: dict[str, tuple[str, int | None, dict[str, Any] | None]] = field(
        default_factory=dict)
    """step -> (output hash, seq of its completion event or None, output if in memory)"""
    outcome: dict[str, str] = field(default_factory=dict)
    evaluated: set[str] = field(default_factory=set)
    """steps already decided (queued, cached or skipped) in this run"""


@dataclass(frozen=True)
class _SeedTask:
    image: _Image


@dataclass(frozen=True)
class _StepTask:
    image: _Image
    step: Step
    fingerprint: str
    upstream: dict[str, str]


class Runner:
    """One `generate` run. Create, then call `run()` once."""

    def __init__(self, spec: Spec, pipeline: Pipeline, backend: Backend, *,
                 progress: ProgressSink | None = None, stop: threading.Event | None = None,
                 pacer: Pacer | None = None, retry_failed: bool = False) -> None:
        self.spec = spec
        self.block = spec.block
        self.pipeline = pipeline
        self.backend = backend
        self.progress = progress or NullProgress()
        self.stop = stop or threading.Event()
        self.pacer = pacer
        self.retry_failed = retry_failed
        workflow = self.block.workflow
        self.selected = [s for s in pipeline.steps if s.number in workflow.steps]
        self.selected_numbers = {s.number for s in self.selected}
        self.force = workflow.force_reprocess
        self.run_id = uuid.uuid4().hex
        self.model = backend.describe()
        self._lock = threading.Lock()
        self._queue: queue.PriorityQueue[tuple[int, int, object]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._outstanding = 0
        self._idle = threading.Condition(self._lock)
        self._abort: AuthRejected | None = None
        self._prepared: OrderedDict[str, PreparedImage] = OrderedDict()
        self._prepared_lock = threading.Lock()

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        inputs = self.pipeline.read_inputs(self.block)
        items = inputs.items
        results_dir = self.spec.results_dir
        with Ledger.open(results_dir) as ledger, RunLock(results_dir):
            self._check_pipeline(ledger)
            if self.retry_failed:
                failed = ledger.failed_images()
                items = [item for item in items if item.image_id in failed]
            number = ledger.start_run(self.run_id, time.time())
            self.generation = number if self.force else 0
            summary = RunSummary(self.run_id, self.pipeline.name, results_dir, len(items),
                                 [(s.number, s.name) for s in self.selected])
            self.summary = summary
            summary.warnings.extend(inputs.warnings)
            self.ledger = ledger
            self.writer = LedgerWriter(ledger.path)
            self.executor = StepExecutor(self.backend, self.writer, self.block.workflow.retries,
                                         self.stop, run_id=self.run_id,
                                         generation=self.generation, pacer=self.pacer)
            self.writer.put(self._run_started())
            self.progress.begin(summary.steps, len(items))
            for warning in inputs.warnings[:MAX_NOTES]:
                self.progress.note(warning)
            if len(inputs.warnings) > MAX_NOTES:
                self.progress.note(f"... and {len(inputs.warnings) - MAX_NOTES} more input "
                                   "problems (see the run summary)")
            workers = [threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
                       for i in range(self.block.workflow.max_workers)]
            try:
                for worker in workers:
                    worker.start()
                self._plan(items)
                self._wait()
            except BaseException:
                self.stop.set()
                raise
            finally:
                interrupted = self.stop.is_set()
                self.stop.set()  # whatever is still queued is left for the next run
                for _ in workers:
                    self._queue.put((-(10**9), next(self._order), None))
                for worker in workers:
                    worker.join()
                self.writer.close()
                self.progress.end()
            summary.requests = self.executor.requests
            status = "aborted" if self._abort else "interrupted" if interrupted else "completed"
            if interrupted and summary.interrupted is None:
                summary.interrupted = status
            ledger.append([RunFinished(run_id=self.run_id, status=status, summary={
                step: dict(counts) for step, counts in summary.counts.items()})])
            ledger.finish_run(self.run_id, time.time(), status)
        if self._abort is not None:
            raise self._abort
        return summary

    def _check_pipeline(self, ledger: Ledger) -> None:
        event = ledger.latest("run_started")
        if isinstance(event, RunStarted) and event.pipeline != self.pipeline.name:
            raise LedgerError(
                f"{ledger.path}: this results_dir holds a {event.pipeline} ledger; "
                f"use another results_dir for {self.pipeline.name}"
            )

    def _run_started(self) -> RunStarted:
        spec = self.spec.model_dump(mode="json")
        return RunStarted(
            run_id=self.run_id, pipeline=self.pipeline.name,
            steps=[s.number for s in self.selected], spec=spec,
            spec_fingerprint=content_hash(spec), tool_version=__version__,
            backend=self.backend.name, model=str(self.model.get("model", "")),
            force_reprocess=self.force, generation=self.generation, pid=os.getpid(),
            host=socket.gethostname(),
        )

    # -- planning ------------------------------------------------------------------------------

    def _plan(self, items: list[ImageInput]) -> None:
        rows = self.ledger.images()
        self._completions = self.ledger.completions()
        self._current: dict[tuple[str, str], CurrentRow] = self.ledger.current()
        for item in items:
            image = _Image(item)
            row = rows.get(item.image_id)
            try:
                stat = item.path.stat()
            except OSError:
                stat = None
            with self._lock:
                if row is not None and unchanged(row, item, stat):
                    image.sha256, image.size = row.sha256, (row.width, row.height)
                    self._evaluate_image(image)
                else:
                    self._submit(0, _SeedTask(image))

    def _evaluate_image(self, image: _Image) -> None:
        """Resolve what earlier runs left, then evaluate the steps that can start (lock held)."""
        selected = self.selected_numbers
        for step in self.pipeline.steps:
            if step.number not in selected and step.number not in image.resolved:
                row = self._current.get((image.item.image_id, step.number))
                if row is not None:
                    image.resolved[step.number] = (row.output_hash, row.seq, None)
        for step in self.selected:
            missing = [n for n in step.needs if n not in image.resolved]
            if not missing:
                self._evaluate(image, step)
            elif any(n not in selected for n in missing):
                self._skip(image, step)  # needs a step this run does not run and never completed

    def _evaluate(self, image: _Image, step: Step) -> None:
        """Decide whether `step` needs the model for `image`; its upstream is resolved."""
        if step.number in image.evaluated:
            return
        image.evaluated.add(step.number)
        upstream = {n: image.resolved[n][0] for n in step.needs}
        fingerprint = self._fingerprint(image, step, upstream)
        key = (image.item.image_id, step.number, fingerprint)
        hit = None if self.force else self._completions.get(key)
        if hit is None:
            self._submit(-(self.pipeline.steps.index(step) + 1),
                         _StepTask(image, step, fingerprint, upstream))
            return
        seq, output_hash = hit
        current = self._current.get((image.item.image_id, step.number))
        if current is None or current.fingerprint != fingerprint:
            self.writer.put(StepSelected(run_id=self.run_id, image_id=image.item.image_id,
                                         step=step.number, fingerprint=fingerprint))
        image.resolved[step.number] = (output_hash, seq, None)
        self._outcome(image, step.number, "cached")
        self._downstream(image, step.number)

    def _downstream(self, image: _Image, number: str) -> None:
        for step in self.pipeline.downstream(number):
            if step.number in self.selected_numbers and \
                    all(n in image.resolved for n in step.needs):
                self._evaluate(image, step)

    def _skip(self, image: _Image, step: Step) -> None:
        """`step` cannot run for `image`; neither can anything downstream of it (lock held)."""
        if step.number in image.outcome:
            return
        self._outcome(image, step.number, "skipped")
        for later in self.pipeline.downstream(step.number):
            if later.number in self.selected_numbers:
                self._skip(image, later)

    def _fingerprint(self, image: _Image, step: Step, upstream: dict[str, str]) -> str:
        seed_extra = image.item.extra
        return content_hash({
            "pipeline": self.pipeline.name,
            "step": step.number,
            "prompt": [step.task, PROMPT_VERSIONS[step.task]],
            "image": image.sha256,
            "caption": image.item.caption if step.uses_caption else None,
            "extra": {k: seed_extra.get(k) for k in step.uses_extra},
            "model": self.model,
            "upstream": upstream,
        })

    def _outcome(self, image: _Image, number: str, outcome: str) -> None:
        image.outcome[number] = outcome
        self.summary.counts.setdefault(number, Counter())[outcome] += 1
        self.progress.advance(number, outcome)

    # -- the worker pool -----------------------------------------------------------------------

    def _submit(self, priority: int, task: object) -> None:
        self._outstanding += 1
        self._queue.put((priority, next(self._order), task))

    def _wait(self) -> None:
        with self._idle:
            while self._outstanding > 0 and not self.stop.is_set():
                self._idle.wait(0.2)

    def _work(self) -> None:
        while True:
            _, _, task = self._queue.get()
            if task is None:
                return
            try:
                if not self.stop.is_set():
                    if isinstance(task, _SeedTask):
                        self._seed(task.image)
                    elif isinstance(task, _StepTask):
                        self._step(task)
            except AuthRejected as exc:
                with self._idle:
                    self._abort = self._abort or exc
                    self.stop.set()
                    self._idle.notify_all()
            except Exception as exc:
                self._internal_error(task, exc)
            finally:
                with self._idle:
                    self._outstanding -= 1
                    if self._outstanding == 0:  # waking the main thread per task costs CPU
                        self._idle.notify_all()

    def _seed(self, image: _Image) -> None:
        item = image.item
        try:
            seeded, data = seed_image(item, self.run_id)
            size = (seeded.width, seeded.height)
            try:
                prepared = prepare_bytes(data, sha256=seeded.sha256, original_size=size,
                                         max_image_side=self.backend.max_image_side)
            except (OSError, ValueError, SyntaxError) as exc:
                raise ImageProblem(
                    "image_corrupt", f"{item.path}: corrupt image, cannot resize it ({exc})"
                ) from None
        except ImageProblem as problem:
            self._reject(image, problem.kind, str(problem))
            return
        self.writer.put(seeded)
        self._remember(item.image_id, prepared)
        problems = self.pipeline.check_seed(seeded) if self.pipeline.check_seed else []
        with self._lock:
            for problem in problems:
                self.summary.warnings.append(problem)
                self.progress.note(problem)
            image.sha256, image.size = seeded.sha256, size
            self._import(image)
            self._evaluate_image(image)

    def _import(self, image: _Image) -> None:
        """Record the step outputs the input already holds as completions, for the steps this
        run does not run, so that later steps can build on them (lock held)."""
        item = image.item
        for step in self.pipeline.steps:
            output = item.imports.get(step.number)
            if output is None or step.number in self.selected_numbers or \
                    any(n not in image.resolved for n in step.needs):
                continue  # a step this run runs is computed afresh, not imported
            upstream = {n: image.resolved[n][0] for n in step.needs}
            fingerprint = content_hash({"imported": output, "upstream": upstream})
            output_hash = content_hash(output)
            key = (item.image_id, step.number, fingerprint)
            if key in self._completions:
                self.writer.put(StepSelected(run_id=self.run_id, image_id=item.image_id,
                                             step=step.number, fingerprint=fingerprint))
            else:
                self.writer.put(StepCompleted(
                    run_id=self.run_id, image_id=item.image_id, step=step.number,
                    fingerprint=fingerprint, output=output, output_hash=output_hash,
                    upstream=upstream, source=item.source))
                self._completions[key] = (0, output_hash)
            image.resolved[step.number] = (output_hash, None, output)

    def _reject(self, image: _Image, kind: str, problem: str) -> None:
        """The image cannot be used: its first steps fail, the rest are skipped."""
        item = image.item
        roots = [s for s in self.selected if not s.needs]
        messages = {s.number: f"{item.image_id} step {s.number} ({s.name}): {problem}"
                    for s in roots}
        self.writer.put(
            ImageRejected(run_id=self.run_id, image_id=item.image_id, path=str(item.path),
                          kind=kind, message=problem, source=item.source),
            *[StepFailed(run_id=self.run_id, image_id=item.image_id, step=s.number,
                         fingerprint="", kind=kind, message=messages[s.number]) for s in roots],
        )
        with self._lock:
            for step in roots:
                self._failed(image, step, kind, messages[step.number])
            for step in self.selected:
                if step.needs and step.number not in image.outcome:
                    self._skip(image, step)

    def _step(self, task: _StepTask) -> None:
        image, step = task.image, task.step
        item = image.item
        try:
            prepared = self._prepare(image)
        except OSError as exc:
            message = f"{item.image_id} step {step.number} ({step.name}): {item.path}: " \
                      f"cannot read the image ({exc.strerror or exc})"
            self.writer.put(StepFailed(run_id=self.run_id, image_id=item.image_id,
                                       step=step.number, fingerprint=task.fingerprint,
                                       kind="image_unreadable", message=message))
            with self._lock:
                self._failed(image, step, "image_unreadable", message)
            return
        ctx = StepInput(
            image_id=item.image_id, caption=item.caption, extra=item.extra,
            upstream={n: self._output(image, n) for n in step.needs},
            convention=self.backend.convention, sent_size=prepared.sent_size,
            original_size=image.size,
        )
        job = StepJob(item.image_id, step, task.fingerprint, task.upstream, ctx, prepared)
        result = self.executor.execute(job)
        with self._lock:
            if isinstance(result, Completed):
                image.resolved[step.number] = (result.output_hash, None, result.output)
                self._outcome(image, step.number, "completed")
                self._downstream(image, step.number)
            elif isinstance(result, Failed):
                self._failed(image, step, result.kind, result.message)

    def _internal_error(self, task: object, exc: Exception) -> None:
        if isinstance(task, _SeedTask):
            self._reject(task.image, "internal_error",
                         f"internal error {type(exc).__name__}: {exc}")
            return
        assert isinstance(task, _StepTask)
        item, step = task.image.item, task.step
        message = f"{item.image_id} step {step.number} ({step.name}): internal error " \
                  f"{type(exc).__name__}: {exc}"
        self.writer.put(StepFailed(run_id=self.run_id, image_id=item.image_id, step=step.number,
                                   fingerprint=task.fingerprint, kind="internal_error",
                                   message=message))
        with self._lock:
            self._failed(task.image, step, "internal_error", message)

    def _failed(self, image: _Image, step: Step, kind: str, message: str) -> None:
        self._outcome(image, step.number, "failed")
        self.summary.failures[kind] += 1
        if len(self.summary.examples) < MAX_EXAMPLES:
            self.summary.examples.append(message)
        for later in self.pipeline.downstream(step.number):
            if later.number in self.selected_numbers:
                self._skip(image, later)

    def _output(self, image: _Image, number: str) -> dict[str, Any]:
        _, seq, output = image.resolved[number]
        if output is None:
            assert seq is not None
            event = self.ledger.event(seq)
            output = getattr(event, "output", {})
        return output

    def _prepare(self, image: _Image) -> PreparedImage:
        """The image as it is sent, cached for the image's next steps."""
        key = image.item.image_id
        with self._prepared_lock:
            if key in self._prepared:
                self._prepared.move_to_end(key)
                return self._prepared[key]
        assert image.sha256 is not None
        prepared = prepare_image(image.item.path, sha256=image.sha256,
                                 original_size=image.size,
                                 max_image_side=self.backend.max_image_side)
        self._remember(key, prepared)
        return prepared

    def _remember(self, key: str, prepared: PreparedImage) -> None:
        with self._prepared_lock:
            self._prepared[key] = prepared
            while len(self._prepared) > 2 * self.block.workflow.max_workers + 4:
                self._prepared.popitem(last=False)

