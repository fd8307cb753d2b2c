"""Pacing request starts: a requests-per-minute limit that backs off on 429s and recovers (AIMD),
and pauses the whole pool when the endpoint says how long to wait.

Requests start evenly spaced at the current pace rather than in bursts. When 429s make up a
quarter or more of the last LAST answers, the pace halves (multiplicative decrease, then a
cooldown so that one overload counts once); every answer that is not a 429 raises the pace by 2%
(at least one request per minute), up to `workflow.rpm`. A provider's limit shows as a run of 429s
once requests go past it, so the pace settles just under it; a sporadic 429 from an overloaded
server is left to the retry's Retry-After alone and does not throttle a whole run.

Without `workflow.rpm` requests are not paced until 429s pile up; the pace then starts from half
the rate seen over the last WINDOW seconds, and pacing switches off again once the pace has
climbed back to twice that.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MIN_RPM = 1.0
WINDOW = 10.0
LAST = 20
TRIGGER = 0.25
COOLDOWN = 2.0
STEP = 0.02


class Pacer:
    def __init__(self, rpm: int | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = float(rpm) if rpm else None
        self.rpm: float | None = self.ceiling
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0
        self._cooldown_until = -1e9
        self._release_at: float | None = None
        self._paused_until = -1e9
        self._starts: deque[float] = deque()
        self._answers: deque[bool] = deque(maxlen=LAST)
        self.decreases = 0

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for this request's start slot; False if the run stops meanwhile."""
        with self._lock:
            now = self._clock()
            self._starts.append(now)
            while self._starts and self._starts[0] < now - WINDOW:
                self._starts.popleft()
            start = max(now, self._paused_until)
            if self.rpm is not None:
                start = max(start, self._next)
                self._next = start + 60.0 / self.rpm
        delay = start - now
        return not stop.wait(delay) if delay > 0 else not stop.is_set()

    def pause(self, seconds: float) -> None:
        """Start no request for `seconds`: the endpoint told us to wait (Retry-After, RetryInfo,
        rate-limit reset headers), and the wait holds for the whole pool, not one request."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    @property
    def waiting(self) -> float:
        """Seconds until requests may start again (0 when not paused)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def feedback(self, rate_limited: bool) -> None:
        with self._lock:
            self._answers.append(rate_limited)
            now = self._clock()
            if rate_limited:
                limited = sum(self._answers)
                if limited < TRIGGER * LAST or now < self._cooldown_until:
                    return
                if self.rpm is None:
                    span = max(now - self._starts[0], 1.0) if self._starts else WINDOW
                    observed = 60.0 * len(self._starts) / span
                    self._release_at = 2 * observed
                    self.rpm = observed
                self.rpm = max(MIN_RPM, self.rpm / 2)
                self.decreases += 1
                self._cooldown_until = now + max(COOLDOWN, 2 * 60.0 / self.rpm)
                self._answers.clear()
                return
            if self.rpm is None:
                return
            self.rpm += max(1.0, self.rpm * STEP)
            if self.ceiling is not None:
                self.rpm = min(self.rpm, self.ceiling)
            elif self._release_at is not None and self.rpm >= self._release_at:
                self.rpm = None  # recovered: unpaced again
                self._release_at = None
