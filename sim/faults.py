"""Configuration, latency, faults and rate limits of the VLM SIMULATOR (for tests and demos).

`SimConfig` says how the simulated model behaves. Whether a request meets a fault is a pure
function of (seed, sha256 of the received image, task, n), n being how many requests for that
(image, task) the server received before. So a rerun of the same workload meets the same faults,
and a retry of a failed request draws anew. Tests can also queue forced outcomes with `Script`,
consumed before the random draw.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from .boxes import check_convention
from .frames import View

FAULT_KINDS: tuple[str, ...] = (
    "rate_limit",  # HTTP 429 with Retry-After
    "server_error",  # HTTP 500
    "hang",  # no answer for hang_seconds (meant to exceed the client's timeout)
    "malformed",  # 200 with junk content: prose or broken JSON
    "truncated",  # 200 with the answer cut at about half, finish reason length / MAX_TOKENS
    "bad_body",  # 200 with a body that is not JSON
    "blocked",  # safety block: Gemini finishReason SAFETY, OpenAI content_filter
    # Appended last so that the draws of the kinds above stay as they were (pick_fault).
    "quota_minute",  # 429: a per-minute quota; the wait in RetryInfo / x-ratelimit-reset-*
    "quota_day",  # 429: a per-day quota (Gemini) or no credit left (OpenAI insufficient_quota)
)

# Shapes of the answers of real servers and models (styles.py has each one's source).
ANSWER_STYLES: tuple[str, ...] = (
    "plain", "content_parts", "reasoning_only", "reasoning_cut", "python_literal",
    "gemini_native", "label_variants", "explicit_empty",
)

OUTCOMES: tuple[str, ...] = ("ok", *FAULT_KINDS)


@dataclass
class SimConfig:
    """How the simulated VLM behaves. Everything random is a pure function of `seed`.

    `faults` maps a kind of FAULT_KINDS to the rate at which requests meet it (the rates add up
    to at most 1). `rpm` limits requests per `rpm_window` seconds (sliding window; 429 with the
    seconds until a slot frees). With `api_key` set, OpenAI requests need
    `Authorization: Bearer <key>` and Gemini requests `x-goog-api-key: <key>`, else 401.
    `group_noise` and `extra_box` are the rates at which a referring.group line gets one box of
    another object, or a box of no object. `fences` is the rate at which JSON answers come
    wrapped in a markdown code fence, as some real models do.

    What the model sees of a received image (frames.py, with the sources): `exif="apply"`
    transposes it by its EXIF Orientation tag first, as vLLM and transformers do ("ignore": the
    stored pixels, as servers that skip it); `model_frame="qwen2.5_smart_resize"` then resizes it
    as Qwen2.5-VL's processor does (`smart_resize` with `resize_factor`, `min_pixels`,
    `max_pixels`; the defaults are Qwen2.5-VL's preprocessor_config.json), so pixel boxes come
    back in that frame, while "sent" analyses it at the size it came in.

    Real endpoints (catalog.py, quotas.py, styles.py, with the sources): `served_models` (empty:
    any name) are the models the server serves; `GET /v1/models` lists them and a request for
    another gets vLLM's or Google's 404. The faults "quota_minute" and "quota_day" answer 429
    as Gemini and OpenAI do when a quota is spent, the per-minute wait being
    `quota_retry_delay` seconds (in Gemini's RetryInfo, in OpenAI's x-ratelimit-reset-requests;
    never a Retry-After header); a rate of 1.0 makes every request meet one. `answer_style`
    (one of ANSWER_STYLES, default "plain") gives answers the shape of a kind of real server or
    model: content parts, reasoning fields, Python literals, Gemini's native detections...

    Batch jobs (batch_store.py, with the sources): a job stays pending, then running, for
    `batch_delay` seconds after it is created, then ends; `batch_expire` is the rate of jobs
    that expire at that moment instead of completing, `batch_errors` the rate of requests
    inside a job answered with an error.
    """

    seed: int = 0
    convention_openai: str = "xyxy_pixel"
    convention_gemini: str = "yxyx_1000"
    latency_mean: float = 0.0
    latency_jitter: float = 0.0
    faults: dict[str, float] = field(default_factory=dict)
    retry_after: float = 1.0
    hang_seconds: float = 30.0
    rpm: int | None = None
    rpm_window: float = 60.0
    api_key: str | None = None
    group_noise: float = 0.0
    extra_box: float = 0.0
    fences: float = 0.0
    model_version: str = "sim-vlm-1"
    exif: Literal["apply", "ignore"] = "apply"
    model_frame: Literal["sent", "qwen2.5_smart_resize"] = "sent"
    min_pixels: int = 3136
    max_pixels: int = 12845056
    resize_factor: int = 28
    served_models: tuple[str, ...] = ()
    answer_style: str = "plain"
    quota_retry_delay: float = 3.0
    batch_delay: float = 0.0
    batch_expire: float = 0.0
    batch_errors: float = 0.0

    def __post_init__(self) -> None:
        self.served_models = tuple(self.served_models)
        if self.answer_style not in ANSWER_STYLES:
            raise ValueError(f"unknown answer style {self.answer_style!r}; "
                             f"expected one of {ANSWER_STYLES}")
        if self.quota_retry_delay < 0:
            raise ValueError("quota_retry_delay must not be negative")
        check_convention(self.convention_openai)
        check_convention(self.convention_gemini)
        self.view()  # ValueError for an unknown exif mode or model frame, or bad pixel bounds
        unknown = set(self.faults) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; expected {FAULT_KINDS}")
        for name, rate in [*self.faults.items(), ("group_noise", self.group_noise),
                           ("extra_box", self.extra_box), ("fences", self.fences),
                           ("batch_expire", self.batch_expire),
                           ("batch_errors", self.batch_errors)]:
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate {name}={rate} is not within [0, 1]")
        if sum(self.faults.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        if self.latency_mean < 0 or self.latency_jitter < 0:
            raise ValueError("latency must not be negative")
        if self.batch_delay < 0:
            raise ValueError("batch_delay must not be negative")
        if self.rpm is not None and self.rpm < 1:
            raise ValueError("rpm must be at least 1")

    def convention(self, protocol: str) -> str:
        """The box convention the simulated model was 'trained' on for `protocol`."""
        return self.convention_gemini if protocol == "gemini" else self.convention_openai

    def view(self) -> View:
        """How received images are prepared for the model (the same for both protocols)."""
        return View(self.exif, self.model_frame, self.min_pixels, self.max_pixels,
                    self.resize_factor)


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) that depends on `parts` only."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def pick_fault(seed: int, image_sha256: str, task: str, n: int,
               rates: Mapping[str, float]) -> str:
    """"ok" or the fault kind this request meets, drawn from `rates` (kind -> probability)."""
    u = unit("fault", seed, image_sha256, task, n)
    edge = 0.0
    for kind in FAULT_KINDS:  # fixed order, so the draw does not depend on dict order
        edge += rates.get(kind, 0.0)
        if u < edge:
            return kind
    return "ok"


def latency(seed: int, image_sha256: str, task: str, n: int, mean: float, jitter: float) -> float:
    """Seconds to wait before answering: mean plus a uniform draw in [-jitter, +jitter]."""
    if mean <= 0 and jitter <= 0:
        return 0.0
    u = unit("latency", seed, image_sha256, task, n)
    return max(0.0, mean + (2 * u - 1) * jitter)


def malform(text: str, seed: int, image_sha256: str, task: str, n: int) -> str:
    """Junk in place of an answer: chatty prose, or JSON that does not parse."""
    if unit("malform", seed, image_sha256, task, n) < 0.5:
        return (
            "Sure! I looked at the image carefully. It shows a few simple shapes in different "
            "colours on a light background, and I hope this description helps you."
        )
    if text.lstrip().startswith(("{", "[")):
        return "```json\n" + text.rstrip().rstrip("}]") + ",\n  ...\n```"
    return json.dumps({"answer": text})[:-2] + ", "


def truncate(text: str) -> str:
    """The answer cut at roughly half its length, as when max tokens run out."""
    return text[: max(1, len(text) // 2)]


class Script:
    """Forced outcomes for the next matching requests (tests say what happens, in order)."""

    def __init__(self) -> None:
        self._queue: deque[tuple[str, str | None]] = deque()
        self._lock = threading.Lock()

    def push(self, outcomes: Iterable[str], task: str | None = None) -> None:
        items = list(outcomes)
        unknown = [o for o in items if o not in OUTCOMES]
        if unknown:
            raise ValueError(f"unknown outcomes {unknown}; expected some of {OUTCOMES}")
        with self._lock:
            self._queue.extend((o, task) for o in items)

    def take(self, task: str) -> str | None:
        """The first queued outcome whose task matches (None matches every task), removed."""
        with self._lock:
            for i, (outcome, wanted) in enumerate(self._queue):
                if wanted is None or wanted == task:
                    del self._queue[i]
                    return outcome
        return None

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()


class RateWindow:
    """At most `limit` accepted requests in any sliding window of `window` seconds."""

    def __init__(self, limit: int | None, window: float = 60.0) -> None:
        self._limit = limit
        self._window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self, now: float | None = None) -> float | None:
        """None when the request may go, else the seconds until a slot frees."""
        if self._limit is None:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._times and self._times[0] <= now - self._window:
                self._times.popleft()
            if len(self._times) >= self._limit:
                return max(0.001, self._times[0] + self._window - now)
            self._times.append(now)
            return None

    def reset(self) -> None:
        with self._lock:
            self._times.clear()


def retry_after_header(seconds: float) -> str:
    """A Retry-After value: whole seconds when whole, else a decimal (the SDKs parse floats)."""
    if seconds >= 1 or seconds <= 0:
        return str(max(0, math.ceil(seconds - 1e-9)))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")
