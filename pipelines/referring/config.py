"""The image_referring_expression block's own settings: its workflow steps, output format and
data."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from auto_label.pipelines.config import ImageData, WorkflowConfig


class ReferringWorkflow(WorkflowConfig):
    steps: list[str] = Field(default=["0", "1", "2", "3"])
    """0 describes regions, 1 captions, 2 groups into expressions, 3 double-checks"""
    output_format: Literal["jsonl", "legacy", "both"] = "jsonl"
    """what a run exports: annotations.jsonl, the legacy per-image text files, or both"""


class ReferringData(ImageData):
    image_dir: str = ""
    """the images (with kitti_label_dir), or where relative paths of input_annotations_jsonl
    are found"""
    kitti_label_dir: str = ""
    """one KITTI label file per image (<image stem>.txt): the boxes to describe"""
    input_annotations_jsonl: str = ""
    """instead of KITTI labels: earlier annotations.jsonl-shaped records (their regions'
    boxes, and the step outputs they already hold)"""

    @model_validator(mode="after")
    def _some_input(self) -> ReferringData:
        if self.input_annotations_jsonl and self.kitti_label_dir:
            raise ValueError("set kitti_label_dir or input_annotations_jsonl, not both (with "
                             "input_annotations_jsonl, image_dir is where relative image paths "
                             "are found)")
        if not self.input_annotations_jsonl and not (self.image_dir and self.kitti_label_dir):
            raise ValueError("set image_dir and kitti_label_dir, or input_annotations_jsonl")
        return self
