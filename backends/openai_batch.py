"""The OpenAI Batch API for the `openai` backend (OpenAI, and OpenAI-compatible servers that
offer /v1/batches).

A job is a JSONL file uploaded with purpose `batch`, one `/v1/chat/completions` request per line
(`{"custom_id", "method": "POST", "url", "body"}`), then `batches.create(input_file_id,
endpoint="/v1/chat/completions", completion_window="24h", metadata)`. Its answers are the lines of
`output_file_id` (`{"custom_id", "response": {"status_code", "body"}, "error"}`) and the failures
those of `error_file_id`; a job that expired or was cancelled keeps the answers it finished.
Source: developers.openai.com/api/docs/guides/batch and the openai SDK
(src/openai/resources/batches.py, whose docstring gives the limits: "up to 50,000 requests, and
can be up to 200 MB in size"; the guide: batch requests cost 50% less than synchronous ones).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from auto_label.backends.base import (
    BackendError,
    BadResponse,
    ConnectionFailed,
    EndpointMisconfigured,
    RequestTimeout,
    VLMResponse,
    error_for_status,
)
from auto_label.backends.batching import BatchEntry, JobLost, JobState

if TYPE_CHECKING:
    import openai

    from auto_label.backends.openai_backend import OpenAIBackend

KEY_FIELD = "auto_label_key"
"""the metadata key a job carries our key under"""
DONE = frozenset({"completed", "failed", "expired", "cancelled"})
"""terminal statuses (validating, in_progress, finalizing and cancelling are not)"""


class OpenAIBatch:
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024

    def __init__(self, backend: OpenAIBackend, client: openai.OpenAI) -> None:
        self._backend = backend
        self._client = client

    def request_bytes(self, entry: BatchEntry) -> int:
        # the image's base64 dominates: 4/3 of its bytes, plus the prompt and the envelope
        return len(entry.request.image.data) * 4 // 3 + len(entry.request.prompt) + 400

    def submit(self, entries: Sequence[BatchEntry], key: str) -> str:
        lines = [json.dumps({"custom_id": e.custom_id, "method": "POST",
                             "url": "/v1/chat/completions",
                             "body": self._backend.chat_body(e.request)}) for e in entries]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            uploaded = self._call(lambda: self._client.files.create(
                file=(f"{key}.jsonl", data, "application/jsonl"), purpose="batch"))
        except EndpointMisconfigured as exc:  # vLLM and most compatible servers: no /v1/files
            raise EndpointMisconfigured(
                f"{self._backend.endpoint} has no batch API (POST /files: {exc}); use "
                "workflow.mode: online with this server", status_code=404) from None
        created = self._call(lambda: self._client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions",
            completion_window="24h", metadata={KEY_FIELD: key}))
        return str(created.id)

    def find(self, key: str) -> str | None:
        def search() -> str | None:
            for batch in self._client.batches.list(limit=100):  # the SDK pages through all
                if (batch.metadata or {}).get(KEY_FIELD) == key:
                    return str(batch.id)
            return None

        found: str | None = self._call(search)
        return found

    def poll(self, job_id: str) -> JobState:
        batch = self._call(lambda: self._client.batches.retrieve(job_id))
        counts = batch.request_counts
        return JobState(job_id, str(batch.status), str(batch.status) in DONE,
                        counts.total if counts else None, counts.completed if counts else None,
                        counts.failed if counts else None)

    def results(self, job_id: str) -> dict[str, VLMResponse | BackendError]:
        batch = self._call(lambda: self._client.batches.retrieve(job_id))
        found: dict[str, VLMResponse | BackendError] = {}
        for file_id in (batch.error_file_id, batch.output_file_id):  # answers win over errors
            if not file_id:
                continue
            content = self._call(lambda f=file_id: self._client.files.content(f).read())
            for number, line in enumerate(content.decode("utf-8").splitlines(), 1):
                if line.strip():
                    custom_id, outcome = _outcome(line, f"{file_id}:{number}")
                    found[custom_id] = outcome
        return found

    def cancel(self, job_id: str) -> None:
        self._call(lambda: self._client.batches.cancel(job_id))

    def _call(self, call: Any) -> Any:
        """`call()`, its SDK errors as ours (the online path's messages and kinds)."""
        import openai

        endpoint = self._backend.endpoint
        try:
            return call()
        except openai.APIStatusError as exc:
            raise self._backend.status_error(exc) from None
        except openai.APITimeoutError:
            raise RequestTimeout(f"{endpoint}: the batch API gave no answer within "
                                 f"{self._backend.config.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise ConnectionFailed(f"cannot reach {endpoint} ({type(exc).__name__})") from None
        except (openai.APIError, ValueError) as exc:
            raise BadResponse(f"{endpoint}: unexpected batch API answer ({exc})") from None


def _outcome(line: str, where: str) -> tuple[str, VLMResponse | BackendError]:
    """(custom_id, the answer or the error) of one line of an output or error file."""
    from auto_label.backends.openai_backend import read_completion

    try:
        row = json.loads(line)
    except ValueError:
        raise BadResponse(f"{where}: a batch result line that is not JSON") from None
    custom_id = str(row.get("custom_id", ""))
    response = row.get("response") if isinstance(row.get("response"), dict) else {}
    error = row.get("error") if isinstance(row.get("error"), dict) else None
    status = response.get("status_code")
    body = response.get("body")
    if status == 200 and isinstance(body, dict):
        try:
            return custom_id, read_completion(body)
        except BackendError as exc:  # blocked, or not a completion
            return custom_id, exc
    message = _message(error) or _message(body.get("error") if isinstance(body, dict) else None)
    if isinstance(status, int):
        return custom_id, error_for_status(status, f"HTTP {status} inside the batch job: "
                                                   f"{message or 'no message'}")
    return custom_id, JobLost(f"the batch job did not answer ({message or 'no answer'})")


def _message(error: object) -> str:
    if isinstance(error, dict):
        code, text = error.get("code"), error.get("message")
        return ": ".join(str(p) for p in (code, text) if p)
    return ""
