"""The one small protocol every backend implements, the values and errors it speaks in, and how a
backend registers (`BackendPlugin`, found through the `auto_label.backends` entry-point group).

A backend turns a `VLMRequest` (prompt + prepared image) into a `VLMResponse` (raw text + usage), or
raises one of the errors below. It does not retry: the runner owns retries so that every attempt is
an event in the ledger. It does not parse: parsing is the pipelines' job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer

from auto_label.backends.prices import PriceSetting
from auto_label.boxes import Convention


@dataclass(frozen=True)
class PreparedImage:
    """The image as it is sent: maybe a downscaled copy of the original."""

    data: bytes
    mime_type: str
    sent_size: tuple[int, int]
    original_size: tuple[int, int]
    sha256: str
    """of the original file's bytes"""


@dataclass(frozen=True)
class VLMRequest:
    prompt: str
    image: PreparedImage
    json_output: bool = False
    """the step expects JSON (backends that can ask for JSON mode do so)"""


@dataclass(frozen=True)
class VLMResponse:
    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    thinking_tokens: int | None = None
    model_version: str | None = None
    """the model that answered, as the endpoint names it"""
    response_id: str | None = None
    """the endpoint's id of this answer"""
    thinking: str | None = None
    """what the model wrote as reasoning (thinking parts, `reasoning_content`), apart from the
    answer"""


