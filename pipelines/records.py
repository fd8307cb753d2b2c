"""Records: an image's folded state projected onto what exports read.

`project(state, pipeline)` keeps the current completions whose upstream outputs are the ones shown
(a step 1 computed from an older step 0 is left out until it runs again for the current one), reads
them as typed outputs, and lets the pipeline build the unified record from them. `unified_record`
builds that record the same way for every pipeline (ids by position, so they are stable).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auto_label.ledger.events import ImageSeeded, StepCompleted
from auto_label.ledger.fold import ImageState, fold
from auto_label.ledger.store import Ledger
from auto_label.pipelines.contract import Pipeline, Step, StepOutput


@dataclass(frozen=True)
class ImageRecord:
    """What exports read of one image."""

    image_id: str
    seed: ImageSeeded | None
    outputs: Mapping[str, StepOutput]
    """step number -> its current output, for the steps whose upstream is the one shown"""
    failed: frozenset[str]
    """steps whose latest outcome is a failure"""
    record: dict[str, Any] | None
    """the unified record (None: no step has completed)"""

    @property
    def image_path(self) -> str:
        """The image's path as the record shows it."""
        if self.seed is None:
            return ""
        return str(self.seed.extra.get("image_path", self.seed.path))


def valid_completions(state: ImageState, steps: Sequence[Step]) -> dict[str, StepCompleted]:
    """The current completions whose upstream outputs are the ones currently shown."""
    return _valid({step.number: done for step in steps
                   if (done := state.completion(step.number)) is not None}, steps)


def _valid(current: Mapping[str, StepCompleted],
           steps: Sequence[Step]) -> dict[str, StepCompleted]:
    valid: dict[str, StepCompleted] = {}
    for step in steps:
        done = current.get(step.number)
        if done is None:
            continue
        if all(n in valid and done.upstream.get(n) == valid[n].output_hash for n in step.needs):
            valid[step.number] = done
    return valid


def project(state: ImageState, pipeline: Pipeline) -> ImageRecord:
    """An image's state -> its record and valid outputs (pure)."""
    current = {step.number: done for step in pipeline.steps
               if (done := state.completion(step.number)) is not None}
    return _record(state.image_id, state.seed, current, frozenset(state.failed), pipeline)


def _record(image_id: str, seed: ImageSeeded | None, current: Mapping[str, StepCompleted],
            failed: frozenset[str], pipeline: Pipeline) -> ImageRecord:
    outputs = {number: pipeline.step(number).stored_output(event)
               for number, event in _valid(current, pipeline.steps).items()}
    record = (pipeline.to_record(seed, image_id, outputs)
              if seed is not None and outputs else None)
    return ImageRecord(image_id, seed, outputs, failed, record)


def image_records(ledger: Ledger, pipeline: Pipeline,
                  image_ids: Sequence[str] | None = None) -> Iterator[ImageRecord]:
    """Every seeded image's record, in image id order (of `image_ids` only when given), from
    the projections (`Ledger.shown`): the same records as folding each image's events
    (`project`), read in one streaming pass. Images never seeded (only rejected) have none."""
    for shown in ledger.shown(image_ids):
        current = {event.step: event for event in shown.current}
        yield _record(shown.image_id, shown.seed, current, shown.failed, pipeline)


def folded_records(ledger: Ledger, pipeline: Pipeline) -> Iterator[ImageRecord]:
    """Every image's record, folded from all its events (what `image_records` must equal)."""
    for image_id, events in ledger.image_histories():
        yield project(fold(events, image_id=image_id), pipeline)


@dataclass(frozen=True)
class Expression:
    """A referring expression as a record shows it, before ids are given."""

    text: str
    boxes: Sequence[tuple[Sequence[int], float]]
    """(bbox [x1, y1, x2, y2] in pixels of the image, score) per instance"""
    char_span: Sequence[int] | None = None
    noun_chunk: str | None = None
    verified: bool | None = None


def unified_record(seed: ImageSeeded, image_id: str, *, source: str, steps: Sequence[str],
                   caption: str | None, cleaned_caption: str | None,
                   regions: Sequence[Mapping[str, Any]], expressions: Sequence[Expression],
                   **extra: Any) -> dict[str, Any]:
    """The record of the unified schema (see README, Output). Ids follow the order within the
    record: `expr_00000`... per expression, `box_00000`... across all instances."""
    numbered = []
    box_number = 0
    for index, expression in enumerate(expressions):
        instances = []
        for bbox, score in expression.boxes:
            instances.append({"bbox_id": f"box_{box_number:05d}", "bbox": list(bbox),
                              "bbox_score": score})
            box_number += 1
        numbered.append({
            "expression_id": f"expr_{index:05d}",
            "text": expression.text,
            "char_span": list(expression.char_span) if expression.char_span is not None else None,
            "noun_chunk": expression.noun_chunk,
            "instances": instances,
            "verified": expression.verified,
        })
    record: dict[str, Any] = {
        "image_id": image_id,
        "image_path": seed.extra.get("image_path", seed.path),
        "width": seed.width,
        "height": seed.height,
        "caption": caption,
        "cleaned_caption": cleaned_caption,
        "regions": [dict(r) for r in regions],
        "expressions": numbered,
    }
    record.update(extra)
    record["source"] = source
    record["pipeline_steps"] = list(steps)
    return record
