"""Gemini's Batch Mode and its Files API on the VLM SIMULATOR (tests and demos only).

Routes ({v}: v1, v1beta or v1alpha), as google-genai sends them: POST /upload/{v}/files (a
resumable upload: "start", then chunks to the returned URL), GET and DELETE /{v}/files/{id},
GET /{v}/files/{id}:download; POST /{v}/models/{model}:batchGenerateContent, GET /{v}/batches
(?pageSize, ?pageToken), GET and DELETE /{v}/batches/{id}, POST /{v}/batches/{id}:cancel.
The shapes follow:

- Gemini API reference, Batch API (ai.google.dev/api/batch-api): models.batchGenerateContent
  takes {"batch": {"displayName" (required), "inputConfig": {"requests": {"requests":
  [InlinedRequest {"request", "metadata"}]}} or {"fileName"}}} and returns an Operation whose
  metadata is the GenerateContentBatch (model, displayName, state BATCH_STATE_*, createTime,
  updateTime, endTime, batchStats {requestCount, successfulRequestCount, failedRequestCount,
  pendingRequestCount}, output {inlinedResponses: {inlinedResponses: [InlinedResponse
  {response | error, metadata}]}} or {responsesFile}); "the responses will be in the same order
  as the input requests"; batches.list answers {"operations", "nextPageToken"}.
- Gemini's Batch API guide (ai.google.dev/gemini-api/docs/batch-api): inline requests for
  batches under 20 MB, else a JSONL file of {"key", "request"} lines whose results come back as
  a JSONL file of lines keyed the same, each a GenerateContentResponse or a status object;
  JOB_STATE_EXPIRED: pending or running for more than 48 hours, "no results to retrieve".
- google/longrunning/operations.proto: a done Operation holds `error` or `response`; a
  cancelled one the error code 1 (CANCELLED). google/rpc/status.proto: errors inside a batch
  are Status {code (gRPC), message}, as real batches show them (googleapis/python-genai issue
  2693: rows failing "code: 3 INVALID_ARGUMENT" in a BATCH_STATE_SUCCEEDED job).
- Gemini's Files API guide (ai.google.dev/gemini-api/docs/files): files kept 48 hours.
- The google-genai SDK as installed (3.6.1): batches.py (_BatchJob_from_mldev reads
  metadata.displayName / state / createTime / endTime / updateTime / model / output;
  t_job_state turns BATCH_STATE_* into JOB_STATE_*; _InlinedRequest_to_mldev,
  _InlinedResponse_from_mldev; cancel POSTs {name}:cancel and ignores the body),
  files.py and _extra_utils.prepare_resumable_upload (start: X-Goog-Upload-Protocol resumable,
  X-Goog-Upload-Command start, X-Goog-Upload-Header-Content-Length / -Content-Type, body
  {"file": {display_name, mime_type, size_bytes}}; the reply's x-goog-upload-url header),
  _api_client._upload_fd (chunks: X-Goog-Upload-Command "upload" / "upload, finalize",
  X-Goog-Upload-Offset, no API key; it reads x-goog-upload-status "active" / "final" and the
  final body's "file"), files.download (GET files/{id}:download?alt=media; "files created by
  upload can't be downloaded").

Not documented, the simulator's own choices: the 400 FAILED_PRECONDITION for cancelling an
ended batch, the page size of batches.list (50), an upload error's x-goog-upload-status
"cancelled" (so that the SDK stops at once).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

from . import catalog
from .batch_store import (
    CANCELLED,
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
from .protocols import RequestError, dumps, parse_gemini

_V = r"(?P<v>v1|v1beta|v1alpha)"
_UPLOAD = re.compile(rf"^/upload/{_V}/files$")
_FILE = re.compile(rf"^/{_V}/files/(?P<id>[^/:]+)(?P<download>:download)?$")
_CREATE = re.compile(rf"^/{_V}/models/(?P<model>[^/:]+):batchGenerateContent$")
_BATCHES = re.compile(rf"^/{_V}/batches$")
_BATCH = re.compile(rf"^/{_V}/batches/(?P<id>[^/:]+)(?P<cancel>:cancel)?$")
MAX_INLINE_BYTES = 20 * 1024 * 1024
_STATE = {PENDING: "BATCH_STATE_PENDING", RUNNING: "BATCH_STATE_RUNNING",
          COMPLETED: "BATCH_STATE_SUCCEEDED", EXPIRED: "BATCH_STATE_EXPIRED",
          FAILED: "BATCH_STATE_FAILED", CANCELLED: "BATCH_STATE_CANCELLED"}
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 500: 13, 503: 14}  # google/rpc/code.proto
# The @type of real batch Operations as users post them; the SDK ignores it.
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."


def route(store: BatchStore, method: str, path: str, query: str, headers: Message, raw: bytes,
          host: str) -> Reply | None:
    """The reply to a Gemini files or batches request, or None if the path is not one."""
    base = f"http://{host}"
    if (found := _UPLOAD.match(path)) is not None and method == "POST":
        upload_id = parse_qs(query).get("upload_id", [None])[0]
        if upload_id is None:
            return _start_upload(store, found.group("v"), headers, raw, base)
        return _chunk(store, upload_id, headers, raw, base)
    if (found := _FILE.match(path)) is not None:
        return _file(store, method, found, base)
    if (found := _CREATE.match(path)) is not None and method == "POST":
        return _create(store, found.group("v"), found.group("model"), raw)
    if _BATCHES.match(path) is not None and method == "GET":
        return _list(store, parse_qs(query))
    if (found := _BATCH.match(path)) is None:
        return None
    name = f"batches/{found.group('id')}"
    if store.owner(name) != "gemini":
        return error_reply("gemini", 404, f"Batch {name} not found.")
    if method == "POST" and found.group("cancel"):
        try:
            store.cancel(name)
        except JobStateError as exc:
            return _json({"error": {"code": 400, "message": f"{exc}.",
                                    "status": "FAILED_PRECONDITION"}}, 400)
        store.job(name)  # Gemini has no "cancelling" state: the cancel takes effect at once
        return _json({})
    if method == "DELETE" and not found.group("cancel"):
        store.delete_job(name)
        return _json({})
    job = store.job(name) if method == "GET" and not found.group("cancel") else None
    return _json(operation(store, job)) if job is not None else None


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, dumps(value), headers or {})


def _time(stamp: float) -> str:
    """RFC 3339, UTC, as Google's JSON writes Timestamps."""
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


