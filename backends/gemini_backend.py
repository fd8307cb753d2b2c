"""The `gemini` backend: Google's Gemini API through the google-genai SDK.

The image goes as inline bytes with its MIME type, the prompt as text, and the spec's
`media_resolution` goes into the generation config on every request (the reference implementation
drops it for images). JSON steps ask for `application/json`. The SDK's retries stay off (its
default): the runner retries, so that every attempt is an event.
"""

from __future__ import annotations

import functools
import importlib
import os
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr

from auto_label.backends.base import (
    BackendConfig,
    BackendError,
    BackendPlugin,
    Blocked,
    ConnectionFailed,
    DailyQuotaExhausted,
    EndpointMisconfigured,
    RequestTimeout,
    VLMRequest,
    VLMResponse,
    error_for_status,
    not_json,
)
from auto_label.backends.profiles import model_frame
from auto_label.backends.retry_after import google_details, parse_retry_after
from auto_label.errors import SpecError

if TYPE_CHECKING:  # the SDK is imported when a backend is created, not when the spec is read
    from google.genai import errors, types

    from auto_label.backends.gemini_batch import GeminiBatch

MediaResolution = Literal[
    "MEDIA_RESOLUTION_UNSPECIFIED",
    "MEDIA_RESOLUTION_LOW",
    "MEDIA_RESOLUTION_MEDIUM",
    "MEDIA_RESOLUTION_HIGH",
]


class GeminiConfig(BackendConfig):
    """`vlm.gemini`: Google's Gemini API (defaults from the product spec)."""

    DEFAULT_COORDINATES = "yxyx_1000"

    api_key: SecretStr = Field(
        default=SecretStr(""), description="leave empty and set GOOGLE_API_KEY (keep keys out of "
                                           "spec files)")
    model: str = "gemini-3.1-flash-lite-preview"
    """the Gemini model"""
    media_resolution: MediaResolution = "MEDIA_RESOLUTION_LOW"
    """how many tokens an image costs: MEDIA_RESOLUTION_LOW, _MEDIUM or _HIGH"""
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    """sampling temperature"""
    max_output_tokens: int = Field(default=8192, gt=0)
    """the answer's token limit (thinking included)"""
    timeout: float = Field(default=120, gt=0)
    """seconds to wait for one answer"""
    base_url: str = ""
    """empty: Google's endpoint"""

DEFAULT_ENDPOINT = "https://generativelanguage.googleapis.com"
MISSING_KEY = ("no Gemini API key: set vlm.gemini.api_key in the spec or the GOOGLE_API_KEY (or "
               "GEMINI_API_KEY) environment variable")
BLOCKING = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
            "LANGUAGE", "OTHER", "MALFORMED_FUNCTION_CALL"}


