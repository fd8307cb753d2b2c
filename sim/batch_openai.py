"""OpenAI's Batch API and its Files API on the VLM SIMULATOR (tests and demos only).

Routes (under /v1, as the openai SDK sends them): POST /files (multipart: purpose, file),
GET /files/{id}, GET /files/{id}/content, DELETE /files/{id}; POST /batches, GET /batches
(?after, ?limit), GET /batches/{id}, POST /batches/{id}/cancel. The shapes follow:

- OpenAI's API reference, Batch and Files (platform.openai.com/docs/api-reference/batch,
  .../files): the Batch object (status validating, failed, in_progress, finalizing, completed,
  expired, cancelling, cancelled; request_counts {total, completed, failed}; metadata: up to 16
  pairs, keys <= 64 characters, values <= 512), the File object, the request input object
  {"custom_id", "method", "url", "body"} and the request output object
  {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}.
- OpenAI's Batch guide (platform.openai.com/docs/guides/batch): up to 50,000 requests and
  200 MB per input file; "the output line order may not match the input line order": clients
  match on custom_id (so the simulator shuffles output lines); an expired batch's completed
  requests are in its output file and the others in its error file with error code
  "batch_expired"; a cancelled batch is "cancelling" up to 10 minutes, then "cancelled" with
  its partial results.
- openai/openai-openapi, openapi.yaml, BatchRequestOutput.error.code: batch_expired ("could not
  be executed before the completion window ended"), batch_cancelled ("cancelled before this
  request executed").
- The openai SDK as installed (openai 3.57): resources/batches.py, resources/files.py
  (multipart upload; content() GETs /files/{id}/content), types/batch.py, batch_error.py,
  batch_request_counts.py, batch_usage.py, file_object.py, pagination.py (SyncCursorPage reads
  data and has_more, and asks the next page with after=<last id>); files.create's docstring:
  batch files expire after 30 days by default.

Not documented, the simulator's own choices: the error codes of a batch that fails validation,
the 400 for cancelling a batch that has ended, output_file_id null when no request succeeded
(as real batches whose requests all failed show it: openai users' reports).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any
from urllib.parse import parse_qs

from .batch_store import (
    CANCELLED,
    CANCELLING,
    COMPLETED,
    ENDED,
    EXPIRED,
    FAILED,
    PENDING,
    RUNNING,
    BatchStore,
    Job,
    JobStateError,
    Line,
    StoredFile,
)
from .engine import Reply, error_reply
from .protocols import RequestError, dumps, parse_openai

ENDPOINT = "/v1/chat/completions"
MAX_REQUESTS = 50_000
MAX_FILE_BYTES = 200 * 1024 * 1024
DAY = 86_400
_STATUS = {PENDING: "validating", RUNNING: "in_progress", COMPLETED: "completed",
           EXPIRED: "expired", FAILED: "failed", CANCELLING: "cancelling", CANCELLED: "cancelled"}
_STOPPED = {
    EXPIRED: ("batch_expired",
              "This request could not be executed before the completion window expired."),
    CANCELLED: ("batch_cancelled", "This request was not executed: the batch was cancelled."),
}
_FILE = re.compile(r"^/v1/files/(?P<id>[^/]+)(?P<content>/content)?$")
_BATCH = re.compile(r"^/v1/batches/(?P<id>[^/]+)(?P<cancel>/cancel)?$")


def route(store: BatchStore, method: str, path: str, query: str, content_type: str,
          raw: bytes) -> Reply | None:
    """The reply to an OpenAI files or batches request, or None if the path is not one."""
    if path == "/v1/files" and method == "POST":
        return _upload(store, content_type, raw)
    if path == "/v1/batches":
        if method == "POST":
            return _create(store, raw)
        return _list(store, parse_qs(query)) if method == "GET" else None
    if (found := _FILE.match(path)) is not None:
        stored = store.file(found.group("id"))
        if stored is None or stored.provider != "openai":
            return error_reply("openai", 404, f"No such File object: {found.group('id')}")
        if method == "DELETE" and not found.group("content"):
            store.delete_file(stored.name)
            return _json({"id": stored.name, "object": "file", "deleted": True})
        if method != "GET":
            return None
        if found.group("content"):
            return Reply(200, stored.data, content_type="application/octet-stream")
        return _json(file_object(stored))
    if (found := _BATCH.match(path)) is not None:
        if (method, bool(found.group("cancel"))) not in (("GET", False), ("POST", True)):
            return None
        name = found.group("id")
        if store.owner(name) != "openai":
            return error_reply("openai", 404, f"No batch found with id '{name}'.")
        try:
            job = store.cancel(name) if found.group("cancel") else store.job(name)
        except JobStateError as exc:
            return error_reply("openai", 400, f"Cannot cancel the batch: {exc}.")
        return _json(batch_object(store, job)) if job is not None else None
    return None


def _json(value: Any, status: int = 200) -> Reply:
    return Reply(status, dumps(value))


# --- files ----------------------------------------------------------------------------------


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """{field name: (filename or None, bytes)} of a multipart/form-data body (RFC 7578)."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise RequestError("expected a multipart/form-data body with a boundary")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise RequestError("a multipart part without headers")
        part = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            fields[name] = (part.get_filename(), data.removesuffix(b"\r\n"))
    return fields


