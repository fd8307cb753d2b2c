"""The unified record of an image_grounding image: the step 0 expressions with the step 1 boxes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auto_label.ledger.events import ImageSeeded
from auto_label.pipelines.contract import StepOutput
from auto_label.pipelines.grounding.outputs import ExtractionOutput, GroundingOutput
from auto_label.pipelines.grounding.steps import STEP_EXTRACT, STEP_GROUND
from auto_label.pipelines.records import Expression, unified_record

SOURCE = "image_grounding"


def to_record(seed: ImageSeeded, image_id: str,
              outputs: Mapping[str, StepOutput]) -> dict[str, Any]:
    """`outputs` holds step 0's, and step 1's when it grounded that step 0. A record without
    step 0 has no expressions (nothing completed for it that the record can show)."""
    extraction = outputs.get("0")
    grounding = outputs.get("1")
    assert extraction is None or isinstance(extraction, ExtractionOutput)
    assert grounding is None or isinstance(grounding, GroundingOutput)
    groundings = grounding.groundings if grounding is not None else []
    expressions = []
    for index, extracted in enumerate(extraction.expressions if extraction else []):
        found = groundings[index].instances if index < len(groundings) else []
        expressions.append(Expression(
            text=extracted.text, boxes=[(i.bbox, i.score) for i in found],
            char_span=extracted.char_span, noun_chunk=extracted.noun_chunk))
    steps = [step.name for step in (STEP_EXTRACT, STEP_GROUND) if step.number in outputs]
    return unified_record(
        seed, image_id, source=SOURCE, steps=steps, caption=seed.caption,
        cleaned_caption=extraction.cleaned_caption if extraction else None, regions=[],
        expressions=expressions)