# --- files ----------------------------------------------------------------------------------


def file_resource(stored: StoredFile, version: str, base: str) -> dict[str, Any]:
    """A File: int64 as a string and bytes as base64, as proto3's JSON mapping writes them."""
    short = stored.name.removeprefix("files/")
    resource: dict[str, Any] = {
        "name": stored.name, "displayName": stored.filename, "mimeType": stored.mime_type,
        "sizeBytes": str(len(stored.data)), "createTime": _time(stored.created),
        "updateTime": _time(stored.created), "expirationTime": _time(stored.created + 48 * 3600),
        "sha256Hash": base64.b64encode(hashlib.sha256(stored.data).digest()).decode(),
        "uri": f"{base}/{version}/files/{short}", "state": "ACTIVE", "source": stored.purpose}
    if stored.purpose == "GENERATED":
        resource["downloadUri"] = f"{base}/{version}/files/{short}:download?alt=media"
    return resource


def _upload_error(status: int, message: str) -> Reply:
    return _json({"error": {"code": status, "message": message,
                            "status": "INVALID_ARGUMENT" if status == 400 else "NOT_FOUND"}},
                 status, {"x-goog-upload-status": "cancelled"})


def _start_upload(store: BatchStore, version: str, headers: Message, raw: bytes,
                  base: str) -> Reply:
    if (str(headers.get("X-Goog-Upload-Protocol", "")).lower() != "resumable"
            or str(headers.get("X-Goog-Upload-Command", "")).lower() != "start"):
        return error_reply("gemini", 400, "Expected a resumable upload's start request.")
    try:
        meta = (json.loads(raw or b"{}") or {}).get("file") or {}
        size = int(headers.get("X-Goog-Upload-Header-Content-Length", "-1"))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, ValueError) as exc:
        return error_reply("gemini", 400, f"Invalid upload request: {exc}")
    mime = (headers.get("X-Goog-Upload-Header-Content-Type") or meta.get("mimeType")
            or meta.get("mime_type") or "application/octet-stream")
    display = meta.get("displayName") or meta.get("display_name") or ""
    upload_id = store.start_upload({"version": version, "size": size, "mime": str(mime),
                                    "display": str(display)})
    return Reply(200, b"", {"x-goog-upload-url": f"{base}/upload/{version}/files?upload_id="
                                                 f"{upload_id}",
                            "x-goog-upload-status": "active",
                            "x-goog-upload-chunk-granularity": str(8 * 1024 * 1024)})