def _upload(store: BatchStore, content_type: str, raw: bytes) -> Reply:
    try:
        fields = parse_multipart(content_type, raw)
    except RequestError as exc:
        return error_reply("openai", 400, str(exc))
    filename, data = fields.get("file", (None, None))
    purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
    if data is None or not purpose:
        return error_reply("openai", 400, "'file' and 'purpose' are required.")
    if purpose == "batch" and len(data) > MAX_FILE_BYTES:
        return error_reply("openai", 400, "Batch input files can be up to 200 MB.")
    return _json(file_object(store.add_file("openai", data, filename or "upload", purpose,
                                            "application/octet-stream")))


def file_object(stored: StoredFile) -> dict[str, Any]:
    """The File object (batch input files expire after 30 days, as files.create documents)."""
    created = int(stored.created)
    return {"id": stored.name, "object": "file", "bytes": len(stored.data), "created_at": created,
            "filename": stored.filename, "purpose": stored.purpose, "status": "processed",
            "status_details": None,
            "expires_at": created + 30 * DAY if stored.purpose.startswith("batch") else None}


# --- batches --------------------------------------------------------------------------------


def _create(store: BatchStore, raw: bytes) -> Reply:
    try:
        body = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return error_reply("openai", 400, f"Invalid request: {exc}")
    if not isinstance(body, dict):
        return error_reply("openai", 400, "Invalid request: expected a JSON object.")
    file_id = body.get("input_file_id")
    stored = store.file(file_id) if isinstance(file_id, str) else None
    if stored is None or stored.provider != "openai":
        return error_reply("openai", 404, f"No such File object: {file_id}")
    metadata = body.get("metadata") or {}
    problem = (
        f"file {file_id} was not uploaded with purpose 'batch'" if stored.purpose != "batch"
        else f"endpoint must be {ENDPOINT} (the only one the simulator serves)"
        if body.get("endpoint") != ENDPOINT
        else "completion_window must be '24h'" if body.get("completion_window") != "24h"
        else _metadata_problem(metadata))
    if problem is not None:
        return error_reply("openai", 400, problem)
    model, lines, problems = read_input(stored.data)
    job = store.create_job("openai", model, lines, stored.name, metadata=metadata,
                           extra={"endpoint": ENDPOINT}, problems=problems)
    return _json(batch_object(store, job))


def _metadata_problem(metadata: object) -> str | None:
    if not isinstance(metadata, dict):
        return "metadata must be an object"
    if len(metadata) > 16:
        return "metadata holds at most 16 pairs"
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 512:
            return "metadata keys are strings <= 64 characters, values strings <= 512"
    return None


def read_input(data: bytes) -> tuple[str, list[Line], list[tuple[int | None, str]]]:
    """(model, lines, problems) of a batch input file; a problem fails the whole batch."""
    lines: list[Line] = []
    problems: list[tuple[int | None, str]] = []
    models: set[str] = set()
    seen: set[str] = set()
    for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError:
            problems.append((number, "invalid_json_line: the line is not JSON"))
            continue
        key = item.get("custom_id") if isinstance(item, dict) else None
        body = item.get("body") if isinstance(item, dict) else None
        if not isinstance(key, str) or not isinstance(body, dict):
            problems.append((number, "missing_required_parameter: custom_id and body"))
            continue
        if key in seen:
            problems.append((number, f"duplicate_custom_id: {key!r} is used twice"))
        if item.get("method") != "POST" or item.get("url") != ENDPOINT:
            problems.append((number, f"invalid_url: each line must POST to {ENDPOINT}"))
        seen.add(key)
        models.add(str(body.get("model", "")))
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        try:
            lines.append(Line(key, parse_openai(body), digest))
        except RequestError as exc:
            lines.append(Line(key, None, digest, str(exc)))
    if len(models) > 1:
        problems.append((None, "model_mismatch: every request of a batch names one model"))
    if len(lines) > MAX_REQUESTS:
        problems.append((None, f"too_many_requests: at most {MAX_REQUESTS} per batch"))
    if not lines and not problems:
        problems.append((None, "empty_file: the input file holds no request"))
    return (min(models) if models else ""), lines, problems