@functools.cache
def transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeouts, other transport errors) of the HTTP libraries the SDK may be using."""
    timeouts: list[type[BaseException]] = []
    transport: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        transport.append(module.TransportError)
    return tuple(timeouts), tuple(transport)



class GeminiBackend:
    name = "gemini"
    completion_includes_thinking = False
    """usage_metadata.candidates_token_count excludes thoughts_token_count
    (ai.google.dev/api/generate-content, "UsageMetadata")"""

    def __init__(self, config: GeminiConfig) -> None:
        # the SDK's own variables (googleapis/python-genai: GOOGLE_API_KEY, else GEMINI_API_KEY)
        key = (config.api_key.get_secret_value() or os.environ.get("GOOGLE_API_KEY", "")
               or os.environ.get("GEMINI_API_KEY", ""))
        if not key:
            raise SpecError(MISSING_KEY)
        from google import genai
        from google.genai import types

        self.config = config
        self.model = config.model
        self.frame = model_frame(config, config.model)
        options = types.HttpOptions(timeout=int(config.timeout * 1000),
                                    base_url=config.base_url or None)
        self._client = genai.Client(api_key=key, http_options=options)
        self._configs = {json_output: types.GenerateContentConfig(
            temperature=config.temperature,
            max_output_tokens=config.max_output_tokens,
            media_resolution=types.MediaResolution(config.media_resolution),
            response_mime_type="application/json" if json_output else None,
        ) for json_output in (False, True)}
        """the generation config of a request, built once (not per request)"""
        self.endpoint = (config.base_url or DEFAULT_ENDPOINT).rstrip("/")
        self.token_limit = ("vlm.gemini.max_output_tokens", config.max_output_tokens)

    def preflight(self) -> None:
        """GET models/{model}: no tokens spent. A connection error, a rejected key or a model
        the API does not have shows here."""
        from google.genai import errors

        timeouts, transport = transport_errors()
        try:
            self._client.models.get(model=self.config.model)
        except errors.APIError as exc:
            error = _api_error(exc, self.endpoint, self.config.model)
            if error.stops_run:
                raise error from None
        except timeouts:
            raise RequestTimeout(f"{self.endpoint} did not answer within "
                                 f"{self.config.timeout:g} s") from None
        except transport as exc:
            raise ConnectionFailed(f"cannot reach {self.endpoint} "
                                   f"({type(exc).__name__})") from None
        except ValueError:
            return

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.config.model,
            "temperature": self.config.temperature,
            "max_output_tokens": self.config.max_output_tokens,
            "media_resolution": self.config.media_resolution,
            **self.frame.describe(),
        }

    def contents(self, request: VLMRequest) -> list[types.PartUnionDict]:
        """The request's contents: the image, then the prompt (online, or a batch job's)."""
        from google.genai import types

        return [types.Part.from_bytes(data=request.image.data, mime_type=request.image.mime_type),
                request.prompt]

    def generation_config(self, json_output: bool) -> types.GenerateContentConfig:
        """The generation config of a request (built once, not per request)."""
        return self._configs[json_output]

    def api_error(self, exc: errors.APIError) -> BackendError:
        """Our error for an API error of the endpoint."""
        return _api_error(exc, self.endpoint, self.config.model)

    def batch_api(self) -> GeminiBatch:
        """Gemini's Batch API through this backend's client (`backends.gemini_batch`)."""
        from auto_label.backends.gemini_batch import GeminiBatch

        return GeminiBatch(self, self._client)

    def complete(self, request: VLMRequest) -> VLMResponse:
        from google.genai import errors

        timeouts, transport = transport_errors()
        config = self._configs[request.json_output]
        contents = self.contents(request)
        try:
            response = self._client.models.generate_content(
                model=self.config.model, contents=contents, config=config)
        except errors.APIError as exc:
            raise _api_error(exc, self.endpoint, self.config.model) from None
        except timeouts:
            raise RequestTimeout(f"{self.endpoint} gave no answer within "
                                 f"{self.config.timeout:g} s") from None
        except transport as exc:
            raise ConnectionFailed(f"cannot reach {self.endpoint} "
                                   f"({type(exc).__name__})") from None
        except ValueError as exc:  # a body that is not JSON
            raise not_json(exc) from None
        return read_response(response)

    def close(self) -> None:
        self._client.close()


def read_response(response: types.GenerateContentResponse) -> VLMResponse:
    """Our response from the SDK's. Raises Blocked when the prompt or the answer was blocked."""
    usage = response.usage_metadata
    candidates = response.candidates or []
    candidate = candidates[0] if candidates else None
    finish = _name(candidate.finish_reason) if candidate and candidate.finish_reason else None
    parts = candidate.content.parts if candidate and candidate.content and \
        candidate.content.parts else []
    answer = VLMResponse(
        text="".join(p.text for p in parts if p.text and not p.thought),
        finish_reason=finish,
        prompt_tokens=usage.prompt_token_count if usage else None,
        completion_tokens=usage.candidates_token_count if usage else None,
        thinking_tokens=usage.thoughts_token_count if usage else None,
        model_version=response.model_version,
        response_id=response.response_id,
        thinking="\n".join(p.text for p in parts if p.text and p.thought) or None,
    )
    if candidate is None:
        feedback = response.prompt_feedback
        reason = feedback.block_reason if feedback is not None else None
        why = f"the prompt was blocked ({_name(reason)})" if reason else "no candidate returned"
        raise Blocked(why, raw_text=response.model_dump_json(exclude_none=True),
                      response=answer)
    if finish in BLOCKING:
        raise Blocked(f"the answer was blocked (finish reason {finish})",
                      raw_text=response.model_dump_json(exclude_none=True), response=answer)
    return answer


def _name(value: Any) -> str:
    return str(getattr(value, "name", value))


def _api_error(exc: errors.APIError, endpoint: str, model: str) -> BackendError:
    status = exc.code or 0
    text = (exc.message or exc.status or "")[:300]
    message = f"HTTP {status}: {text}"
    headers = getattr(exc.response, "headers", None)
    retry_after = parse_retry_after(headers.get("retry-after")) if headers is not None else None
    body = exc.details.get("error", exc.details) if isinstance(exc.details, dict) else {}
    delay, quotas = google_details(body.get("details") if isinstance(body, dict) else None)
    if status == 429:
        # The wait is in the body (google.rpc.RetryInfo), not a Retry-After header; a per-day
        # quota (QuotaFailure quotaId ...PerDay...) does not come back within a run
        # (ai.google.dev/gemini-api/docs/rate-limits; googleapis/python-genai errors).
        daily = [q for q in quotas if "perday" in q.lower()]
        if daily:
            when = f"; it resets in {delay:g} s" if delay is not None else \
                " (daily quotas reset at midnight Pacific time)"
            return DailyQuotaExhausted(f"{endpoint}: the daily quota {daily[0]} is spent{when}; "
                                       "rerun then to resume", status_code=429)
        retry_after = retry_after if retry_after is not None else delay
    if status == 404:
        return EndpointMisconfigured(
            f"{endpoint}: HTTP 404 ({text}): the API has no model {model!r} (set "
            "vlm.gemini.model), or vlm.gemini.base_url is not a Gemini API", status_code=404)
    key_rejected = status == 400 and "api key" in (exc.message or "").lower()
    return error_for_status(status, message, retry_after=retry_after, key_rejected=key_rejected)


PLUGIN = BackendPlugin(name="gemini", config=GeminiConfig, create=GeminiBackend)