def _chunk(store: BatchStore, upload_id: str, headers: Message, raw: bytes, base: str) -> Reply:
    """A chunk of a resumable upload: its URL (upload_id) is the capability, no key needed."""
    session = store.upload(upload_id)
    if session is None:
        return _upload_error(404, "No such upload session.")
    command = str(headers.get("X-Goog-Upload-Command", "")).lower()
    try:
        offset = int(headers.get("X-Goog-Upload-Offset", "-1"))
    except ValueError:
        offset = -1
    if offset != len(session["data"]):
        return _upload_error(400, f"Expected offset {len(session['data'])}, got {offset}.")
    session["data"] += raw
    if "finalize" not in command:
        return Reply(200, b"", {"x-goog-upload-status": "active",
                                "x-goog-upload-size-received": str(len(session["data"]))})
    store.end_upload(upload_id)
    if session["size"] >= 0 and session["size"] != len(session["data"]):
        return _upload_error(400, f"Declared {session['size']} bytes, received "
                                  f"{len(session['data'])}.")
    stored = store.add_file("gemini", session["data"], session["display"], "UPLOADED",
                            session["mime"])
    return _json({"file": file_resource(stored, session["version"], base)}, 200,
                 {"x-goog-upload-status": "final"})


def _file(store: BatchStore, method: str, found: re.Match[str], base: str) -> Reply | None:
    name = f"files/{found.group('id')}"
    stored = store.file(name)
    if stored is None or stored.provider != "gemini":
        return error_reply("gemini", 404, f"File {name} not found.")
    if found.group("download"):
        if method != "GET":
            return None
        if stored.purpose != "GENERATED":
            return error_reply("gemini", 400, "Only generated files can be downloaded.")
        return Reply(200, stored.data, content_type=stored.mime_type)
    if method == "DELETE":
        store.delete_file(name)
        return _json({})
    return _json(file_resource(stored, found.group("v"), base)) if method == "GET" else None


# --- batches --------------------------------------------------------------------------------


def _create(store: BatchStore, version: str, model: str, raw: bytes) -> Reply:
    if len(raw) > MAX_INLINE_BYTES:
        return error_reply("gemini", 400, "The batch request exceeds 20 MB: put its requests "
                                          "in a file (Files API) instead.")
    try:
        batch = json.loads(raw or b"null").get("batch")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        return error_reply("gemini", 400, f"Invalid JSON payload: {exc}")
    config = batch.get("inputConfig") if isinstance(batch, dict) else None
    if not isinstance(batch, dict) or not isinstance(config, dict):
        return error_reply("gemini", 400, "batch.input_config is required.")
    if not batch.get("displayName"):
        return error_reply("gemini", 400, "batch.display_name is required.")
    if not catalog.serves(store.config.served_models, "gemini", model):
        return _json(catalog.unknown_model("gemini", model, version, "batchGenerateContent"),
                     404)
    requests = (config.get("requests") or {}).get("requests")
    file_name = config.get("fileName")
    if (requests is None) == (file_name is None):
        return error_reply("gemini", 400, "Exactly one of requests or file_name must be set.")
    problems: list[tuple[int | None, str]] = []
    if requests is not None:
        if not isinstance(requests, list) or not requests:
            return error_reply("gemini", 400, "batch.input_config.requests is empty.")
        items = [(str(i), r) for i, r in enumerate(requests)]
        source = "inline"
    else:
        stored = store.file(str(file_name))
        if stored is None or stored.provider != "gemini":
            return error_reply("gemini", 404, f"File {file_name} not found.")
        items, problems = _read_file(stored.data)
        source = stored.name
    lines = [_line(key, item, model, version) for key, item in items]
    if not lines and not problems:
        problems.append((None, "the input file holds no request"))
    job = store.create_job("gemini", model.removeprefix("models/"), lines, source,
                           display_name=str(batch["displayName"]),
                           extra={"version": version}, problems=problems)
    return _json(operation(store, job))


