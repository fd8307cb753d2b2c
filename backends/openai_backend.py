"""The `openai` backend: any OpenAI-compatible chat-completions endpoint, through the openai SDK.

OpenAI, vLLM, NVIDIA NIM, and other servers that speak `/v1/chat/completions`. The image goes as a
base64 data URL. The SDK's own retries are off (`max_retries=0`): the runner retries, so that every
attempt is an event.

Requests go through the SDK's generic `client.post` (the way the SDK documents for custom
requests): same client, auth, retries-off and status errors as `chat.completions.create`, without
its parameter transform, which walks the whole request (base64 image included) and costs about
1.4 ms of CPU per request, as much as all of our own bookkeeping. The answer comes back as the
body's bytes (`cast_to=bytes`) and is read once, with `json.loads`, into our `VLMResponse`:
building the SDK's typed `ChatCompletion` first cost another 0.18 ms per request. The fields read
are those of the chat completion object (platform.openai.com/docs/api-reference/chat/object).

Each thread sends its requests through a client of its own (the backend's client with the same
options, over its own connection pool; one TLS context for all): the SDK's pool (httpcore) goes
over every connection it holds, polling each idle one, on every request and every response, under
one lock (about 170 us a pass over 64 idle connections, GIL held). At 64 workers, paired runs
(bench/throughput.py, 2026-11-30, median of 6 pairs): the SDK call 1.84 -> 1.61 ms of CPU a
request, and 1.2x the requests a second; at 8 and 32 workers no change beyond the noise. A
thread's own pool holds the one connection it uses.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import threading
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field, SecretStr

from auto_label.backends.base import (
    BackendConfig,
    BackendError,
    BackendPlugin,
    BadResponse,
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
from auto_label.backends.retry_after import openai_wait
from auto_label.errors import SpecError

if TYPE_CHECKING:  # the SDK is imported when a backend is created, not when the spec is read
    import ssl

    import openai

    from auto_label.backends.openai_batch import OpenAIBatch

NO_KEY = "EMPTY"
"""Sent when no key is configured: servers without auth (a local vLLM) accept any value."""


class OpenAIConfig(BackendConfig):
    """`vlm.openai`: any OpenAI-compatible endpoint (defaults from the product spec)."""

    api_key: SecretStr = Field(
        default=SecretStr(""), description="leave empty and set OPENAI_API_KEY (keep keys out of "
                                           "spec files)")
    base_url: str = ""
    """the server's OpenAI-compatible URL, ending in /v1; empty: OpenAI's"""
    model_name: str = ""
    """the model as the endpoint serves it (vLLM's --served-model-name); required"""
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    """sampling temperature"""
    max_tokens: int = Field(default=4096, gt=0)
    """the answer's token limit (reasoning included on reasoning models)"""
    timeout: float = Field(default=60, gt=0)
    """seconds to wait for one answer"""


class OpenAIBackend:
    name = "openai"
    completion_includes_thinking = True
    """usage.completion_tokens includes completion_tokens_details.reasoning_tokens
    (platform.openai.com/docs/api-reference/chat/object, "usage")"""

    def __init__(self, config: OpenAIConfig) -> None:
        if not config.model_name:
            raise SpecError("vlm.openai.model_name is empty: name the model the endpoint serves")
        import openai

        self.config = config
        self.model = config.model_name
        self.frame = model_frame(config, config.model_name)
        key = config.api_key.get_secret_value() or os.environ.get("OPENAI_API_KEY") or NO_KEY
        self._tls = _tls_context()
        """every client of this backend (`_thread_client`) uses this one (making one costs about
        40 ms of CPU); None: each makes its own"""
        self._client = openai.OpenAI(
            api_key=key,
            base_url=config.base_url or None,
            timeout=config.timeout,
            max_retries=0,
            http_client=self._http_client(),
        )
        self.endpoint = str(self._client.base_url).rstrip("/")
        self.token_limit = ("vlm.openai.max_tokens", config.max_tokens)
        self._local = threading.local()
        self._clients: list[openai.OpenAI] = []
        """the threads' clients (`_thread_client`), closed with the backend"""
        self._clients_lock = threading.Lock()

    def preflight(self) -> None:
        """GET /models: no tokens spent. A connection error, a rejected key or a route that does
        not exist shows here; a server without a models route says nothing."""
        import openai

        try:
            # the same GET as `models.list()`, its body not parsed: the SDK's page models
            # (openai.pagination, a generic page class made for Model) are not built before the
            # first request (launch time, issue 12); a body that is not a model list was ignored
            self._client.get("/models", cast_to=bytes)
        except openai.APIStatusError as exc:
            if exc.status_code != 404 or self.endpoint.endswith("/v1"):
                error = self._status_error(exc)
                if error.stops_run and not isinstance(error, EndpointMisconfigured):
                    raise error from None
                return  # no models route, or a status that tells nothing about the endpoint
            raise EndpointMisconfigured(
                f"{self.endpoint}/models does not exist (HTTP 404): {self._route_hint()}",
                status_code=404) from None
        except openai.APITimeoutError:
            raise RequestTimeout(f"{self.endpoint} did not answer GET /models within "
                                 f"{self.config.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise ConnectionFailed(f"cannot reach {self.endpoint} ({_cause(exc)})") from None
        except (openai.APIError, ValueError):
            return

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.config.model_name,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            **self.frame.describe(),
        }

    def chat_body(self, request: VLMRequest) -> dict[str, Any]:
        """The /chat/completions request body of `request` (online, or a batch file's line)."""
        image = request.image
        url = f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"
        return {
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

    def batch_api(self) -> OpenAIBatch:
        """The OpenAI Batch API through this backend's client (`backends.openai_batch`)."""
        from auto_label.backends.openai_batch import OpenAIBatch

        return OpenAIBatch(self, self._client)

    def status_error(self, exc: openai.APIStatusError) -> BackendError:
        """Our error for an HTTP error status of the endpoint."""
        return self._status_error(exc)

    def complete(self, request: VLMRequest) -> VLMResponse:
        import openai

        body = self.chat_body(request)
        try:
            raw = self._thread_client().post("/chat/completions", body=body, cast_to=bytes)
            completion = json.loads(raw)
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APITimeoutError:
            raise RequestTimeout(f"{self.endpoint} gave no answer within "
                                 f"{self.config.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise ConnectionFailed(f"cannot reach {self.endpoint} ({_cause(exc)})") from None
        except openai.APIError as exc:
            raise BadResponse(f"unexpected answer from the endpoint ({exc})") from None
        except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError: not JSON
            raise not_json(exc) from None
        return read_completion(completion)

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self._client.close()

    def _thread_client(self) -> openai.OpenAI:
        """The calling thread's client: the backend's, with the same options (key, base URL,
        timeout, retries off) and a connection pool of its own, made on the thread's first
        request, on the backend's TLS context."""
        client: openai.OpenAI | None = getattr(self._local, "client", None)
        if client is None:
            with self._clients_lock:
                client = self._client.with_options(http_client=self._http_client())
                self._clients.append(client)
            self._local.client = client
        return client

    def _http_client(self) -> Any:
        """An HTTP client with the SDK's defaults (`openai.DefaultHttpxClient`), on `_tls`."""
        import openai

        if self._tls is None:
            return openai.DefaultHttpxClient()
        return openai.DefaultHttpxClient(verify=self._tls)

    def _status_error(self, exc: openai.APIStatusError) -> BackendError:
        status = exc.status_code
        message = _body_message(exc)
        if status == 404:
            return EndpointMisconfigured(f"{self.endpoint}: HTTP 404 ({message}): "
                                         f"{self._not_found_hint(message)}", status_code=404)
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error", body)
        code = error.get("code") if isinstance(error, dict) else None
        if status == 429 and code == "insufficient_quota":
            # OpenAI: "You exceeded your current quota, please check your plan and billing
            # details" (platform.openai.com/docs/guides/error-codes): no wait helps
            return DailyQuotaExhausted(
                f"{self.endpoint}: no quota left (insufficient_quota: {message}); check the "
                "account's plan and billing, then rerun to resume", status_code=429)
        return error_for_status(status, f"HTTP {status}: {message}",
                                retry_after=openai_wait(exc.response.headers))

    def _not_found_hint(self, message: str) -> str:
        lowered = message.lower()
        if "model" in lowered and ("not exist" in lowered or "not found" in lowered):
            served = self._served_models()
            listed = f"; it serves: {', '.join(served)}" if served else ""
            return (f"the endpoint does not serve the model {self.model!r}{listed} "
                    "(set vlm.openai.model_name)")
        return self._route_hint()

    def _route_hint(self) -> str:
        if not self.endpoint.endswith("/v1"):
            return (f"the route does not exist; did you mean base_url {self.endpoint}/v1? "
                    "(OpenAI-compatible servers such as vLLM serve /v1/chat/completions)")
        return "the route does not exist on this server: is vlm.openai.base_url right?"

    def _served_models(self) -> list[str]:
        """The model names the endpoint lists (GET /models), when it has that route."""
        try:
            return sorted(str(m.id) for m in self._client.models.list())[:20]
        except Exception:  # any failure: just no list to show
            return []


def _tls_context() -> ssl.SSLContext | None:
    """A TLS context made as the SDK's default HTTP client makes its own: httpx2's (openai 3 and
    later), else httpx's; None when neither offers `create_ssl_context`."""
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        make = getattr(module, "create_ssl_context", None)
        if make is not None:
            return cast("ssl.SSLContext", make())
    return None


def _parts_text(content: object) -> tuple[str, str]:
    """(answer text, thinking text) of a message's content: a string, or a list of parts as
    Mistral/Magistral-style servers return (`{"type": "text", "text": ...}` and
    `{"type": "thinking", "thinking": [{"type": "text", "text": ...}]}`)."""
    if isinstance(content, str):
        return content, ""
    if not isinstance(content, list):
        return "", ""
    texts: list[str] = []
    thoughts: list[str] = []
    for part in content:
        kind = _field(part, "type")
        if kind == "text":
            texts.append(str(_field(part, "text") or ""))
        elif kind in ("thinking", "reasoning"):
            inner = _field(part, kind)
            thoughts.append(_parts_text(inner)[0] if isinstance(inner, list) else str(inner or ""))
    return "".join(texts), "\n".join(t for t in thoughts if t)


def _field(part: object, key: str) -> Any:
    return part.get(key) if isinstance(part, dict) else getattr(part, key, None)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def read_completion(completion: object) -> VLMResponse:
    """Our response from a chat completion's JSON body. Raises BadResponse when it is not one,
    Blocked when the content filter emptied it."""
    if not isinstance(completion, dict):
        raise BadResponse("the endpoint's answer is not a chat completion (not a JSON object)")
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BadResponse("the endpoint answered with no choices")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise BadResponse("the endpoint's answer is not a chat completion (a choice that is "
                          "not an object)")
    finish = _str(choice.get("finish_reason"))
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    text, thinking = _parts_text(message.get("content"))
    # vLLM with a reasoning parser: the thinking in `reasoning_content` (older releases) or
    # `reasoning` (docs.vllm.ai/en/latest/features/reasoning_outputs.html)
    for key in ("reasoning_content", "reasoning"):
        extra = message.get(key)
        if isinstance(extra, str) and extra.strip() and extra not in thinking:
            thinking = f"{thinking}\n{extra}" if thinking else extra
    usage = completion.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("completion_tokens_details")
    response = VLMResponse(
        text=text,
        finish_reason=finish,
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        thinking_tokens=_int(details.get("reasoning_tokens")) if isinstance(details, dict)
        else None,
        model_version=_str(completion.get("model")),
        response_id=_str(completion.get("id")),
        thinking=thinking or None,
    )
    if finish == "content_filter" and not text.strip():
        raise Blocked("the answer was blocked by the endpoint's content filter "
                      "(finish_reason=content_filter)",
                      raw_text=json.dumps(completion, ensure_ascii=False), response=response)
    return response


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
