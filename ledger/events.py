"""The ledger's events: frozen, typed, versioned pydantic models, discriminated by `type`.

Each event class declares its schema version (`class_version`) and, right beside it, the
`upcast_vN_vN+1` functions from every older shape (see `auto_label.ledger.versioning`). Every stored
event carries `v`, the version it was written at; `parse_event` upcasts it to the current shape
before validating, so the rest of the code only ever sees current events. An event that changes
shape gets its `class_version` bumped and an upcaster; stored rows are never rewritten.

The events of images (`compact_body`) are stored without the fields that hold their default (the
default fills them back when read), so a field's default is part of the stored format: changing
one needs a new class_version whose upcaster writes the old default into bodies that lack it. A
class may also leave out what it can derive (`derived` / `expand`, e.g. a seed's stored size when
it is its upright size). `body()` is what the ledger stores (`auto_label.ledger.bodies`).
Requests store their prompt as a template key and values; the template's text and the run's
backend parameters are in its `request_template` (`auto_label.ledger.templates`).

No event holds an API key or the image bytes: the image is referred to by its sha256.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from auto_label.ledger.bodies import Compact
from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.versioning import Versioned


class _Event(Compact, Versioned):
    model_config = ConfigDict(frozen=True, extra="forbid")
    compact_body: ClassVar[bool] = False

    v: int = Field(default=1, description="the schema version it was written at: class_version")
    at: float = Field(default_factory=time.time, description="unix time it was recorded")
    run_id: str = ""

    @model_validator(mode="before")
    @classmethod
    def _stamp_version(cls, data: Any) -> Any:
        """A new event is written at its class's current version."""
        if isinstance(data, dict) and "v" not in data:
            return {**data, "v": cls.class_version}
        return data

    @model_validator(mode="after")
    def _current_version(self) -> _Event:
        if self.v != self.class_version:
            raise ValueError(f"{self.__class__.__name__} is at v{self.class_version}, "
                             f"not v{self.v}: parse stored events with parse_event")
        return self


class RunStarted(_Event):
    class_version = 3
    type: Literal["run_started"] = "run_started"
    purpose: Literal["generate", "probe", "replay"] = Field(
        default="generate", description="a dataset run, `auto_label probe` measuring the "
                                        "endpoint's box convention (its requests name no image), "
                                        "or `auto_label replay` reading stored answers again "
                                        "(it sends no request)")
    pipeline: str
    steps: list[str]
    spec: dict[str, Any] = Field(description="the spec, API keys masked")
    spec_fingerprint: str
    tool_version: str
    backend: str
    model: str
    force_reprocess: bool
    generation: int = Field(description="0, or a generation new to the ledger when the run forces "
                                        "reprocessing (part of the completions' unique key)")
    pid: int
    host: str
    cwd: str | None = Field(default=None, description="the directory it ran in: relative paths "
                                                      "of the spec resolve against it")

    @staticmethod
    def upcast_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
        """v2 says what the run was for; every v1 run generated."""
        return {**raw, "v": 2, "purpose": "generate"}

    @staticmethod
    def upcast_v2_v3(raw: dict[str, Any]) -> dict[str, Any]:
        """v3 adds the purpose `replay` and the directory the run started in (unknown before)."""
        return {**raw, "v": 3, "cwd": None}


class RunWarning(_Event):
    """Something a run found that a person must hear about, said once (e.g. boxes that look like
    another coordinate convention)."""

    type: Literal["run_warning"] = "run_warning"
    kind: str
    message: str


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    status: Literal["completed", "interrupted", "aborted"]
    summary: dict[str, dict[str, int]] = Field(description="step -> counts by outcome")
    message: str = ""


