"""The ledger's events: frozen, typed, versioned pydantic models, discriminated by `type`.

Each event class declares its schema version (`class_version`) and, right beside it, the
`upcast_vN_vN+1` functions from every older shape (see `auto_label.ledger.versioning`). Every stored
event carries `v`, the version it was written at; `parse_event` upcasts it to the current shape
before validating, so the rest of the code only ever sees current events. An event that changes
shape gets its `class_version` bumped and an upcaster; stored rows are never rewritten.

The events of images (`compact_body`) are stored without what their row holds in its own columns
(type, v, run_id, image_id, step, at: `parse_event` takes the `Row` back) and without the fields
that hold their default (the default fills them back when read), so a field's default is part of
the stored format: changing one needs a new class_version whose upcaster writes the old default
into bodies that lack it. A class may also leave out what it can derive (`derived` / `expand`,
e.g. a seed's stored size when it is its upright size, a completion's output hash). `body()` is
what the ledger stores (`auto_label.ledger.bodies`).
Requests store their prompt as a template key and values; the template's text and the run's
backend parameters are in its `request_template` (`auto_label.ledger.templates`). The request
events' classes are in `auto_label.ledger.request_events` (re-exported here), the base class and
the `Row` in `auto_label.ledger.event_base`.

No event holds an API key or the image bytes: the image is referred to by its sha256.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from auto_label.ledger.event_base import EventBase as EventBase
from auto_label.ledger.event_base import Row as Row
from auto_label.ledger.event_base import columns_in_row
from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.image_events import DEFAULT_INGEST as DEFAULT_INGEST
from auto_label.ledger.image_events import ImageRejected as ImageRejected
from auto_label.ledger.image_events import ImageSeeded as ImageSeeded
from auto_label.ledger.request_events import AttemptFailed as AttemptFailed
from auto_label.ledger.request_events import RequestSent as RequestSent
from auto_label.ledger.request_events import RequestTemplate as RequestTemplate
from auto_label.ledger.request_events import ResponseReceived as ResponseReceived
from auto_label.ledger.request_events import Usage as Usage

_Event = EventBase


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


class StepCompleted(_Event):
    """A step's output for an image. From v6 on, a completion that reads the answer to a request
    (`request_id`) under that request's own fingerprint (every step whose parser_version is 1)
    leaves its fingerprint out of its body: the reader takes it back from the completion's row in
    the `completions` projection (`Ledger`), or from the request (`status --check`, which proves
    the two agree). A projection rebuilt from the events finds it through the request."""

    class_version = 6
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

    @staticmethod
    def upcast_v4_v5(raw: dict[str, Any]) -> dict[str, Any]:
        """A v5 body leaves out its row's columns and an output hash that is the hash of its
        output (`derived`); a v4 body holds both."""
        return {**raw, "v": 5}

    @staticmethod
    def upcast_v5_v6(raw: dict[str, Any]) -> dict[str, Any]:
        """A v6 body leaves out a fingerprint that is its request's (the reader puts it back
        before parsing); a v5 body always holds it."""
        return {**raw, "v": 6}

    _request_fingerprint: str | None = PrivateAttr(default=None)

    def answering(self, request_fingerprint: str | None) -> StepCompleted:
        """This completion, told the fingerprint of the request whose answer it reads (None:
        none); returns itself. Its body leaves its own fingerprint out when the two are equal."""
        self._request_fingerprint = request_fingerprint
        return self

    def derived(self) -> set[str]:
        left_out: set[str] = set()
        if content_hash(self.output) == self.output_hash:
            left_out.add("output_hash")
        if self.request_id is not None and self._request_fingerprint == self.fingerprint:
            left_out.add("fingerprint")
        return left_out

    @classmethod
    def expand(cls, raw: dict[str, Any]) -> dict[str, Any]:
        if "output_hash" in raw:
            return raw
        return {**raw, "output_hash": content_hash(raw.get("output"))}


class StepSelected(_Event):
    """An earlier completion becomes current again (its fingerprint matches the spec once more)."""

    class_version = 2
    compact_body = True
    upcast_v1_v2 = columns_in_row(2)
    type: Literal["step_selected"] = "step_selected"
    image_id: str
    step: str
    fingerprint: str


class StepFailed(_Event):
    class_version = 2
    compact_body = True
    upcast_v1_v2 = columns_in_row(2)
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


def parse_event(raw: dict[str, Any], row: Row | None = None) -> Event:
    """A stored event (its body, as a dict) -> its current typed model, upcast from the version it
    was written at. `row`: the columns of its row in `events`, which a compact body leaves out. A
    body that names its type holds its columns itself (a run's event, an image's event written
    before its class left them out, a model dump), and at its class's current version it is
    whole: `expand` is for compact bodies. Raises ValueError (pydantic's ValidationError
    included) when it does not parse, `NewerVersionError` when a newer auto-label wrote it."""
    compact = "type" not in raw
    if row is not None and compact:
        of = _BY_TYPE.get(row.type)
        raw = row.fill(raw, of.model_fields if of is not None else ())
    kind = raw.get("type")
    cls = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}")
    version = raw.get("v", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"event version {version!r} is not an integer")
    if version != cls.class_version:
        current = cls.upcast(raw, version)
    else:
        current = cls.expand(raw) if compact else raw
    return cast(Event, cls.model_validate(current))


IMAGE_EVENT_TYPES = ("image_seeded", "image_rejected", "step_completed", "step_selected",
                     "step_failed")
"""The events that make up an image's record (the rest are its audit trail)."""
