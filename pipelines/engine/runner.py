"""A run: plan which (image, step) pairs need the model, run them on a worker pool, record it all.

The parts: `planning` decides (pure), `session` holds the lock and the run's events, `pool` runs
tasks, `seeding` and `image_cache` read images, `execute` asks the model for one step of one image,
`tracker` counts outcomes, `run_warnings` says what the run must. This module wires them: the input
is read in batches (`batches`: each batch's projections read with the indexes, at most IN_FLIGHT
images planned but not done), and for each image either its seed is still valid (its steps are
planned at once) or it is seeded by a worker first; workers start on the first images while later
batches are planned. When a step completes, planning runs again for that image, so downstream
steps start as soon as they can (per-image pipelining). An image's later steps go before other
images' earlier ones.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from auto_label.backends.base import Backend, PreparedImage
from auto_label.backends.prices import BATCH_DISCOUNT
from auto_label.errors import RunAborted
from auto_label.ledger import queries
from auto_label.ledger.events import (
    ImageRejected,
    StepFailed,
    StepSelected,
)
from auto_label.pipelines.contract import (
    ImageInput,
    Inputs,
    InputScan,
    Pipeline,
    Step,
    StepInput,
    StepOutput,
)
from auto_label.pipelines.engine import planning
from auto_label.pipelines.engine.alarm import ConventionAlarm
from auto_label.pipelines.engine.batch_adopt import batch_mode
from auto_label.pipelines.engine.batches import BATCH, IN_FLIGHT, InFlight, Known, read_batch
from auto_label.pipelines.engine.budget import run_budget
from auto_label.pipelines.engine.endpoint import preflight
from auto_label.pipelines.engine.execute import Completed, Failed, Pacer, StepExecutor, StepJob
from auto_label.pipelines.engine.image_cache import ImageCache
from auto_label.pipelines.engine.monitor import Monitor
from auto_label.pipelines.engine.options import RunOptions
from auto_label.pipelines.engine.planning import (
    Ask,
    Decision,
    ImageFacts,
    Progress,
    Projections,
    Resolved,
    Reuse,
    Settings,
    Skip,
)
from auto_label.pipelines.engine.pool import Task, WorkerPool
from auto_label.pipelines.engine.progress import NullProgress, ProgressSink, RunSummary
from auto_label.pipelines.engine.rereading import stored_answers
from auto_label.pipelines.engine.run_warnings import RunWarnings
from auto_label.pipelines.engine.seeding import ImageProblem, seed_image
from auto_label.pipelines.engine.session import RunSession, RunStatus
from auto_label.pipelines.engine.tracker import Tracker
from auto_label.pipelines.images.decode import IngestSettings


@dataclass
class _Image:
    """An image of this run; `progress` and `size` change under the runner's lock."""

    item: ImageInput
    facts: ImageFacts | None = None
    size: tuple[int, int] = (0, 0)
    """the upright frame its boxes are stored in"""
    sha256: str = ""
    progress: Progress = field(default_factory=Progress)
    projections: Projections = field(default_factory=Projections)
    """what the ledger held of this image when it was planned"""
    pending: int = 1
    """its tasks not ended, plus one while it is planned: at 0 it leaves `InFlight`"""
    seen: bool = True
    """the ledger held its seed when planned (else no answer of it is stored: seeds come first)"""