class ImageSeeded(_Event):
    """An image read and checked: its file, and the frame its boxes are stored in."""

    class_version = 3
    compact_body = True
    type: Literal["image_seeded"] = "image_seeded"
    image_id: str
    path: str
    sha256: str
    width: int = Field(description="of the upright image (EXIF orientation applied): the frame "
                                   "every box of the image is stored in")
    height: int
    size: int
    mtime_ns: int
    caption: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="pipeline inputs, e.g. boxes")
    source: str = Field(default="", description="where the image came from, e.g. input.jsonl:12")
    format: str | None = Field(default=None, description="the format found in the content")
    stored_width: int | None = Field(default=None, description="as stored in the file")
    stored_height: int | None = None
    orientation: int = Field(default=1, description="the EXIF orientation applied (1: none)")
    conversion: str | None = Field(
        default=None, description="what was done that changes what the model sees (a pixel "
                                  "mode converted, transparency composited, a first frame...)")
    ingest: str = Field(default="", description="how it was ingested: a change seeds it again")

    @staticmethod
    def upcast_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
        """v1 (0.1.0) sent the stored pixels: the frame is the stored size, nothing applied."""
        return {**raw, "v": 2, "format": None, "stored_width": raw.get("width"),
                "stored_height": raw.get("height"), "orientation": 1, "conversion": None,
                "ingest": ""}

    @staticmethod
    def upcast_v2_v3(raw: dict[str, Any]) -> dict[str, Any]:
        """A v3 body leaves out the stored size when it is the upright size (`derived`); a v2
        body always holds it."""
        return {**raw, "v": 3}

    def derived(self) -> set[str]:
        if (self.stored_width, self.stored_height) == (self.width, self.height):
            return {"stored_width", "stored_height"}
        return set()

    def body(self) -> str:
        text = super().body()
        if self.stored_width is None and self.stored_height is None:  # not the upright size
            return text[:-1] + ',"stored_width":null,"stored_height":null}'
        return text

    @classmethod
    def expand(cls, raw: dict[str, Any]) -> dict[str, Any]:
        if "stored_width" in raw or "stored_height" in raw:
            return raw
        return {**raw, "stored_width": raw.get("width"), "stored_height": raw.get("height")}

    @property
    def image_key(self) -> str:
        """What the model is shown, as a key: the file's sha256 when it sees the file's own
        pixels (so fingerprints of such images never change), else a hash of the sha256 with
        the orientation and conversion applied."""
        if self.orientation == 1 and self.conversion is None:
            return self.sha256
        return content_hash({"sha256": self.sha256, "orientation": self.orientation,
                             "conversion": self.conversion})


class ImageRejected(_Event):
    compact_body = True
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


class RequestTemplate(_Event):
    """What the requests of a run that use one prompt template share, recorded once per run and
    template before the first of them: the template's text (each request fills it with its
    `prompt_vars`: `auto_label.ledger.templates.render`), and the backend, model and parameters
    (`Backend.describe()`, never the key) the run sends with."""

    compact_body = True
    type: Literal["request_template"] = "request_template"
    template: str = Field(description="its key: task@version, and /convention when the text "
                                      "names a box convention, e.g. grounding.ground@1/yxyx_1000")
    text: str
    backend: str
    model: str
    parameters: dict[str, Any]


class RequestSent(_Event):
    class_version = 2
    compact_body = True
    type: Literal["request_sent"] = "request_sent"
    request_id: str
    image_id: str
    step: str
    attempt: int = 1
    fingerprint: str
    prompt_template: str = Field(
        default="", description="the key of the request_template its run recorded: with "
                                "`prompt_vars` it gives the prompt's text and the parameters; "
                                "empty for a request that holds them itself (before templates)")
    prompt_vars: dict[str, Any] = Field(default_factory=dict,
                                        description="the values of the template's placeholders")
    image_sha256: str | None = Field(
        default=None, description="the sha256 of the file sent; None when it is the image's "
                                  "own: the file of its latest image_seeded before the request")
    sent_width: int
    sent_height: int
    prompt: str | None = Field(default=None, description="the prompt's text, in requests "
                                                         "recorded before templates")
    backend: str | None = None
    model: str | None = None
    parameters: dict[str, Any] | None = None

    @staticmethod
    def upcast_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
        """v1 held its prompt, backend, model and parameters itself; v2 names its run's
        request_template and the values that fill it (a v1 request names none). v1 always
        named its image's sha256 and attempt; v2 leaves out the seed's own and attempt 1."""
        return {**raw, "v": 2, "prompt_template": ""}


class ResponseReceived(_Event):
    class_version = 3
    compact_body = True
    type: Literal["response_received"] = "response_received"
    request_id: str
    image_id: str
    step: str
    attempt: int
    text: str
    finish_reason: str | None = None
    usage: Usage = Usage()
    latency_s: float
    model_version: str | None = Field(default=None, description="the model that answered, as the "
                                                                "endpoint names it")
    response_id: str | None = Field(default=None, description="the endpoint's id of the answer")
    thinking: str | None = Field(default=None, description="the model's reasoning, apart from "
                                                           "its answer (thinking parts, "
                                                           "reasoning_content)")
    answer_in: Literal["content", "reasoning"] = Field(
        default="content", description="where the answer was read: the content, or (when the "
                                       "content was empty) the reasoning")

    @staticmethod
    def upcast_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
        """v2 keeps the model version and response id the endpoint returned (unknown before)."""
        return {**raw, "v": 2, "model_version": None, "response_id": None}

    @staticmethod
    def upcast_v2_v3(raw: dict[str, Any]) -> dict[str, Any]:
        """v3 keeps the reasoning apart; before, thinking parts were dropped."""
        return {**raw, "v": 3, "thinking": None, "answer_in": "content"}


