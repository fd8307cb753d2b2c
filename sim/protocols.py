"""Wire formats of the VLM SIMULATOR: OpenAI chat completions and Gemini generateContent.

For tests and demos only. Requests are read as the real SDKs send them (OpenAI content as a string
or a list of parts in any order, image as a data URL; Gemini `inlineData`/`inline_data` with
`mimeType`/`mime_type` and standard or URL-safe base64, `generationConfig` in camelCase), and
replies are shaped so that the real `openai` and `google-genai` SDKs accept them.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any


class RequestError(ValueError):
    """A request the simulator cannot read: answered with HTTP 400."""


@dataclass
class ChatRequest:
    """A request reduced to what the simulated model uses."""

    protocol: str  # "openai" or "gemini"
    model: str
    prompt: str
    image: bytes | None
    max_tokens: int | None = None
    media_resolution: str | None = None
    api_version: str = "v1"  # Gemini: the version in the request's path (v1, v1beta, v1alpha)


def _b64(data: str) -> bytes:
    """Standard or URL-safe base64, padding optional."""
    cleaned = "".join(data.split()).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"invalid base64 image data: {exc}") from exc


def _data_url(url: str) -> bytes:
    if not url.startswith("data:"):
        raise RequestError("only data: image URLs are supported (the simulator has no network)")
    head, sep, payload = url.partition(",")
    if not sep or ";base64" not in head:
        raise RequestError("the image data URL must be base64")
    return _b64(payload)


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_openai(body: Any) -> ChatRequest:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise RequestError("'messages' must be a list")
    texts: list[str] = []
    image: bytes | None = None
    for message in body["messages"]:
        if not isinstance(message, dict):
            raise RequestError("each message must be an object")
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "image_url" and image is None:
                ref = part.get("image_url")
                url = ref.get("url") if isinstance(ref, dict) else ref
                if not isinstance(url, str):
                    raise RequestError("image_url.url must be a string")
                image = _data_url(url)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return ChatRequest("openai", str(body.get("model", "")), "\n".join(texts), image,
                       _int_or_none(max_tokens))


def parse_gemini(model: str, body: Any, api_version: str = "v1beta") -> ChatRequest:
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
        raise RequestError("'contents' must be a list")
    texts: list[str] = []
    image: bytes | None = None
    part_resolution: str | None = None
    system = body.get("systemInstruction") or body.get("system_instruction")
    contents = ([system] if isinstance(system, dict) else []) + body["contents"]
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            inline = part.get("inlineData", part.get("inline_data"))
            if isinstance(inline, dict) and image is None:
                data = inline.get("data")
                if not isinstance(data, str):
                    raise RequestError("inlineData.data must be a base64 string")
                image = _b64(data)
                res = part.get("mediaResolution", part.get("media_resolution"))
                if isinstance(res, dict):
                    res = res.get("level")
                part_resolution = str(res) if res else None
    config = body.get("generationConfig", body.get("generation_config")) or {}
    if not isinstance(config, dict):
        raise RequestError("generationConfig must be an object")
    resolution = config.get("mediaResolution", config.get("media_resolution")) or part_resolution
    max_tokens = config.get("maxOutputTokens", config.get("max_output_tokens"))
    return ChatRequest("gemini", model, "\n".join(texts), image, _int_or_none(max_tokens),
                       str(resolution) if resolution else None, api_version)


# --- replies -------------------------------------------------------------------------------

_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
}

_GOOGLE_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}


def error_body(protocol: str, status: int, message: str) -> dict[str, Any]:
    """An error in the protocol's own shape."""
    if protocol == "gemini":
        return {"error": {"code": status, "message": message,
                          "status": _GOOGLE_STATUS.get(status, "UNKNOWN")}}
    kind, code = _OPENAI_ERRORS.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def openai_reply(request_id: str, model: str, text: str | None, finish: str, prompt_tokens: int,
                 completion_tokens: int, message: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ChatCompletion; `finish` is "stop", "length" or "content_filter".

    `message` replaces the plain {"role", "content": text, "refusal"} (answer styles).
    """
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message or {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": finish,
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "system_fingerprint": "fp_sim",
    }


def gemini_reply(model_version: str, text: str | None, finish: str, prompt_tokens: int,
                 completion_tokens: int, thoughts_tokens: int, response_id: str,
                 parts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A GenerateContentResponse; `finish` is "STOP", "MAX_TOKENS" or "SAFETY".

    `parts` replaces the one text part (answer styles); an empty list leaves content partless.
    """
    candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
    if parts is not None:
        candidate["content"] = {"role": "model", **({"parts": parts} if parts else {})}
    elif text is not None:
        candidate["content"] = {"role": "model", "parts": [{"text": text}]}
    if finish == "SAFETY":
        candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                       "probability": "HIGH", "blocked": True}]
    return {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": completion_tokens,
            "thoughtsTokenCount": thoughts_tokens,
            "totalTokenCount": prompt_tokens + completion_tokens + thoughts_tokens,
        },
        "modelVersion": model_version,
        "responseId": response_id,
    }


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
