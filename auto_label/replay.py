"""`auto_label replay`: read the stored answers again with today's parsers, record what changed.

    from auto_label.replay import replay
    report = replay("/tmp/out", dry_run=True)   # what would change; nothing written
    report = replay("/tmp/out")                 # recorded, and the exports written again

No request is sent. A completion is appended where a failed step's answer now reads (`recovered`),
where the record's answer reads otherwise (`changed`), or where it reads the same under a raised
parser version (`reread`, so that `generate` does not read it again). The next `generate` reruns
the downstream steps whose upstream output changed, and only those (their fingerprints hold the
upstream output hashes).
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auto_label.errors import LedgerError, SpecError
from auto_label.ledger import audit_queries
from auto_label.ledger.events import Event, RequestSent, RunStarted
from auto_label.ledger.fold import fold
from auto_label.ledger.store import Ledger
from auto_label.pipelines.contract import Pipeline, Step
from auto_label.pipelines.engine.replaying import RECORDED, StepReplay, replay_step
from auto_label.pipelines.engine.session import RunSession
from auto_label.pipelines.records import project
from auto_label.pipelines.registry import get_pipeline


@dataclass(frozen=True)
class RecordChange:
    """How one image's record changes: one line per difference."""

    image_id: str
    lines: list[str]


@dataclass
class ReplayReport:
    results_dir: Path
    pipeline: str
    steps: list[tuple[str, str]]
    """(number, name) of the steps replayed"""
    dry_run: bool
    images: int = 0
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    """step number -> outcome (recovered, changed, reread, same, still_failing, lost,
    unversioned, skipped) -> images"""
    examples: list[StepReplay] = field(default_factory=list)
    """the first few outcomes worth a look (lost, unversioned, still failing)"""
    more_examples: int = 0
    """how many more of those there are than `examples` shows"""
    skip_reasons: Counter[str] = field(default_factory=Counter)
    """why answers were not read again -> (image, step) pairs"""
    records: list[RecordChange] = field(default_factory=list)
    """the records that change, with what changes"""
    downstream: int = 0
    """(image, step) pairs whose upstream output changed: the next generate reruns them"""
    requests: int = 0
    """requests sent: always 0, the point of replaying"""
    outputs: list[Path] = field(default_factory=list)

    @property
    def recorded(self) -> int:
        return sum(n for counts in self.counts.values()
                   for kind, n in counts.items() if kind in RECORDED)


MAX_EXAMPLES = 10


def replay(results_dir: str | Path, *, step: str | None = None, image: str | None = None,
           dry_run: bool = False) -> ReplayReport:
    """Read the answers of `results_dir`'s ledger again with today's parsers (all images and
    steps, or one `step` number / one `image` id) and record the completions that change; with
    `dry_run`, only say what would change. Then write the exports again (unless `dry_run`).

    Raises LedgerError when there is no ledger (or no run) there or another run holds it, and
    SpecError for an unknown step or image (naming the known ones).
    """
    results_dir = Path(results_dir)
    with Ledger.open(results_dir, create=False) as ledger:
        started = ledger.latest("run_started")
        if not isinstance(started, RunStarted):
            raise LedgerError(f"{ledger.path}: no run has been recorded yet")
        pipeline = get_pipeline(started.pipeline)
        steps = _steps(pipeline, step)
        images = _images(ledger, image)
    report = ReplayReport(results_dir, pipeline.name, [(s.number, s.name) for s in steps],
                          dry_run, images=len(images))
    if dry_run:
        with Ledger.open(results_dir, create=False) as ledger:
            _replay(ledger, pipeline, steps, images, report, "", None)
        return report
    session = RunSession.start(
        results_dir, pipeline=pipeline.name, steps=[s.number for s in steps],
        spec=started.spec, backend=started.backend, model=started.model, force=False,
        purpose="replay")
    try:
        _replay(session.ledger, pipeline, steps, images, report, session.run_id, session)
    except BaseException:
        session.close_on_error()
        raise
    session.finish("completed", {s: dict(c) for s, c in report.counts.items()})
    from auto_label.api import export  # the API's export: same files as generate writes

    report.outputs = export(results_dir).files
    return report


