"""The `openai` backend: any OpenAI-compatible chat-completions endpoint, through the openai SDK.

OpenAI, vLLM, NVIDIA NIM, and other servers that speak `/v1/chat/completions`. The image goes as a
base64 data URL. The SDK's own retries are off (`max_retries=0`): the runner retries, so that every
attempt is an event.

Requests go through the SDK's generic `client.post` with the typed `ChatCompletion` result (the way
the SDK documents for custom requests): same client, auth, errors and response model as
`chat.completions.create`, without its parameter transform, which walks the whole request (base64
image included) and costs about 1.4 ms of CPU per request, as much as all of our own bookkeeping.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr

from auto_label.backends.base import (
    BackendConfig,
    BackendError,
    BackendPlugin,
    BadResponse,
    Blocked,
    ConnectionFailed,
    RequestTimeout,
    VLMRequest,
    VLMResponse,
    error_for_status,
    not_json,
)
from auto_label.backends.profiles import model_frame
from auto_label.backends.retry_after import parse_retry_after
from auto_label.errors import SpecError

if TYPE_CHECKING:  # the SDK is imported when a backend is created, not when the spec is read
    import openai

NO_KEY = "EMPTY"
"""Sent when no key is configured: servers without auth (a local vLLM) accept any value."""


class OpenAIConfig(BackendConfig):
    """`vlm.openai`: any OpenAI-compatible endpoint (defaults from the product spec)."""

    api_key: SecretStr = Field(default=SecretStr(""), description="empty: OPENAI_API_KEY")
    base_url: str = ""
    model_name: str = ""
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=4096, gt=0)
    timeout: float = Field(default=60, gt=0)


class OpenAIBackend:
    name = "openai"

    def __init__(self, config: OpenAIConfig) -> None:
        if not config.model_name:
            raise SpecError("vlm.openai.model_name is empty: name the model the endpoint serves")
        import openai

        self.config = config
        self.model = config.model_name
        self.frame = model_frame(config, config.model_name)
        key = config.api_key.get_secret_value() or os.environ.get("OPENAI_API_KEY") or NO_KEY
        self._client = openai.OpenAI(
            api_key=key,
            base_url=config.base_url or None,
            timeout=config.timeout,
            max_retries=0,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.config.model_name,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            **self.frame.describe(),
        }

    def complete(self, request: VLMRequest) -> VLMResponse:
        import openai
        from openai.types.chat import ChatCompletion

        image = request.image
        url = f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"
        body = {
            "model": self.config.model_name,
            "messages": [{
                "role": "user",
                "content": [
                    {"type": "text", "text": request.prompt},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }],
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        try:
            completion = self._client.post("/chat/completions", body=body,
                                           cast_to=ChatCompletion)
        except openai.APIStatusError as exc:
            raise _status_error(exc) from None
        except openai.APITimeoutError:
            raise RequestTimeout(f"no answer within {self.config.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise ConnectionFailed(f"cannot reach the endpoint ({_cause(exc)})") from None
        except openai.APIResponseValidationError as exc:
            raise BadResponse(f"the endpoint's answer is not a chat completion ({exc})") from None
        except openai.APIError as exc:
            raise BadResponse(f"unexpected answer from the endpoint ({exc})") from None
        except ValueError as exc:  # json.JSONDecodeError: a body that is not JSON
            raise not_json(exc) from None
        return _response(completion)

    def close(self) -> None:
        self._client.close()


def _response(completion: Any) -> VLMResponse:
    choices = getattr(completion, "choices", None)
    if not choices:
        raise BadResponse("the endpoint answered with no choices")
    choice = choices[0]
    finish = choice.finish_reason
    text = choice.message.content if choice.message is not None else None
    if text is None or (not text.strip() and finish == "content_filter"):
        raise Blocked(f"no content in the answer (finish_reason={finish})",
                      raw_text=completion.model_dump_json(exclude_none=True))
    usage = completion.usage
    details = getattr(usage, "completion_tokens_details", None) if usage is not None else None
    return VLMResponse(
        text=text,
        finish_reason=finish,
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
        thinking_tokens=getattr(details, "reasoning_tokens", None),
        model_version=getattr(completion, "model", None),
        response_id=getattr(completion, "id", None),
    )


def _status_error(exc: openai.APIStatusError) -> BackendError:
    status = exc.status_code
    return error_for_status(status, f"HTTP {status}: {_body_message(exc)}",
                            retry_after=parse_retry_after(exc.response.headers.get("retry-after")))


def _body_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
    return (exc.message or "")[:300]


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}" if cause is not None else type(exc).__name__


PLUGIN = BackendPlugin(name="openai", config=OpenAIConfig, create=OpenAIBackend)
