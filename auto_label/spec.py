"""The experiment spec: the documented blocks and their defaults, as frozen pydantic models.

Loading a YAML file and applying command-line overrides lives in `auto_label.spec_loader`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from auto_label.backends.config import VLMConfig

GROUNDING = "image_grounding"
REFERRING = "image_referring_expression"


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(_Block):
    """How a failed request is retried (429, 5xx, timeouts, connection errors, junk output)."""

    max_attempts: int = Field(default=5, ge=1, le=100, description="requests per step and image")
    backoff_base: float = Field(default=1.0, ge=0.0, description="first backoff cap, seconds")
    backoff_max: float = Field(default=60.0, ge=0.0, description="backoff cap, seconds")
    parse_retries: int = Field(default=1, ge=0, le=10, description="fresh samples after junk")


def _check_steps(value: object, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"must be a list of step numbers from {list(allowed)}")
    steps = [str(v).strip() for v in value]
    unknown = [s for s in steps if s not in allowed]
    if unknown:
        raise ValueError(f"unknown step {unknown[0]!r}; the steps are {list(allowed)}")
    if not steps:
        raise ValueError("must name at least one step")
    return sorted(set(steps), key=allowed.index)


class _Workflow(_Block):
    max_workers: int = Field(default=4, ge=1, le=512)
    force_reprocess: bool = False
    rpm: int | None = Field(default=None, gt=0, description="requests per minute, optional")
    retries: RetryConfig = RetryConfig()


class GroundingWorkflow(_Workflow):
    steps: list[str] = ["0", "1"]

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: object) -> list[str]:
        return _check_steps(value, ("0", "1"))


class ReferringWorkflow(_Workflow):
    steps: list[str] = ["0", "1", "2", "3"]
    output_format: Literal["jsonl", "legacy", "both"] = "jsonl"

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: object) -> list[str]:
        return _check_steps(value, ("0", "1", "2", "3"))


class GroundingData(_Block):
    input_jsonl: Path
    image_root: str = ""


class ReferringData(_Block):
    image_dir: str = ""
    kitti_label_dir: str = ""
    input_annotations_jsonl: str = ""

    @model_validator(mode="after")
    def _some_input(self) -> ReferringData:
        if not self.input_annotations_jsonl and not (self.image_dir and self.kitti_label_dir):
            raise ValueError("set image_dir and kitti_label_dir, or input_annotations_jsonl")
        return self


class ImageGroundingBlock(_Block):
    vlm: VLMConfig = VLMConfig()
    workflow: GroundingWorkflow = GroundingWorkflow()
    data: GroundingData


class ImageReferringBlock(_Block):
    vlm: VLMConfig = VLMConfig()
    workflow: ReferringWorkflow = ReferringWorkflow()
    data: ReferringData


class Spec(_Block):
    results_dir: Path
    autolabel_type: Literal["image_grounding", "image_referring_expression"]
    image_grounding: ImageGroundingBlock | None = None
    image_referring_expression: ImageReferringBlock | None = None

    @model_validator(mode="after")
    def _block_present(self) -> Spec:
        if getattr(self, self.autolabel_type) is None:
            raise ValueError(
                f"autolabel_type is {self.autolabel_type!r} but the spec has no "
                f"{self.autolabel_type} block"
            )
        return self

    @property
    def block(self) -> ImageGroundingBlock | ImageReferringBlock:
        """The block of the selected pipeline."""
        block = getattr(self, self.autolabel_type)
        assert block is not None  # guaranteed by the validator
        return block