def _read_file(data: bytes) -> tuple[list[tuple[str, Any]], list[tuple[int | None, str]]]:
    """The ({key}, {InlinedRequest-like}) items of a JSONL input file, and its bad lines."""
    items: list[tuple[str, Any]] = []
    problems: list[tuple[int | None, str]] = []
    for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            problems.append((number, "the line is not JSON"))
            continue
        if (not isinstance(value, dict) or not isinstance(value.get("key"), str)
                or not isinstance(value.get("request"), dict)):
            problems.append((number, 'each line is {"key": string, "request": object}'))
            continue
        items.append((value["key"], {"request": value["request"]}))
    return items, problems


def _line(key: str, item: Any, model: str, version: str) -> Line:
    request = item.get("request") if isinstance(item, dict) else None
    metadata = item.get("metadata") if isinstance(item, dict) else None
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    if not isinstance(request, dict):
        return Line(key, None, digest, "each request must be an object", metadata)
    asked = str(request.get("model") or model).removeprefix("models/")
    try:
        return Line(key, parse_gemini(asked, request, version), digest, None, metadata)
    except RequestError as exc:
        return Line(key, None, digest, str(exc), metadata)


def _status(status: int, body: dict[str, Any] | None) -> dict[str, Any]:
    """An error answer as google.rpc.Status: a gRPC code and the message."""
    error = (body or {}).get("error") or {}
    return {"code": _GRPC.get(status, 2), "message": str(error.get("message", "error"))}


def _output(store: BatchStore, job: Job) -> dict[str, Any] | None:
    """GenerateContentBatchOutput of a completed job: inline for inline input, else a file
    (written once)."""
    if job.state != COMPLETED:
        return None
    if job.source == "inline":
        return {"inlinedResponses": {"inlinedResponses": [
            {("response" if a.status == 200 else "error"):
             (a.body if a.status == 200 else _status(a.status, a.body)),
             **({"metadata": a.metadata} if a.metadata is not None else {})}
            for a in job.answers]}}
    if "responses" not in job.outputs:
        text = "".join(json.dumps({"key": a.key, **(
            {"response": a.body} if a.status == 200 else {"error": _status(a.status, a.body)})},
            ensure_ascii=False) + "\n" for a in job.answers)
        short = job.name.removeprefix("batches/")
        stored = store.add_file("gemini", text.encode(), f"batch-{short}-responses",
                                "GENERATED", "application/jsonl")
        job.outputs["responses"] = stored.name
    return {"responsesFile": job.outputs["responses"]}


def operation(store: BatchStore, job: Job) -> dict[str, Any]:
    """The Operation `batches/{id}` whose metadata is the GenerateContentBatch."""
    with job.lock:
        ended = job.state in ENDED
        total = len(job.lines)
        ok = job.count(True) if ended else 0
        stats = {"requestCount": str(total), "successfulRequestCount": str(ok),
                 "failedRequestCount": str(total - ok if ended else 0),
                 "pendingRequestCount": str(0 if ended else total)}
        meta: dict[str, Any] = {
            "@type": _TYPE + "GenerateContentBatch", "model": f"models/{job.model}",
            "displayName": job.display_name, "createTime": _time(job.created),
            "updateTime": _time(max(job.times.values())), "batchStats": stats,
            "state": _STATE.get(job.state, "BATCH_STATE_PENDING"), "name": job.name}
        op: dict[str, Any] = {"name": job.name, "metadata": meta, "done": ended}
        if ended:
            meta["endTime"] = _time(job.times[job.state])
        output = _output(store, job)
        if output is not None:
            meta["output"] = output
            op["response"] = {"@type": _TYPE + "GenerateContentBatchOutput", **output}
        elif job.state == CANCELLED:
            op["error"] = {"code": 1, "message": "The batch was cancelled."}
        elif job.state == FAILED:
            why = "; ".join(f"line {n}: {p}" if n else p for n, p in job.problems)
            op["error"] = {"code": 3 if job.problems else 13,
                           "message": why or "The batch failed."}
        return op


def _list(store: BatchStore, query: dict[str, list[str]]) -> Reply:
    """batches.list, newest first; the page token is the offset of the next page."""
    try:
        size = int(query.get("pageSize", ["50"])[0])
        start = int(query.get("pageToken", ["0"])[0] or 0)
    except ValueError:
        return error_reply("gemini", 400, "Invalid page size or page token.")
    jobs = store.jobs("gemini")
    page = jobs[start:start + max(1, size)]
    body: dict[str, Any] = {"operations": [operation(store, job) for job in page]}
    if start + len(page) < len(jobs):
        body["nextPageToken"] = str(start + len(page))
    return _json(body)
