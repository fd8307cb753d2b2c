"""The ledger's events: frozen, typed, versioned pydantic models, discriminated by `type`.

Every event carries `v`, its schema version. Stored events are parsed through `parse_event`, which
first upcasts an older version of an event to the current one (see `UPCASTERS`), so the rest of the
code only ever sees current events. An event that changes shape gets its `v` bumped and an upcaster
from the old shape; stored rows are never rewritten.

No event holds an API key or the image bytes: the image is referred to by its sha256.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = 1
    at: float = Field(default_factory=time.time, description="unix time it was recorded")
    run_id: str = ""


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    pipeline: str
    steps: list[str]
    spec: dict[str, Any] = Field(description="the spec, API keys masked")
    spec_fingerprint: str
    tool_version: str
    backend: str
    model: str
    force_reprocess: bool
    generation: int = Field(description="0, or the run's number when it forces reprocessing")
    pid: int
    host: str


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    status: Literal["completed", "interrupted", "aborted"]
    summary: dict[str, dict[str, int]] = Field(description="step -> counts by outcome")
    message: str = ""


class ImageSeeded(_Event):
    type: Literal["image_seeded"] = "image_seeded"
    image_id: str
    path: str
    sha256: str
    width: int
    height: int
    size: int
    mtime_ns: int
    caption: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="pipeline inputs, e.g. boxes")
    source: str = Field(default="", description="where the image came from, e.g. input.jsonl:12")


class ImageRejected(_Event):
    type: Literal["image_rejected"] = "image_rejected"
    image_id: str
    path: str
    kind: str
    message: str
    source: str = ""


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    thinking_tokens: int | None = None


class RequestSent(_Event):
    type: Literal["request_sent"] = "request_sent"
    request_id: str
    image_id: str
    step: str
    attempt: int
    fingerprint: str
    backend: str
    model: str
    parameters: dict[str, Any]
    prompt: str
    image_sha256: str
    sent_width: int
    sent_height: int


class ResponseReceived(_Event):
    type: Literal["response_received"] = "response_received"
    request_id: str
    image_id: str
    step: str
    attempt: int
    text: str
    finish_reason: str | None = None
    usage: Usage = Usage()
    latency_s: float


class AttemptFailed(_Event):
    type: Literal["attempt_failed"] = "attempt_failed"
    request_id: str
    image_id: str
    step: str
    attempt: int
    kind: str
    message: str
    retry_after_s: float | None = None
    status_code: int | None = None


class StepCompleted(_Event):
    type: Literal["step_completed"] = "step_completed"
    image_id: str
    step: str
    fingerprint: str
    generation: int = 0
    output: dict[str, Any]
    output_hash: str
    upstream: dict[str, str] = Field(default_factory=dict, description="step -> output hash used")
    request_id: str | None = None
    source: str = Field(default="", description="for an output imported from an input file: where")


class StepSelected(_Event):
    """An earlier completion becomes current again (its fingerprint matches the spec once more)."""

    type: Literal["step_selected"] = "step_selected"
    image_id: str
    step: str
    fingerprint: str


class StepFailed(_Event):
    type: Literal["step_failed"] = "step_failed"
    image_id: str
    step: str
    fingerprint: str
    kind: str
    message: str
    raw_text: str | None = None
    request_id: str | None = None


Event = Annotated[
    RunStarted
    | RunFinished
    | ImageSeeded
    | ImageRejected
    | RequestSent
    | ResponseReceived
    | AttemptFailed
    | StepCompleted
    | StepSelected
    | StepFailed,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

# (type, version) -> function turning that version's dict into the next version's dict.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored event dict up to the current version of its type."""
    while (step := UPCASTERS.get((raw.get("type", ""), raw.get("v", 1)))) is not None:
        raw = step(raw)
    return raw


def parse_event(raw: dict[str, Any]) -> Event:
    """A stored event (as a dict) -> its current typed model."""
    return EVENT_ADAPTER.validate_python(upcast(raw))


IMAGE_EVENT_TYPES = ("image_seeded", "image_rejected", "step_completed", "step_selected",
                     "step_failed")
"""The events that make up an image's record (the rest are its audit trail)."""
