"""Gemini's Batch API for the `gemini` backend (the Gemini Developer API).

A job holds GenerateContent requests, inline in `batches.create(model, src=[...])` while the
request stays under 20 MB, else as a JSONL file uploaded through the Files API (one
`{"key", "request"}` per line). The job's `display_name` carries our key. Answers come back as
`dest.inlined_responses` (in request order, each with the request's `metadata`) or as a file
(`dest.file_name`, lines `{"key", "response"}` or `{"key", "error"}`). Jobs move through
JOB_STATE_PENDING and JOB_STATE_RUNNING to SUCCEEDED, FAILED, CANCELLED or EXPIRED.
Source: ai.google.dev/gemini-api/docs/batch-api ("50% of the standard cost"; inline requests
"keep the total request size under 20MB"; the input file for larger ones) and the google-genai
SDK (google/genai/batches.py, files.py).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from auto_label.backends.base import (
    BackendError,
    BadResponse,
    ConnectionFailed,
    RequestTimeout,
    VLMResponse,
    error_for_status,
)
from auto_label.backends.batching import BatchEntry, JobLost, JobState

if TYPE_CHECKING:
    from google import genai

    from auto_label.backends.gemini_backend import GeminiBackend

ID_FIELD = "auto_label_id"
"""the per-request metadata key an inline request carries its request id under"""
DONE = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
                  "JOB_STATE_EXPIRED"})
INLINE_LIMIT = 20 * 1024 * 1024
"""above this (with some room), the requests go as an uploaded file"""


class GeminiBatch:
    max_requests = 100_000
    """no documented count limit; the Files API's 2 GB per file bounds a job (max_bytes)"""
    max_bytes = 2 * 1024 * 1024 * 1024

    def __init__(self, backend: GeminiBackend, client: genai.Client) -> None:
        self._backend = backend
        self._client = client

    def request_bytes(self, entry: BatchEntry) -> int:
        return len(entry.request.image.data) * 4 // 3 + len(entry.request.prompt) + 600

    def submit(self, entries: Sequence[BatchEntry], key: str) -> str:
        from google.genai import types

        model = self._backend.config.model
        size = sum(self.request_bytes(e) for e in entries)
        if size < INLINE_LIMIT * 0.9:
            src: Any = [types.InlinedRequest(
                contents=[types.Content(role="user", parts=[
                    types.Part.from_bytes(data=e.request.image.data,
                                          mime_type=e.request.image.mime_type),
                    types.Part(text=e.request.prompt)])],
                config=self._backend.generation_config(e.request.json_output),
                metadata={ID_FIELD: e.custom_id}) for e in entries]
        else:
            lines = [json.dumps({"key": e.custom_id, "request": self._rest_request(e)})
                     for e in entries]
            data = io.BytesIO(("\n".join(lines) + "\n").encode("utf-8"))
            uploaded = self._call(lambda: self._client.files.upload(
                file=data, config={"mime_type": "application/jsonl", "display_name": key}))
            src = uploaded.name
        job = self._call(lambda: self._client.batches.create(
            model=model, src=src, config={"display_name": key}))
        return str(job.name)

    def find(self, key: str) -> str | None:
        def search() -> str | None:
            for job in self._client.batches.list():  # the SDK pages through all
                if job.display_name == key:
                    return str(job.name)
            return None

        found: str | None = self._call(search)
        return found

    def poll(self, job_id: str) -> JobState:
        job = self._call(lambda: self._client.batches.get(name=job_id))
        state = _name(job.state)
        answered = job.dest.inlined_responses if job.dest else None
        return JobState(job_id, state, state in DONE,
                        len(answered) if answered is not None else None)

    def results(self, job_id: str) -> dict[str, VLMResponse | BackendError]:
        from google.genai import types

        from auto_label.backends.gemini_backend import read_response

        job = self._call(lambda: self._client.batches.get(name=job_id))
        found: dict[str, VLMResponse | BackendError] = {}
        dest = job.dest
        if dest is None:
            return found
        for answer in dest.inlined_responses or []:
            custom_id = (answer.metadata or {}).get(ID_FIELD, "")
            if answer.response is not None:
                found[custom_id] = _read(read_response, answer.response)
            else:
                found[custom_id] = _row_error(answer.error.model_dump() if answer.error else {})
        if dest.file_name:
            name = dest.file_name
            content = self._call(lambda: self._client.files.download(file=name))
            for number, line in enumerate(bytes(content).decode("utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise BadResponse(f"{name}:{number}: a batch result line that is not "
                                      "JSON") from None
                custom_id = str(row.get("key", ""))
                if isinstance(row.get("response"), dict):
                    response = types.GenerateContentResponse.model_validate(row["response"])
                    found[custom_id] = _read(read_response, response)
                else:
                    found[custom_id] = _row_error(row.get("error") or row.get("status") or {})
        return found

    def cancel(self, job_id: str) -> None:
        self._call(lambda: self._client.batches.cancel(name=job_id))

    def _rest_request(self, entry: BatchEntry) -> dict[str, Any]:
        """A GenerateContentRequest in the REST API's JSON (camelCase), for a file line."""
        config = self._backend.generation_config(entry.request.json_output)
        generation = {"temperature": config.temperature,
                      "maxOutputTokens": config.max_output_tokens,
                      "mediaResolution": _name(config.media_resolution),
                      "responseMimeType": config.response_mime_type}
        image = entry.request.image
        return {"contents": [{"role": "user", "parts": [
            {"inlineData": {"mimeType": image.mime_type,
                            "data": base64.b64encode(image.data).decode("ascii")}},
            {"text": entry.request.prompt}]}],
            "generationConfig": {k: v for k, v in generation.items() if v is not None}}

    def _call(self, call: Any) -> Any:
        """`call()`, its SDK errors as ours (the online path's messages and kinds)."""
        from google.genai import errors

        from auto_label.backends.gemini_backend import transport_errors

        timeouts, transport = transport_errors()
        endpoint = self._backend.endpoint
        try:
            return call()
        except errors.APIError as exc:
            raise self._backend.api_error(exc) from None
        except timeouts:
            raise RequestTimeout(f"{endpoint}: the batch API gave no answer within "
                                 f"{self._backend.config.timeout:g} s") from None
        except transport as exc:
            raise ConnectionFailed(f"cannot reach {endpoint} ({type(exc).__name__})") from None
        except ValueError as exc:
            raise BadResponse(f"{endpoint}: unexpected batch API answer ({exc})") from None


def _read(read: Any, response: Any) -> VLMResponse | BackendError:
    try:
        return read(response)  # type: ignore[no-any-return]
    except BackendError as exc:  # blocked
        return exc


def _row_error(error: dict[str, Any]) -> BackendError:
    """A request that failed inside the job (a google.rpc.Status: code, message)."""
    code, message = error.get("code"), error.get("message") or "no message"
    http = {4: 504, 8: 429, 13: 500, 14: 503}.get(code) if isinstance(code, int) else None
    if http is not None:  # gRPC codes: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE
        return error_for_status(http, f"inside the batch job: {message} (code {code})")
    return JobLost(f"the batch job did not answer ({message}, code {code})")


def _name(value: Any) -> str:
    return str(getattr(value, "name", value))