def run_pipeline(options: RunOptions, pipeline: Pipeline, backend: Backend, *,
                 progress: ProgressSink | None = None, stop: threading.Event | None = None,
                 pacer: Pacer | None = None) -> RunSummary:
    """Run `pipeline` on its inputs as `options` say; returns the run's summary.

    Raises InputError / SpecError before any request for bad inputs, LedgerError for an unusable
    results_dir (or one another run holds), RunAborted when the endpoint stops the run (a
    rejected key, an unreachable or misconfigured endpoint, a spent quota: found by a pre-flight
    request before any image, or during the run, after the requests in flight are recorded).
    `stop.set()` from another thread ends the run early.
    """
    scan = pipeline.scan(options.data)
    preflight(backend)
    stop = stop or threading.Event()
    workflow = options.workflow
    settings = Settings(pipeline, frozenset(workflow.steps), workflow.force_reprocess,
                        backend.describe())
    steps = settings.selected_steps
    summary = RunSummary("", pipeline.name, options.results_dir, 0,
                         [(s.number, s.name) for s in steps])
    monitor = Monitor.of(options, pipeline.name, backend, summary.steps, pacer=pacer, stop=stop)
    tracker = Tracker(summary, progress or NullProgress(), monitor)
    session = RunSession.start(
        options.results_dir, pipeline=pipeline.name, steps=[s.number for s in steps],
        spec=options.spec, backend=backend.name, model=str(settings.model.get("model", "")),
        force=settings.force, on_commit=tracker.committed)
    try:
        if options.retry_failed:
            failed = queries.failed_images(session.ledger.connection())
            scan = InputScan.of(Inputs([item for batch in scan.batches(BATCH) for item in batch
                                        if item.image_id in failed], scan.warnings))
        if options.limit is not None:
            scan = scan.first(options.limit)
        summary.run_id, summary.images = session.run_id, scan.count
        jobs = batch_mode(options, pipeline.name, backend, session, stop, tracker.note)
        price = options.price.scaled(BATCH_DISCOUNT.get(backend.name, 1.0)) \
            if jobs and options.price else options.price
        budget = run_budget(price, options.max_cost, backend, summary=summary,
                            key=f"{pipeline.name}.workflow.max_cost", say=tracker.alarm, stop=stop)
        executor = StepExecutor(backend, session.writer, workflow.retries, stop,
                                run_id=session.run_id, run_number=session.number,
                                generation=session.generation, budget=budget, transport=jobs,
                                pacer=None if jobs else pacer, spec_block=pipeline.name)
        workers = max(workflow.max_workers, jobs.max_requests) if jobs else workflow.max_workers
        run = _Run(settings, session, executor, tracker, backend, workers, stop, options.ingest)
        try:
            interrupted = run.work(scan)
        finally:
            if jobs is not None:
                jobs.close()
        run.warnings.still_suspect()
    except BaseException:
        stop.set()
        session.close_on_error()
        raise
    status: RunStatus = "aborted" if run.abort else "interrupted" if interrupted else "completed"
    if interrupted and summary.interrupted is None:
        summary.interrupted = status
    summary.requests = executor.requests
    session.finish(status, {step: dict(counts) for step, counts in summary.counts.items()},
                   summary.interrupted if summary.interrupted not in (None, status) else "")
    if run.abort is not None:
        raise run.abort
    return summary


