"""The typed, versioned outputs of the image_referring_expression steps (what `step_completed`
stores). Every box is one of the image's seeded KITTI boxes, in pixels of the original image."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from auto_label.pipelines.contract import StepOutput


class _Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Region(_Item):
    bbox: list[int]
    """[x1, y1, x2, y2]: the seeded box, whole pixels inside the image"""
    type: str
    color: str
    description: str


class RegionsOutput(StepOutput):
    """Step 0: one region per seeded box, in the seeded order."""

    class_version = 1
    regions: list[Region]
    undescribed: int
    """boxes the answer gave no description for (their region carries the class name)"""

    def found(self) -> int:
        return len(self.regions) - self.undescribed


class CaptionOutput(StepOutput):
    """Step 1: a caption of the whole image."""

    class_version = 1
    caption: str

    def found(self) -> int:
        return 1 if self.caption else 0


class Instance(_Item):
    region: int
    """index of the seeded box"""
    bbox: list[int]
    score: float
    """IoU of the model's box with the seeded one it was snapped to (1.0 when imported)"""


class ExpressionGroup(_Item):
    text: str
    instances: list[Instance]


class DroppedExpression(_Item):
    text: str
    reason: str


class GroupsOutput(StepOutput):
    """Step 2: the regions grouped into referring expressions."""

    class_version = 1
    expressions: list[ExpressionGroup]
    dropped_boxes: int
    """boxes of the answer that overlap no seeded box enough (IoU < 0.5)"""
    dropped_expressions: list[DroppedExpression]

    def found(self) -> int:
        return len(self.expressions)


class RemovedBox(_Item):
    text: str
    bbox: list[int]


class CheckedOutput(StepOutput):
    """Step 3: the expressions of step 2 after the double check (boxes kept or removed)."""

    class_version = 1
    expressions: list[ExpressionGroup]
    removed: list[RemovedBox]
    dropped_expressions: list[DroppedExpression]
    ignored_boxes: int
    """boxes the answer added (never kept: step 3 may not add a box)"""

    def found(self) -> int:
        return len(self.expressions)