def batch_object(store: BatchStore, job: Job) -> dict[str, Any]:
    """The Batch object of `job` (its result files written once it has ended)."""
    with job.lock:
        if job.state in ENDED and not job.problems and "written" not in job.outputs:
            _write_results(store, job)

        def at(state: str) -> int | None:
            return int(job.times[state]) if state in job.times else None

        total = 0 if job.problems else len(job.lines)
        ended = job.state in ENDED
        problems = job.problems or ([(None, "batch_failed: the batch failed (a simulated "
                                            "fault)")] if job.state == FAILED else [])
        errors = {"object": "list", "data": [
            {"code": why.partition(":")[0], "message": why, "param": None, "line": line}
            for line, why in problems]} if problems else None
        return {
            "id": job.name, "object": "batch", "endpoint": job.extra["endpoint"],
            "errors": errors, "input_file_id": job.source, "completion_window": "24h",
            "status": _STATUS[job.state], "output_file_id": job.outputs.get("output"),
            "error_file_id": job.outputs.get("error"), "created_at": int(job.created),
            "in_progress_at": at(RUNNING), "expires_at": int(job.created) + DAY,
            "finalizing_at": at(COMPLETED), "completed_at": at(COMPLETED),
            "failed_at": at(FAILED), "expired_at": at(EXPIRED),
            "cancelling_at": at(CANCELLING), "cancelled_at": at(CANCELLED),
            "request_counts": {"total": total, "completed": job.count(True) if ended else 0,
                               "failed": job.count(False) if ended else 0},
            "metadata": job.metadata or None, "model": job.model or None,
            "usage": _usage(job),
        }


def _usage(job: Job) -> dict[str, Any]:
    """BatchUsage: the tokens of the requests answered, as their own bodies count them."""
    counted = [a.body.get("usage") or {} for a in job.answers if a.status == 200 and a.body]
    prompt = sum(int(u.get("prompt_tokens", 0)) for u in counted)
    completion = sum(int(u.get("completion_tokens", 0)) for u in counted)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


def _write_results(store: BatchStore, job: Job) -> None:
    """The output file (requests answered 200) and the error file (the others), each line in
    the documented shape, in an order that is not the input's."""
    output: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for answer in job.answers:
        line: dict[str, Any] = {"id": f"batch_req_{secrets.token_hex(12)}",
                                "custom_id": answer.key, "response": None, "error": None}
        if answer.stopped is not None:
            code, message = _STOPPED[answer.stopped]
            line["error"] = {"code": code, "message": message}
        else:
            line["response"] = {"status_code": answer.status,
                                "request_id": f"req_{secrets.token_hex(16)}",
                                "body": answer.body}
        (output if answer.status == 200 else errors).append(line)
    short = job.name.removeprefix("batch_")
    for role, items in (("output", output), ("error", errors)):
        if items:
            random.Random(f"{job.name}/{role}").shuffle(items)
            text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
            stored = store.add_file("openai", text.encode(), f"batch_{short}_{role}.jsonl",
                                    "batch_output", "application/octet-stream")
            job.outputs[role] = stored.name
    job.outputs["written"] = "yes"


def _list(store: BatchStore, query: dict[str, list[str]]) -> Reply:
    """A cursor page of batches, newest first (`after`: the id the previous page ended with)."""
    try:
        limit = int(query.get("limit", ["20"])[0])
    except ValueError:
        return error_reply("openai", 400, "limit must be an integer")
    if not 1 <= limit <= 100:
        return error_reply("openai", 400, "limit must be between 1 and 100")
    jobs = store.jobs("openai")
    after = query.get("after", [None])[0]
    if after is not None:
        names = [job.name for job in jobs]
        jobs = jobs[names.index(after) + 1:] if after in names else []
    page = [batch_object(store, job) for job in jobs[:limit]]
    return _json({"object": "list", "data": page,
                  "first_id": page[0]["id"] if page else None,
                  "last_id": page[-1]["id"] if page else None,
                  "has_more": len(jobs) > limit})
