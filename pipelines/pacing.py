"""Pacing request starts: a requests-per-minute limit that backs off on 429 and recovers (AIMD).

Requests start evenly spaced at the current pace rather than in bursts. A 429 halves the pace
(multiplicative decrease, at most once per second, since one burst brings several 429s at once);
each request that is not rate limited raises it by one request per minute (additive increase), up
to `workflow.rpm`. Without `workflow.rpm` requests are not paced until the first 429; the pace then
starts from half the rate observed over the last seconds, and pacing switches off again once the
pace has climbed back to twice that rate. So a long run settles just under the provider's limit
instead of hammering it. Until a few requests have been seen (MIN_SAMPLES in the last WINDOW
seconds) there is no rate to halve, and a 429 is left to the retry's Retry-After alone.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MIN_RPM = 1.0
WINDOW = 10.0
MIN_SAMPLES = 10


class Pacer:
    def __init__(self, rpm: int | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = float(rpm) if rpm else None
        self.rpm: float | None = self.ceiling
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0
        self._last_decrease = -1e9
        self._release_at: float | None = None
        self._starts: deque[float] = deque()
        self.decreases = 0

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for this request's start slot; False if the run stops meanwhile."""
        with self._lock:
            now = self._clock()
            self._starts.append(now)
            while self._starts and self._starts[0] < now - WINDOW:
                self._starts.popleft()
            if self.rpm is None:
                return not stop.is_set()
            start = max(now, self._next)
            self._next = start + 60.0 / self.rpm
        delay = start - now
        return not stop.wait(delay) if delay > 0 else not stop.is_set()

    def feedback(self, rate_limited: bool) -> None:
        with self._lock:
            now = self._clock()
            if rate_limited:
                if now - self._last_decrease < 1.0:
                    return
                if self.rpm is None:
                    if len(self._starts) < MIN_SAMPLES:
                        return
                    span = max(now - self._starts[0], 1.0)
                    observed = 60.0 * len(self._starts) / span
                    self._release_at = 2 * observed
                    self.rpm = observed
                self._last_decrease = now
                self.decreases += 1
                self.rpm = max(MIN_RPM, self.rpm / 2)
                return
            if self.rpm is None:
                return
            self.rpm += 1.0
            if self.ceiling is not None:
                self.rpm = min(self.rpm, self.ceiling)
            elif self._release_at is not None and self.rpm >= self._release_at:
                self.rpm = None  # recovered: unpaced again
                self._release_at = None
