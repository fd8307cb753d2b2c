"""The image_grounding block's own settings: its workflow steps and its data."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from auto_label.pipelines.config import ImageData, WorkflowConfig


class GroundingWorkflow(WorkflowConfig):
    steps: list[str] = Field(default=["0", "1"])
    """0 extracts expressions, 1 grounds them"""


class GroundingData(ImageData):
    input_jsonl: Path
    """one JSON object per line with image_path and caption"""
    image_root: str = ""
    """prefix for relative image_path values"""