def _steps(pipeline: Pipeline, step: str | None) -> list[Step]:
    if step is None:
        return list(pipeline.steps)
    return [pipeline.step(step_number(pipeline, step))]


def step_number(pipeline: Pipeline, step: str) -> str:
    """The number of a step given by number (`1`) or by name (`step1_grounding`). Raises
    SpecError naming the pipeline's steps otherwise."""
    for candidate in pipeline.steps:
        if step.strip() in (candidate.number, candidate.name):
            return candidate.number
    raise SpecError(f"--step {step}: {pipeline.name} has the steps "
                    + ", ".join(f"{s.number} ({s.name})" for s in pipeline.steps))


def _images(ledger: Ledger, image: str | None) -> list[str]:
    known = audit_queries.image_ids(ledger.connection())
    if image is None:
        return known
    if image not in known:
        close = difflib.get_close_matches(image, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SpecError(f"{ledger.path}: no image {image!r} in the ledger{hint}")
    return [image]


def _replay(ledger: Ledger, pipeline: Pipeline, steps: list[Step], images: list[str],
            report: ReplayReport, run_id: str, session: RunSession | None) -> None:
    generations = {e.run_id: e.generation for _, e in ledger.events(["run_started"])
                   if isinstance(e, RunStarted)}
    for image_id in images:
        events = [e for _, e in ledger.events(image_id=image_id)]
        state = fold(events, image_id=image_id)
        requests = [e for e in events if isinstance(e, RequestSent)]
        new: list[Event] = []
        for step in steps:
            result = replay_step(ledger, pipeline, state, step, requests, generations, run_id)
            report.counts.setdefault(step.number, Counter())[result.kind] += 1
            if result.kind in ("lost", "unversioned", "still_failing"):
                if len(report.examples) < MAX_EXAMPLES:
                    report.examples.append(result)
                else:
                    report.more_examples += 1
            if result.kind == "skipped":
                report.skip_reasons[result.message] += 1
            if result.completion is not None:
                new.append(result.completion)
        if not new:
            continue
        after = fold(new, state)
        before_record = project(state, pipeline)
        after_record = project(after, pipeline)
        lines = record_diff(before_record.record, after_record.record)
        if lines:
            report.records.append(RecordChange(image_id, lines))
        report.downstream += sum(
            1 for s in pipeline.steps
            if s.number in before_record.outputs and s.number not in after_record.outputs)
        if session is not None:
            refused = session.ledger.append(new)
            if refused:
                raise LedgerError(f"{ledger.path}: {image_id}: the ledger refused a replayed "
                                  "completion (one with the same key exists)")


def _expressions(record: dict[str, Any] | None) -> dict[str, list[list[int]]]:
    if record is None:
        return {}
    found: dict[str, list[list[int]]] = {}
    for expression in record.get("expressions", []):
        boxes = [list(i["bbox"]) for i in expression.get("instances", [])]
        found.setdefault(str(expression.get("text")), []).extend(boxes)
    return found


def record_diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """What differs between two unified records of an image, one line each: expressions added
    or removed (with their boxes), boxes of an expression changed, the caption or the regions.
    Boxes are [x1, y1, x2, y2] in pixels of the image."""
    if before is None and after is None:
        return []
    if before is None:
        return ["record appears"] + [f"+ {text!r} {boxes}" for text, boxes in
                                     _expressions(after).items()]
    if after is None:
        return ["record disappears (no current output left)"]
    lines = []
    old, new = _expressions(before), _expressions(after)
    lines += [f"- {text!r} {old[text]}" for text in old if text not in new]
    lines += [f"+ {text!r} {new[text]}" for text in new if text not in old]
    lines += [f"~ {text!r} boxes {old[text]} -> {new[text]}"
              for text in old if text in new and old[text] != new[text]]
    for key in ("cleaned_caption", "regions"):
        if before.get(key) != after.get(key):
            lines.append(f"~ {key} changed")
    return lines