class _Run:
    """The images of one run, planned and worked on by the pool."""

    def __init__(self, settings: Settings, session: RunSession, executor: StepExecutor,
                 tracker: Tracker, backend: Backend, workers: int, stop: threading.Event,
                 ingest: IngestSettings) -> None:
        self.settings = settings
        self.pipeline = settings.pipeline
        self.steps = settings.selected_steps
        self.session = session
        self.executor = executor
        self.tracker = tracker
        self.backend = backend
        self.stop = stop
        self.ingest = ingest
        self.images = ImageCache(2 * workers + 4, ingest, backend.frame)
        self.pool = WorkerPool(workers, stop, self._unexpected)
        self.in_flight = InFlight(IN_FLIGHT, stop)
        self.warnings = RunWarnings(session, tracker)
        self.abort: RunAborted | None = None
        self.alarm = ConventionAlarm(
            backend.frame.coordinates, f"{self.pipeline.name}.vlm.{backend.name}.coordinates",
            self.warnings.suspect)
        self._lock = threading.Lock()

    def work(self, scan: InputScan) -> bool:
        """Plan and run every image; True when the run was stopped before the end."""
        self.tracker.begin(scan.count)
        self.warnings.opening(scan.warnings, self.pipeline.name, self.backend)
        try:
            self.pool.start()
            self._plan(scan.batches(BATCH))
            self.pool.wait()
        finally:
            interrupted = self.stop.is_set()
            self.pool.shutdown()  # whatever is still queued is left for the next run
            self.session.writer.flush()  # completions are counted as they are committed
            self.tracker.end()
        return interrupted

    # -- planning ------------------------------------------------------------------------------

    def _plan(self, batches: Iterator[list[ImageInput]]) -> None:
        """Plan each image, a batch at a time, while the workers run what is planned."""
        conn = self.session.ledger.connection()
        steps = [s.number for s in self.pipeline.steps]
        for batch in batches:
            known = read_batch(conn, [item.image_id for item in batch], steps)
            for item in batch:
                if not self.in_flight.enter():
                    return
                self._plan_image(item, known.get(item.image_id) or Known())

    def _plan_image(self, item: ImageInput, known: Known) -> None:
        """Its steps decided now when its seed still holds, else its seeding queued."""
        image = _Image(item, projections=known.projections, seen=known.row is not None)
        try:
            stat = item.path.stat()
        except OSError:
            stat = None
        row = known.row
        with self._lock:
            if row is not None and planning.unchanged(row, item, stat, self.ingest.key):
                assert row.image_key is not None
                image.facts, image.size = ImageFacts(item, row.image_key), (row.width, row.height)
                image.sha256 = row.sha256
                self._decide(image)
            else:
                self._submit(image, 0, self._task(image, None, lambda: self._seed(image)))
        self._ended(image)

    def _submit(self, image: _Image, priority: int, task: Task) -> None:
        """Queue one of the image's tasks (lock held)."""
        image.pending += 1
        self.pool.submit(priority, task)

    def _ended(self, image: _Image) -> None:
        """One of the image's tasks (or its planning) ended: its slot is free after the last."""
        with self._lock:
            image.pending -= 1
            done = image.pending == 0
        if done:
            self.in_flight.leave()

    def _decide(self, image: _Image) -> None:
        """Plan what can be planned for `image` now and act on it (lock held)."""
        assert image.facts is not None
        if image.progress.decided >= self.settings.selected:
            return  # every step this run runs is decided: nothing left to plan
        image.progress, decisions = planning.decide(image.facts, image.progress, self.settings,
                                                    image.projections)
        for decision in decisions:
            self._apply(image, decision)

    def _apply(self, image: _Image, decision: Decision) -> None:
        step = decision.step
        if isinstance(decision, Ask):
            # deeper steps first (records complete early, memory stays flat); steps of one
            # depth (referring's 0 and 1) keep their order, so an image's are read together
            priority = -self.pipeline.depth(step)
            self._submit(image, priority, self._task(
                image, step, functools.partial(self._ask, image, decision), decision.fingerprint))
        elif isinstance(decision, Reuse):
            if decision.select:
                self.session.writer.put(StepSelected(
                    run_id=self.session.run_id, image_id=image.item.image_id, step=step.number,
                    fingerprint=decision.fingerprint))
            self.tracker.outcome(step.number, "cached")
        elif isinstance(decision, Skip):
            self.tracker.skipped(step.number, decision.reason)

    # -- tasks ---------------------------------------------------------------------------------

    def _task(self, image: _Image, step: Step | None, body: Callable[[], None],
              fingerprint: str = "") -> Task:
        """`body` with the run's error handling: a rejected key stops the run, any other error
        fails this image's step (or its seeding) with the error named."""

        def task() -> None:
            try:
                body()
            except RunAborted as exc:  # the endpoint's problem: stop, fail no image for it
                self.abort = self.abort or exc
                self.stop.set()
            except Exception as exc:
                problem = f"internal error {type(exc).__name__}: {exc}"
                if step is None:
                    self._reject(image, "internal_error", problem)
                else:
                    self._fail(image, step, fingerprint, "internal_error", problem)
            finally:
                self._ended(image)

        return task

    def _unexpected(self, task: Task, exc: Exception) -> None:
        self.tracker.warn([f"internal error in the worker pool: {type(exc).__name__}: {exc}"])

    def _seed(self, image: _Image) -> None:
        item = image.item
        try:
            seeded, prepared = seed_image(item, self.session.run_id, self.ingest,
                                          self.backend.frame)
        except ImageProblem as problem:
            self._reject(image, problem.kind, str(problem))
            return
        size = (seeded.width, seeded.height)
        self.images.keep(item.image_id, prepared)
        self.session.writer.put(seeded)
        problems = self.pipeline.check_seed(seeded) if self.pipeline.check_seed else []
        self.tracker.warn(problems)
        with self._lock:
            image.facts, image.size = ImageFacts(item, seeded.image_key), size
            image.sha256 = seeded.sha256
            image.progress, found = planning.imports(image.facts, image.progress, self.settings,
                                                     image.projections)
            for event in planning.imported_events(found, self.session.run_id, item):
                self.session.writer.put(event)
            self._decide(image)

    def _reject(self, image: _Image, kind: str, problem: str) -> None:
        """The image cannot be used: its first steps fail, the rest are skipped."""
        item = image.item
        failing, skipped = planning.unusable(self.settings)
        messages = {s.number: f"{item.image_id} step {s.number} ({s.name}): {problem}"
                    for s in failing}
        self.session.writer.put(
            ImageRejected(run_id=self.session.run_id, image_id=item.image_id,
                          path=str(item.path), kind=kind, message=problem, source=item.source),
            *[StepFailed(run_id=self.session.run_id, image_id=item.image_id, step=s.number,
                         fingerprint="", kind=kind, message=messages[s.number])
              for s in failing],
        )
        with self._lock:
            for step in failing:
                self.tracker.failed(step.number, kind, messages[step.number])
            for step in skipped:
                if step.number not in image.progress.decided:
                    self.tracker.skipped(step.number, "needs a step that failed: the image "
                                                      "cannot be used")
            image.progress = Progress(decided=frozenset(s.number for s in self.steps),
                                      dead=frozenset(s.number for s in self.steps))

    def _ask(self, image: _Image, ask: Ask) -> None:
        item, step = image.item, ask.step
        assert image.facts is not None
        try:
            prepared = self.images.get(item.image_id, item.path, sha256=image.sha256)
        except OSError as exc:
            self._fail(image, step, ask.fingerprint, "image_unreadable",
                       f"{item.path}: cannot read the image ({exc.strerror or exc})")
            return
        except ImageProblem as problem:
            self._fail(image, step, ask.fingerprint, problem.kind, str(problem))
            return
        job = StepJob(item.image_id, step, ask.fingerprint, ask.upstream,
                      self._step_input(image, step, prepared), prepared,
                      request_fingerprint=ask.request_fingerprint)
        stored = [] if self.settings.force or not image.seen else stored_answers(
            self.session.ledger, item.image_id, step.number, job.asked)
        result = self.executor.reuse(job, stored) or self.executor.execute(job)
        if isinstance(result, Completed):
            with self._lock:
                image.progress = planning.completed(
                    image.progress, step.number,
                    Resolved(result.output_hash, None, result.output))
                self._decide(image)
        elif isinstance(result, Failed):
            self._failed(image, step, result.kind, result.message)

    def _step_input(self, image: _Image, step: Step, prepared: PreparedImage) -> StepInput:
        item = image.item
        return StepInput(
            image_id=item.image_id, caption=item.caption, extra=item.extra,
            upstream=self._upstream(image, step), convention=self.backend.frame.coordinates,
            sent_size=prepared.sent_size, original_size=image.size, observe=self.alarm.observe)

    def _upstream(self, image: _Image, step: Step) -> Mapping[str, StepOutput]:
        """The outputs `step` builds on, read back from the ledger when not in memory.
        Raises LedgerError when a projection points at anything but a completion."""
        outputs: dict[str, StepOutput] = {}
        for number in step.needs:
            resolved = image.progress.resolved[number]
            if resolved.output is not None:
                outputs[number] = resolved.output
                continue
            assert resolved.seq is not None
            event = self.session.ledger.completion(resolved.seq)
            outputs[number] = self.pipeline.step(number).stored_output(event)
        return outputs

    def _fail(self, image: _Image, step: Step, fingerprint: str, kind: str,
              problem: str) -> None:
        """Record a failure of `step` found outside the executor, then count it."""
        message = f"{image.item.image_id} step {step.number} ({step.name}): {problem}"
        self.session.writer.put(StepFailed(
            run_id=self.session.run_id, image_id=image.item.image_id, step=step.number,
            fingerprint=fingerprint, kind=kind, message=message))
        self._failed(image, step, kind, message)

    def _failed(self, image: _Image, step: Step, kind: str, message: str) -> None:
        """Count a recorded failure; the steps that need this one are skipped."""
        with self._lock:
            self.tracker.failed(step.number, kind, message)
            image.progress = planning.failed(image.progress, step.number)
            if image.facts is not None:
                self._decide(image)