class AttemptFailed(_Event):
    compact_body = True
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
    class_version = 4
    compact_body = True
    type: Literal["step_completed"] = "step_completed"
    image_id: str
    step: str
    fingerprint: str
    generation: int = 0
    output: dict[str, Any]
    output_version: int = Field(default=1, description="the schema version of `output` (its "
                                                       "step's output model), for the upcasters "
                                                       "of that model")
    found: int | None = Field(default=None, description="how many things the output holds "
                                                        "(boxes, expressions...); 0: nothing found")
    output_hash: str
    upstream: dict[str, str] = Field(default_factory=dict, description="step -> output hash used")
    request_id: str | None = None
    source: str = Field(default="", description="for an output imported from an input file: where")

    @staticmethod
    def upcast_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
        """v1 outputs carried no version: they are the first version of their step's model."""
        return {**raw, "v": 2, "output_version": 1}

    @staticmethod
    def upcast_v2_v3(raw: dict[str, Any]) -> dict[str, Any]:
        """v3 counts what the output found; unknown for earlier completions."""
        return {**raw, "v": 3, "found": None}

    @staticmethod
    def upcast_v3_v4(raw: dict[str, Any]) -> dict[str, Any]:
        """A v4 body leaves out output_version 1 (the default); a v3 body always holds it."""
        return {**raw, "v": 4}


class StepSelected(_Event):
    """An earlier completion becomes current again (its fingerprint matches the spec once more)."""

    compact_body = True
    type: Literal["step_selected"] = "step_selected"
    image_id: str
    step: str
    fingerprint: str


class StepFailed(_Event):
    compact_body = True
    type: Literal["step_failed"] = "step_failed"
    image_id: str
    step: str
    fingerprint: str
    kind: str
    message: str
    raw_text: str | None = None
    request_id: str | None = None


class BatchRequest(BaseModel):
    """One request of a provider batch job, as its request_sent recorded it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    request_id: str
    image_id: str
    step: str
    attempt: int
    fingerprint: str


class BatchCreated(_Event):
    """A provider batch job about to be submitted: recorded (committed) before the submission,
    so that a run killed at any instant finds its requests and its key again."""

    type: Literal["batch_created"] = "batch_created"
    key: str = Field(description="our key: a content hash of the requests, carried by the job "
                                 "(metadata or display name) so that it can be found again")
    backend: str
    requests: list[BatchRequest]


class BatchSubmitted(_Event):
    type: Literal["batch_submitted"] = "batch_submitted"
    key: str
    job_id: str = Field(description="the provider's name of the job")


class BatchUpdated(_Event):
    """The job's state changed (as polled)."""

    type: Literal["batch_updated"] = "batch_updated"
    key: str
    state: str = Field(description="the provider's name of the state")
    total: int | None = None
    completed: int | None = None
    failed: int | None = None


class BatchFinished(_Event):
    """The job is over for us: its answers are recorded (or it was never submitted)."""

    type: Literal["batch_finished"] = "batch_finished"
    key: str
    state: str = Field(description="the provider's final state, or `not_submitted`")
    answered: int = 0
    failed: int = 0
    unanswered: int = 0
    usage: Usage = Field(default=Usage(), description="the tokens of the answers it delivered "
                                                      "(billed at the batch price)")


Event = Annotated[
    RunStarted
    | RunWarning
    | RunFinished
    | ImageSeeded
    | ImageRejected
    | RequestTemplate
    | RequestSent
    | ResponseReceived
    | AttemptFailed
    | StepCompleted
    | StepSelected
    | StepFailed
    | BatchCreated
    | BatchSubmitted
    | BatchUpdated
    | BatchFinished,
    Field(discriminator="type"),
]

EVENT_CLASSES: tuple[type[_Event], ...] = (
    RunStarted, RunWarning, RunFinished, ImageSeeded, ImageRejected, RequestTemplate, RequestSent,
    ResponseReceived, AttemptFailed, StepCompleted, StepSelected, StepFailed, BatchCreated,
    BatchSubmitted, BatchUpdated, BatchFinished)
_BY_TYPE: dict[str, type[_Event]] = {cls.model_fields["type"].default: cls for cls in EVENT_CLASSES}


def parse_event(raw: dict[str, Any]) -> Event:
    """A stored event (as a dict) -> its current typed model, upcast from the version it was
    written at. Raises ValueError (pydantic's ValidationError included) when it does not parse,
    `NewerVersionError` when a newer auto-label wrote it."""
    kind = raw.get("type")
    cls = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}")
    version = raw.get("v", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"event version {version!r} is not an integer")
    current = cls.expand(raw) if version == cls.class_version else cls.upcast(raw, version)
    return cast(Event, cls.model_validate(current))


IMAGE_EVENT_TYPES = ("image_seeded", "image_rejected", "step_completed", "step_selected",
                     "step_failed")
"""The events that make up an image's record (the rest are its audit trail)."""
