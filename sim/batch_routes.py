"""Which batch route a request is, its API key, and the tests' batch controls (VLM SIMULATOR).

For tests and demos only. `route` answers the batch and file routes of both providers
(batch_openai.py, batch_gemini.py) and two control routes, or returns None for any other path
(the server then answers it as before):

- ``GET /_sim/batches``: jobs per provider, every job (`BatchJobInfo.to_dict`), and the
  {image_sha256, task, count} of the requests answered inside jobs (for clients in subprocesses),
- ``POST /_sim/script_batches`` ``{"jobs": ["expired", ...], "lines": ["error", ...],
  "provider": null}``: how the next jobs end and how their next requests end.

OpenAI and Gemini (API version v1) share two paths, /v1/files/... and /v1/batches...; a request
carrying Google's key (x-goog-api-key header or ?key=) or google-genai's x-goog-api-client
header is Gemini's, any other OpenAI's. Keys are checked as online (server.py): OpenAI's
`Authorization: Bearer <key>`, Google's `x-goog-api-key`; a resumable upload's chunks carry no
key, their URL (with its upload id) being the capability, as google-genai sends them.
"""

from __future__ import annotations

import json
import re
import traceback
from email.message import Message
from urllib.parse import parse_qs, urlsplit

from . import batch_gemini, batch_openai
from .batch_store import BatchStore
from .engine import Reply, error_reply
from .protocols import dumps

_GEMINI_ONLY = re.compile(r"^/(upload/)?(v1beta|v1alpha)/|^/upload/v1/|:batchGenerateContent$|"
                          r":download$|:cancel$")
_SHARED = re.compile(r"^/v1/(files|batches)(/|$)")


def provider_of(path: str, query: str, headers: Message) -> str | None:
    """"openai", "gemini", or None when the path is no batch or file route."""
    if _GEMINI_ONLY.search(path) is not None:
        return "gemini" if re.search(r"/(files|batches)\b|:batchGenerateContent$", path) else None
    if _SHARED.match(path) is None:
        return None
    google = (headers.get("x-goog-api-key") is not None or "key" in parse_qs(query)
              or headers.get("x-goog-api-client") is not None)
    return "gemini" if google else "openai"


def route(store: BatchStore, method: str, target: str, headers: Message,
          raw: bytes) -> Reply | None:
    """The reply to a batch, file or batch-control request; None for any other path."""
    parts = urlsplit(target)
    path, query = parts.path, parts.query
    if path.startswith("/_sim/"):
        return _control(store, method, path, raw)
    provider = provider_of(path, query, headers)
    if provider is None:
        return None
    try:
        if provider == "openai":
            key = store.config.api_key
            if key is not None and headers.get("Authorization") != f"Bearer {key}":
                return error_reply("openai", 401, "Incorrect API key provided.")
            return batch_openai.route(store, method, path, query,
                                      str(headers.get("Content-Type", "")), raw)
        upload_chunk = "upload_id" in parse_qs(query)
        sent = headers.get("x-goog-api-key") or parse_qs(query).get("key", [None])[0]
        if store.config.api_key is not None and not upload_chunk and sent != store.config.api_key:
            return error_reply("gemini", 401, "API key not valid. Please pass a valid API key.")
        host = str(headers.get("Host") or "127.0.0.1")
        return batch_gemini.route(store, method, path, query, headers, raw, host)
    except Exception as exc:  # a simulator bug: say so loudly instead of hanging the client
        traceback.print_exc()
        return error_reply(provider, 500, f"simulator bug: {exc!r}")


def _control(store: BatchStore, method: str, path: str, raw: bytes) -> Reply | None:
    if path == "/_sim/batches" and method == "GET":
        return Reply(200, dumps(store.stats()))
    if path != "/_sim/script_batches" or method != "POST":
        return None
    try:
        body = json.loads(raw or b"{}")
        store.script_jobs(body.get("jobs", []), body.get("provider"))
        store.script_lines(body.get("lines", []))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        return Reply(400, dumps({"error": {"message": str(exc)}}))
    return Reply(200, dumps({"ok": True}))
