"""The request loop of the VLM SIMULATOR, apart from HTTP: count, limit, fault, answer, record.

For tests and demos only. `Engine.handle` takes a parsed request and returns the bytes to send.
The answer text is a pure function of the received pixels and the prompt; whether the request
meets a fault is a pure function of (seed, image sha256, task, n); see faults.py.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from . import catalog, protocols, quotas, styles
from .boxes import Context
from .faults import (
    RateWindow,
    Script,
    SimConfig,
    latency,
    malform,
    pick_fault,
    retry_after_header,
    truncate,
)
from .faults import unit as _unit
from .protocols import ChatRequest
from .tasks import answer, detect_task
from .vision import Analysis, analyse_bytes, sha256_hex

IMAGE_TOKENS = 258  # what one image costs in prompt tokens, whatever its size
_NO_IMAGE = sha256_hex(b"")


@dataclass
class RequestRecord:
    """What the simulator saw and did for one request."""

    index: int
    protocol: str
    model: str
    task: str
    image_sha256: str | None
    # The size the model saw: after the EXIF orientation and the model's resize (frames.py).
    image_size: tuple[int, int] | None
    # "ok", a fault kind, "unauthorized", "unknown_model", "rpm_limited", "bad_request",
    # "not_found", "sim_error"
    outcome: str
    status: int  # HTTP status sent; 0 when the connection was dropped (server stopped)
    media_resolution: str | None = None
    key_ok: bool = True
    key_sent: bool = False
    n: int = 0
    latency: float = 0.0
    time: float = field(default_factory=time.time)
    received_size: tuple[int, int] | None = None  # the decoded image as received
    orientation: int | None = None  # the EXIF Orientation value found in it, None without one
    answer_style: str = "plain"  # SimConfig.answer_style when the request came (styles.py)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["image_size"] = list(self.image_size) if self.image_size else None
        data["received_size"] = list(self.received_size) if self.received_size else None
        return data


@dataclass
class Reply:
    """Bytes to send back: status, headers, body. `drop` closes the connection unanswered."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    drop: bool = False


def error_reply(protocol: str, status: int, message: str,
                headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, protocols.dumps(protocols.error_body(protocol, status, message)),
                 headers or {})


def _fence(text: str) -> str:
    return f"```json\n{text}\n```"


