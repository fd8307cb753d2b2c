"""The events of a request: its run's template (`request_template`), the request sent, the answer
received, a failed attempt. Part of the ledger's events (`auto_label.ledger.events`, which
re-exports them); versioned and stored as any event is.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from auto_label.ledger.event_base import EventBase, columns_in_row


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    thinking_tokens: int | None = None


class RequestTemplate(EventBase):
    """What the requests of a run that use one prompt template share, recorded once per run and
    template before the first of them: the template's text (each request fills it with its
    `prompt_vars`: `auto_label.ledger.templates.render`), and the backend, model and parameters
    (`Backend.describe()`, never the key) the run sends with."""

    class_version = 3
    compact_body = True
    upcast_v1_v2 = columns_in_row(2)
    type: Literal["request_template"] = "request_template"
    template: str = Field(description="its key: task@version, and /convention when the text "
                                      "names a box convention, e.g. grounding.ground@1/yxyx_1000")
    step: str | None = Field(default=None, description="the step whose requests use it: the "
                                                       "first a run records for a step is the "
                                                       "one its requests that name none use")
    text: str
    backend: str
    model: str
    parameters: dict[str, Any]

    @staticmethod
    def upcast_v2_v3(raw: dict[str, Any]) -> dict[str, Any]:
        """v3 names the step that uses it (a v2 template served its key's requests only)."""
        return {**raw, "v": 3}


class RequestSent(EventBase):
    """A request as sent. Its prompt is its run's `request_template` filled with `prompt_vars`
    (`auto_label.ledger.templates`); from v4 on, a request of a step that uses the template its
    run recorded first for the step leaves the key out, and a request that sends a dataset
    image at its upright size leaves the size out (its latest image_seeded before it holds it:
    `sent_size`)."""

    class_version = 4
    compact_body = True
    upcast_v2_v3 = columns_in_row(3)
    type: Literal["request_sent"] = "request_sent"
    request_id: str
    image_id: str
    step: str
    attempt: int = 1
    fingerprint: str
    prompt_template: str | None = Field(
        default=None, description="the key of the request_template its run recorded: with "
                                  "`prompt_vars` it gives the prompt's text and the parameters; "
                                  "None: the template its run recorded first for its step; "
                                  "empty for a request that holds them itself (before "
                                  "templates)")
    prompt_vars: dict[str, Any] = Field(default_factory=dict,
                                        description="the values of the template's placeholders")
    image_sha256: str | None = Field(
        default=None, description="the sha256 of the file sent; None when it is the image's "
                                  "own: the file of its latest image_seeded before the request")
    sent_width: int | None = Field(default=None, description="pixels of the image as sent; "
                                                             "None: the upright size of its "
                                                             "latest image_seeded before it")
    sent_height: int | None = None
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

    @staticmethod
    def upcast_v3_v4(raw: dict[str, Any]) -> dict[str, Any]:
        """A v4 body may leave out its template key (its step's) and its size (its image's
        upright size); a v3 body always holds its size, and one without a key held its prompt
        itself (the v3 default was empty)."""
        return {**raw, "v": 4, "prompt_template": raw.get("prompt_template", "")}

    def sent_size(self, upright: tuple[int, int]) -> tuple[int, int]:
        """(width, height) in pixels of the image as sent; `upright`: the upright size of the
        image's latest image_seeded before the request (used when the request leaves its size
        out)."""
        if self.sent_width is None or self.sent_height is None:
            return upright
        return self.sent_width, self.sent_height


class ResponseReceived(EventBase):
    class_version = 4
    compact_body = True
    type: Literal["response_received"] = "response_received"
    request_id: str
    image_id: str
    step: str
    attempt: int = 1
    text: str
    finish_reason: str | None = Field(default="stop", description="as the endpoint said it; "
                                                                   "None: it said none")
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

    @staticmethod
    def upcast_v3_v4(raw: dict[str, Any]) -> dict[str, Any]:
        """A v4 body leaves out its row's columns, attempt 1 and the finish reason `stop` (the
        defaults from v4 on); a v3 body holds the columns and attempt, and leaves out a finish
        reason that is None (v3's default)."""
        return {**raw, "v": 4, "finish_reason": raw.get("finish_reason")}


class AttemptFailed(EventBase):
    class_version = 2
    compact_body = True
    upcast_v1_v2 = columns_in_row(2)
    type: Literal["attempt_failed"] = "attempt_failed"
    request_id: str
    image_id: str
    step: str
    attempt: int
    kind: str
    message: str
    retry_after_s: float | None = None
    status_code: int | None = None