class BackendError(Exception):
    """A request failed. `kind` names the failure in events and summaries.

    `retry_after` is the wait the endpoint asked for (Retry-After, Gemini's RetryInfo, OpenAI's
    rate-limit reset headers); `response` is the answer when there was one (a blocked candidate
    still has its usage), so that it is recorded like any other.
    """

    kind = "backend_error"
    retryable = False
    stops_run = False
    """the endpoint's problem, not the image's: the run stops (`auto_label.errors.RunAborted`)"""

    def __init__(self, message: str, *, status_code: int | None = None,
                 retry_after: float | None = None, raw_text: str | None = None,
                 response: VLMResponse | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.raw_text = raw_text
        self.response = response


class RateLimited(BackendError):
    kind = "rate_limited"
    retryable = True


class ServerError(BackendError):
    kind = "server_error"
    retryable = True


class RequestTimeout(BackendError):
    kind = "timeout"
    retryable = True


class ConnectionFailed(BackendError):
    kind = "connection_error"
    retryable = True


class BadResponse(BackendError):
    """The HTTP exchange worked but the body is not what the protocol promises."""

    kind = "bad_response"
    retryable = True


class Blocked(BackendError):
    """The model returned no usable candidate (safety filter, recitation, empty)."""

    kind = "blocked"


class RequestRejected(BackendError):
    """A client error (400, 404, 413, 422...): retrying the same request cannot help."""

    kind = "request_rejected"


class AuthFailed(BackendError):
    """401/403: the endpoint rejected the API key; every request would fail the same way."""

    kind = "auth_failed"
    stops_run = True


class EndpointMisconfigured(BackendError):
    """A route or model that does not exist on the endpoint (HTTP 404): the message names the URL
    and the likely fix. Every request would fail the same way."""

    kind = "endpoint_misconfigured"
    stops_run = True


class DailyQuotaExhausted(BackendError):
    """A quota that does not come back within a run (per day, or no credit left)."""

    kind = "quota_exhausted"
    stops_run = True


def not_json(exc: Exception) -> BadResponse:
    """The error for a response body that does not decode as JSON (the SDKs raise ValueError)."""
    first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return BadResponse(f"the endpoint's answer is not JSON ({first})")


def error_for_status(status: int, message: str, *, retry_after: float | None = None,
                     key_rejected: bool = False) -> BackendError:
    """The error an HTTP error status means, the same for every backend (the retry policy keys
    on its kind): 401/403 (or a key the provider says is invalid) and 404 (a route or model
    that does not exist) stop the run, 429 and 408/5xx are retried, any other client error is
    not."""
    if status in (401, 403) or key_rejected:
        return AuthFailed(message, status_code=status)
    if status == 404:
        return EndpointMisconfigured(message, status_code=status)
    if status == 429:
        return RateLimited(message, status_code=status, retry_after=retry_after)
    if status == 408 or status >= 500:
        return ServerError(message, status_code=status, retry_after=retry_after)
    return RequestRejected(message, status_code=status)


class SmartResize(BaseModel):
    """The frame a Qwen2-VL-style image processor resizes an image to, and so the frame its
    pixel boxes are in: each side rounded to a multiple of `factor`, the area brought within
    [min_pixels, max_pixels] (transformers' `smart_resize` in
    src/transformers/models/qwen2_vl/image_processing_qwen2_vl.py). The defaults are those of
    Qwen2.5-VL's processor (huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct, preprocessor_config.json:
    patch_size 14 x merge_size 2, min_pixels 3136, max_pixels 12845056); servers are often started
    with a lower max_pixels (vLLM's --mm-processor-kwargs), which `auto_label probe` finds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factor: int = Field(default=28, ge=1, le=1024)
    min_pixels: int = Field(default=3136, ge=1)
    max_pixels: int = Field(default=12845056, ge=1)


@dataclass(frozen=True)
class ModelFrame:
    """How a backend's model sees images and writes boxes, resolved from the spec and the
    model's profile: the box convention, and the frame images are sent at."""

    coordinates: Convention
    max_image_side: int = 0
    """0, or the longest side images are downscaled to before anything else"""
    smart_resize: SmartResize | None = None
    """when set, images are sent already at the processor's frame (so it leaves them alone)"""
    profile: str | None = None
    """the model family whose profile matched the model name, if any"""
    source: str = "spec"
    """where `coordinates` came from: spec, profile or default"""
    defaulted: bool = False
    """coordinates came from the backend's default: the model has no profile and the spec set
    none (worth one warning, and `auto_label probe`)"""

    def describe(self) -> dict[str, Any]:
        """What of the frame determines an answer (for `Backend.describe()`); `smart_resize`
        only when set, so fingerprints of runs without it stay what they were."""
        described: dict[str, Any] = {"coordinates": self.coordinates,
                                     "max_image_side": self.max_image_side}
        if self.smart_resize is not None:
            described["smart_resize"] = self.smart_resize.model_dump()
        return described


class BackendConfig(BaseModel):
    """What every backend's `vlm.<name>` block has; each backend's own model extends it.

    `api_key` is a secret: it prints as `**********` and is dumped masked, so a spec written to
    the ledger or a log never holds it. `coordinates` and `smart_resize` left out of the spec, or
    `null`, come from the model's profile (`backends.profiles.model_frame`); any other value
    always wins (`smart_resize: false`: no processor resize, even for a profile that has one).
    The docstring under a key says what it means (`auto_label init` shows it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    DEFAULT_COORDINATES: ClassVar[Convention] = "xyxy_pixel"
    """the convention of a model without a profile"""

    api_key: SecretStr = Field(default=SecretStr(""))
    coordinates: Convention | None = None
    """how the model writes boxes: xyxy_pixel, xyxy_1000 or yxyx_1000; null: its profile's"""
    max_image_side: int = Field(default=0, ge=0)
    """downscale images whose longest side is larger (pixels); 0: send them as they are"""
    smart_resize: SmartResize | Literal[False] | None = None
    """send images at the frame a Qwen2-VL-style processor resizes to ({factor, min_pixels,
    max_pixels}); false: none (pixel boxes in the image as sent); null: its profile's"""
    price: PriceSetting | None = Field(
        default=None, description="USD per million tokens; empty: the price table's entry for "
                                  "the model (backends/prices.py). Never part of a fingerprint")

    @field_serializer("api_key")
    def _hide_key(self, value: SecretStr) -> str:
        return "**********" if value.get_secret_value() else ""


@runtime_checkable
class Backend(Protocol):
    """A VLM endpoint. `describe()` is everything about it that determines an answer."""

    name: str
    model: str
    """the model name as the endpoint knows it"""
    frame: ModelFrame
    endpoint: str
    """the URL requests go to (for messages; never a key)"""
    token_limit: tuple[str, int]
    """(the spec key, its value) that caps an answer's tokens, for messages"""
    completion_includes_thinking: bool
    """whether the completion tokens it reports hold the thinking tokens too (for costs)"""

    def preflight(self) -> None:
        """One cheap request before the first image (no generation where the endpoint has a
        cheaper one): raise a stopping `BackendError` when the endpoint is unreachable,
        misconfigured or rejects the key; return quietly when it cannot tell."""
        ...

    def describe(self) -> dict[str, Any]:
        """Model and generation parameters (never the key): they go into fingerprints."""
        ...

    def complete(self, request: VLMRequest) -> VLMResponse:
        """Send one request; raise a `BackendError` subclass when it fails."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class BackendPlugin:
    """How a backend registers: an object named by an entry point of the `auto_label.backends`
    group (pyproject.toml lists the built-in ones the same way a third-party package would).

    Importing the module that holds it must not import the backend's SDK: the spec is composed
    from every registered backend's `config` before one is chosen.
    """

    name: str
    """the `vlm.backend` value, and the name of the `vlm.<name>` block"""
    config: type[BackendConfig]
    create: Callable[[Any], Backend]
    """config (an instance of `config`) -> a ready backend; raises SpecError when unusable"""