class Engine:
    """Counters, records, script, rate window and the answering of parsed requests."""

    def __init__(self, config: SimConfig, stopping: threading.Event) -> None:
        self.config = config
        self.script = Script()
        self._view = config.view()
        self._stopping = stopping
        self._rpm = RateWindow(config.rpm, config.rpm_window)
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._records: list[RequestRecord] = []

    # --- bookkeeping ------------------------------------------------------------------------

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return [replace(r) for r in self._records]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._records.clear()
        self._rpm.reset()

    def record(self, **fields: Any) -> RequestRecord:
        fields.setdefault("answer_style", self.config.answer_style)
        with self._lock:
            rec = RequestRecord(index=len(self._records), **fields)
            self._records.append(rec)
            return rec

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts = [{"image_sha256": sha, "task": task, "count": count}
                      for (sha, task), count in sorted(self._counts.items())]
            records = [r.to_dict() for r in self._records]
        outcomes = Counter(r["outcome"] for r in records)
        return {"total": len(records), "counts": counts, "outcomes": dict(outcomes),
                "requests": records, "pending_script": self.script.pending()}

    # --- answering --------------------------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False if the server began stopping meanwhile."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    def handle(self, request: ChatRequest, key_ok: bool, key_sent: bool) -> Reply:
        cfg = self.config
        proto = request.protocol
        base: dict[str, Any] = {"protocol": proto, "model": request.model,
                                "media_resolution": request.media_resolution,
                                "key_ok": key_ok, "key_sent": key_sent}
        if request.image is not None:
            sha = sha256_hex(request.image)
            try:
                analysis = analyse_bytes(request.image, sha, self._view)
            except ValueError as exc:
                task = detect_task(request.prompt)
                self.record(task=task, image_sha256=sha, image_size=None, outcome="bad_request",
                            status=400, **base)
                return error_reply(proto, 400, f"Unable to process input image: {exc}")
            size: tuple[int, int] | None = (analysis.width, analysis.height)
            base.update(received_size=analysis.received_size, orientation=analysis.orientation)
        else:
            sha, size = _NO_IMAGE, None
            analysis = Analysis(sha, 1000, 1000, ())
        task = detect_task(request.prompt)
        with self._lock:
            n = self._counts[(sha, task)]
            self._counts[(sha, task)] += 1
        rec = self.record(task=task, image_sha256=sha if size else None, image_size=size,
                          outcome="ok", status=200, n=n, **base)
        if not key_ok:
            rec.outcome, rec.status = "unauthorized", 401
            return error_reply(proto, 401, "API key not valid. Please pass a valid API key.")
        if not catalog.serves(cfg.served_models, proto, request.model):
            rec.outcome, rec.status = "unknown_model", 404
            return Reply(404, protocols.dumps(
                catalog.unknown_model(proto, request.model, request.api_version)))
        wait = self._rpm.acquire()
        if wait is not None:
            rec.outcome, rec.status = "rpm_limited", 429
            return error_reply(proto, 429, "Rate limit reached for requests per minute.",
                               {"Retry-After": retry_after_header(wait)})
        outcome = self.script.take(task) or pick_fault(cfg.seed, sha, task, n, cfg.faults)
        rec.outcome = outcome
        rec.latency = latency(cfg.seed, sha, task, n, cfg.latency_mean, cfg.latency_jitter)
        if not self._wait(rec.latency) or (outcome == "hang" and not self._wait(cfg.hang_seconds)):
            rec.status = 0
            return Reply(0, drop=True)
        reply = self._reply(request, outcome, task, analysis, n)
        rec.status = reply.status
        return reply

    def _reply(self, request: ChatRequest, outcome: str, task: str, analysis: Analysis,
               n: int) -> Reply:
        cfg = self.config
        proto = request.protocol
        sha = analysis.sha256
        if outcome == "rate_limit":
            return error_reply(proto, 429, "Resource has been exhausted (e.g. check quota).",
                               {"Retry-After": retry_after_header(cfg.retry_after)})
        if outcome in quotas.QUOTA_KINDS:
            if proto == "gemini":
                body = quotas.gemini_quota(outcome, request.model, cfg.quota_retry_delay)
                return Reply(429, protocols.dumps(body))
            body, headers = quotas.openai_quota(outcome, request.model, cfg.quota_retry_delay)
            return Reply(429, protocols.dumps(body), headers)
        if outcome == "server_error":
            return error_reply(proto, 500, "An internal error has occurred. Please retry.")
        if outcome == "bad_body":
            return Reply(200, b"<html><body><h1>502 Bad Gateway</h1>upstream sent junk</body>",
                         content_type="application/json")
        prompt_tokens = len(request.prompt.split()) + (IMAGE_TOKENS if request.image else 0)
        request_id = f"{sha[:12]}{n:04d}{int(_unit('id', cfg.seed, sha, task, n) * 1e6):06d}"
        if outcome == "blocked":
            return self._render(request, None, "blocked", prompt_tokens, request_id)
        ctx = Context(analysis, cfg.convention(proto), cfg.seed, cfg.group_noise, cfg.extra_box)
        text = styles.restyle(cfg.answer_style, task, answer(task, request.prompt, ctx),
                              cfg.seed, sha)
        if (cfg.fences and text.lstrip().startswith(("{", "["))
                and _unit("fence", cfg.seed, sha, task, n) < cfg.fences):
            text = _fence(text)
        finish = "stop"
        if outcome == "malformed":
            text = malform(text, cfg.seed, sha, task, n)
        elif outcome == "truncated":
            text, finish = truncate(text), "length"
        if request.max_tokens is not None and math.ceil(len(text) / 4) > request.max_tokens:
            text, finish = text[: max(0, request.max_tokens) * 4], "length"
        return self._render(request, text, finish, prompt_tokens, request_id, task)

    def _render(self, request: ChatRequest, text: str | None, finish: str, prompt_tokens: int,
                request_id: str, task: str = "unknown") -> Reply:
        style = self.config.answer_style if text is not None else "plain"
        answer_tokens = max(1, math.ceil(len(text) / 4)) if text is not None else 0
        budget = request.max_tokens if style == "reasoning_cut" else None
        if style in ("reasoning_only", "reasoning_cut"):
            answer_tokens = 0  # no answer text: every token went to the thinking, counted below
        if request.protocol == "gemini":
            parts, finish, thought = styles.gemini_parts(style, task, text or "", finish)
            thoughts = _tokens(thought, budget) if thought else (answer_tokens // 2 if text else 0)
            reason = {"stop": "STOP", "length": "MAX_TOKENS", "blocked": "SAFETY"}[finish]
            version = request.model or self.config.model_version
            body = protocols.gemini_reply(version, text, reason, prompt_tokens, answer_tokens,
                                          thoughts, request_id,
                                          None if text is None else parts)
        else:
            message, finish, thought = styles.openai_message(style, task, text or "", finish)
            completion = answer_tokens + (_tokens(thought, budget) if thought else 0)
            reason = {"stop": "stop", "length": "length", "blocked": "content_filter"}[finish]
            body = protocols.openai_reply(request_id, request.model, text, reason, prompt_tokens,
                                          completion, None if text is None else message)
        return Reply(200, protocols.dumps(body))


def _tokens(thought: str, budget: int | None) -> int:
    """Tokens spent thinking: the whole `budget` when thinking ran out of it."""
    if budget is not None:
        return max(1, budget)
    return max(1, math.ceil(len(thought) / 4))
