"""The typed, versioned outputs of the image_grounding steps (what `step_completed` stores)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from auto_label.pipelines.contract import StepOutput


class _Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExtractedExpression(_Item):
    text: str
    char_span: list[int] | None
    """[start, end) in code points of the cleaned caption, when the text is found there"""
    noun_chunk: str | None


class ExtractionOutput(StepOutput):
    """Step 0: the cleaned caption and its referring expressions."""

    class_version = 1
    cleaned_caption: str
    expressions: list[ExtractedExpression]

    def found(self) -> int:
        return len(self.expressions)


class GroundedInstance(_Item):
    bbox: list[int]
    """[x1, y1, x2, y2] in pixels of the original image, inside it, x1 < x2, y1 < y2"""
    score: float
    """0-1, rounded to 4 places"""


class Grounding(_Item):
    text: str
    instances: list[GroundedInstance]


class GroundingOutput(StepOutput):
    """Step 1: the boxes of each expression of step 0, in its order."""

    class_version = 1
    groundings: list[Grounding]
    dropped_boxes: int
    """boxes that were outside the image, empty, repeated, or named no asked expression"""

    def found(self) -> int:
        return sum(len(g.instances) for g in self.groundings)
