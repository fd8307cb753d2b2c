"""What every pipeline's spec block shares: the workflow settings of the engine, and the block's
shape (`vlm`, `workflow`, `data`). Each pipeline extends `WorkflowConfig` with its steps (and more)
and brings its own data model; the spec is composed from the registered pipelines.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from auto_label.backends.registry import VLMConfigBase
from auto_label.pipelines.images.decode import PILLOW_MAX_IMAGE_PIXELS, IngestSettings


class ConfigBlock(BaseModel):
    """A block of the spec: unknown keys are errors, values are frozen. The docstring under a
    key says what it means (`auto_label init` reads it through
    `spec_template.field_description`; pydantic does not, so importing the models stays quick)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(ConfigBlock):
    """How a failed request is retried (429, 5xx, timeouts, connection errors, junk output)."""

    max_attempts: int = Field(default=5, ge=1, le=100, description="requests per step and image")
    backoff_base: float = Field(default=1.0, ge=0.0, description="first backoff cap, seconds")
    backoff_max: float = Field(default=60.0, ge=0.0, description="backoff cap, seconds")
    parse_retries: int = Field(default=1, ge=0, le=10, description="fresh samples after junk")
    endpoint_failures: int = Field(
        default=5, ge=1, le=1000,
        description="connection failures or timeouts in a row, across images, that stop the run")


class BatchConfig(ConfigBlock):
    """`<block>.workflow.batch`: provider batch jobs (`workflow.mode: batch`)."""

    max_requests: int = Field(default=200, ge=1, le=50_000)
    """requests per provider job at most (also the images held in memory while a job runs;
    the provider's own limit applies too: OpenAI 50,000)"""
    poll_seconds: float = Field(default=30.0, gt=0)
    """first wait between polls of a job; it grows 1.5x per poll up to 10 minutes"""
    linger_seconds: float = Field(default=5.0, ge=0)
    """a job is submitted once no new request came for this long (or it is full)"""
    finish_online: bool = False
    """retry the requests that failed inside a job online instead of in a later job"""


class WorkflowConfig(ConfigBlock):
    """`<block>.workflow`: how the engine runs. A pipeline's subclass declares `steps` with every
    step number of the pipeline, in order, as its default: those are the steps it allows."""

    steps: list[str]
    max_workers: int = Field(default=4, ge=1, le=512)
    """requests in flight at once"""
    force_reprocess: bool = False
    """ask again even where the ledger has an answer"""
    rpm: int | None = Field(default=None, gt=0, description="requests per minute, optional")
    max_cost: float | None = Field(
        default=None, gt=0, description="USD a run may spend: no request starts once it would "
                                        "pass it (needs a known price); per run, a rerun resumes")
    progress_interval: float = Field(
        default=30.0, gt=0,
        description="seconds between progress lines when stdout is not a terminal")
    retries: RetryConfig = RetryConfig()
    """how failed requests are retried"""
    mode: Literal["online", "batch"] = "online"
    """online: one request at a time; batch: provider batch jobs (about half the price, answers
    within hours)"""
    batch: BatchConfig = BatchConfig()
    """provider batch jobs, for mode batch"""

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: object) -> list[str]:
        allowed = tuple(cls.model_fields["steps"].default or ())
        if not isinstance(value, list | tuple):
            raise ValueError(f"must be a list of step numbers from {list(allowed)}")
        steps = [str(v).strip() for v in value]
        unknown = [s for s in steps if s not in allowed]
        if unknown:
            raise ValueError(f"unknown step {unknown[0]!r}; the steps are {list(allowed)}")
        if not steps:
            raise ValueError("must name at least one step")
        return sorted(set(steps), key=allowed.index)


class ImageData(ConfigBlock):
    """What every pipeline's `data` block says about reading images."""

    exif_orientation: Literal["apply", "ignore"] = "apply"
    """apply: boxes are in the upright picture a viewer shows (the model is sent it upright);
    ignore: in the pixels as stored, the tag stripped from what is sent"""
    max_image_pixels: int = Field(default=PILLOW_MAX_IMAGE_PIXELS, ge=0)
    """an image with more pixels fails with one line naming this setting; 0: no limit"""

    def ingest_settings(self) -> IngestSettings:
        return IngestSettings(self.exif_orientation, self.max_image_pixels)


class PipelineBlock(ConfigBlock):
    """`<autolabel_type>`: the block of one pipeline. The spec composes a subclass per pipeline
    with its own workflow and data models."""

    vlm: VLMConfigBase
    workflow: WorkflowConfig
    data: ImageData
