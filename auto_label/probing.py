"""`auto_label probe`: which box convention and frame the configured endpoint really answers in.

A handful of generated images with known objects are sent as they are (so a processor's own
resize shows), with the grounding step's prompt; the answers are read every way a model might
mean them, and the reading whose boxes overlap the truth most wins. The requests and answers are
recorded in the results_dir's ledger like any others (a run whose purpose is `probe`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from auto_label.backends.base import Backend, ModelFrame, PreparedImage
from auto_label.backends.registry import create_backend
from auto_label.errors import SpecError
from auto_label.ledger.fingerprint import content_hash, file_sha256
from auto_label.pipelines.engine.endpoint import preflight
from auto_label.pipelines.engine.execute import Completed, Failed, StepExecutor, StepJob
from auto_label.pipelines.engine.pacing import Pacer
from auto_label.pipelines.engine.session import RunSession
from auto_label.pipelines.probing import (
    FITS,
    PROBE_STEP,
    Candidate,
    ProbeAnswer,
    Score,
    probe_images,
    probe_input,
    ranked,
    spec_lines,
)
from auto_label.spec import Spec
from auto_label.spec_edit import set_block_keys
from auto_label.spec_loader import load_spec


@dataclass(frozen=True)
class ProbeReport:
    pipeline: str
    backend: str
    model: str
    configured: ModelFrame
    """how the spec (and the model's profile) reads boxes now"""
    scores: list[Score]
    """every reading, best first"""
    requests: int
    failures: list[str] = field(default_factory=list)
    """one line per probe image whose request failed"""

    @property
    def best(self) -> Score:
        return self.scores[0]

    @property
    def fits(self) -> bool:
        """Some reading explains the answers (mean IoU >= 0.5)."""
        return self.best.mean_iou >= FITS

    @property
    def current(self) -> Candidate:
        return Candidate(self.configured.coordinates, self.configured.smart_resize)

    def spec_lines(self) -> str:
        return spec_lines(self.pipeline, self.backend, self.best, self.current)


def probe(spec: Spec | str | Path, overrides: Sequence[str] = (), *,
          stop: threading.Event | None = None) -> ProbeReport:
    """Probe the spec's endpoint. Raises SpecError / LedgerError / AuthRejected like `generate`."""
    if not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    block = spec.block
    backend = create_backend(block.vlm)
    try:
        preflight(backend)  # an endpoint that is down or misconfigured: one line, not 25 retries
        return _probe(spec, backend, stop or threading.Event())
    finally:
        backend.close()


def _probe(spec: Spec, backend: Backend, stop: threading.Event) -> ProbeReport:
    block = spec.block
    images = probe_images()
    session = RunSession.start(spec.results_dir, pipeline=spec.autolabel_type, steps=[],
                               spec=spec.dump(), backend=backend.name, model=backend.model,
                               force=False, purpose="probe")
    executor = StepExecutor(backend, session.writer, block.workflow.retries, stop,
                            run_id=session.run_id, run_number=session.number, generation=0,
                            pacer=Pacer(block.workflow.rpm), spec_block=spec.autolabel_type)
    answers: dict[str, ProbeAnswer] = {}
    failures: list[str] = []
    try:
        for image in images:
            prepared = PreparedImage(image.png, "image/png", image.size, image.size,
                                     file_sha256(image.png))
            ctx = probe_input(image, backend.frame.coordinates)
            job = StepJob(ctx.image_id, PROBE_STEP, content_hash([image.name, ctx.extra]), {},
                          ctx, prepared, record_outcome=False)
            result = executor.execute(job)
            if isinstance(result, Completed) and isinstance(result.output, ProbeAnswer):
                answers[image.name] = result.output
            elif isinstance(result, Failed):
                failures.append(result.message)
    except BaseException:
        session.close_on_error()
        raise
    session.finish("interrupted" if stop.is_set() else "completed", {})
    return ProbeReport(spec.autolabel_type, backend.name, backend.model, backend.frame,
                       ranked(images, answers), executor.requests, failures)


def write_fit(spec_file: str | Path, report: ProbeReport, overrides: Sequence[str] = ()) -> None:
    """Write the reading that fits best (`report.best`: `coordinates` and `smart_resize`) into
    the `vlm.<backend>` block of `spec_file`, keeping its comments. Raises SpecError when no
    reading fits (nothing is written) or the file cannot be edited (see `spec_edit`)."""
    if not report.fits:
        raise SpecError(f"{spec_file}: not written: no reading explains the answers")
    chosen = report.best.candidate
    rule = chosen.smart_resize
    set_block_keys(spec_file, (report.pipeline, "vlm", report.backend), {
        "coordinates": chosen.coordinates,
        "smart_resize": False if rule is None else {
            "factor": rule.factor, "min_pixels": rule.min_pixels, "max_pixels": rule.max_pixels},
    }, overrides)
