"""Pacing request starts: a requests-per-minute limit measured from 429s, and a pause of the whole
pool when the endpoint's 429s say how long to wait.

Requests start evenly spaced at the current pace rather than in bursts. The endpoint's limit
shows as 429s that pile up (a quarter or more of the last LAST answers and of the last minute's)
or as one 429 asking for a long wait (LONG_WAIT or more, as a per-minute window does once it is
full). The pacer then measures the limit: the answers accepted over the last minute (or since
they began), spread over that span plus the wait asked for, is what the endpoint lets through
per minute. The pace becomes MARGIN of it, so that the jitter of arrivals does not cross it
again, and a cooldown makes one overload count once. With too few answers accepted to measure,
the pace halves instead. A limit measured over less than a minute (a limit that refills
continuously lets a first burst through) is measured again by the first 429 after a minute.

`workflow.rpm`, a provider's limit, is paced at MARGIN of it for the same reason. Every answer
that is not a 429 brings the pace back up by 2% (at least one request per minute) to the pace
known to be safe; above a measured limit it only probes, 1% per PROBE seconds without a 429,
and the first 429 above it sends the pace back. So a run settles just under a provider's limit,
meets 429s only while it finds it, and recovers from a transient overload. A sporadic 429
does not slow the pace (its Retry-After still pauses the pool).

Without `workflow.rpm` requests are not paced until the limit shows.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MIN_RPM = 1.0
WINDOW = 10.0
"""seconds of request starts the rate sent is measured over (to halve it)"""
LAST = 20
TRIGGER = 0.25
COOLDOWN = 2.0
STEP = 0.02
MINUTE = 60.0
MIN_ACCEPTED = 10
"""accepted answers needed to measure a limit"""
MARGIN = 0.97
"""the pace, as a fraction of the limit"""
PROBE = 120.0
PROBE_STEP = 0.01
LONG_WAIT = 10.0
"""seconds: a 429 asking for a wait this long is a limit's (an overload asks for a second or
two)"""


class Pacer:
    """Paces request starts (`acquire`) from how the requests went (`feedback`, `pause`).

    `ceiling` is the fastest pace `workflow.rpm` allows, MARGIN of it (None: no setting),
    `rpm` the current pace (None: unpaced), `limit` the endpoint's limit as last measured and
    `decreases` the times the limit slowed the pace (all requests per minute). `clock` is
    monotonic seconds (tests pass a fake one).
    """

    def __init__(self, rpm: int | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = MARGIN * rpm if rpm else None
        self.rpm: float | None = self.ceiling
        self.limit: float | None = None
        self.decreases = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0
        self._paused_until = -1e9
        self._cooldown_until = -1e9
        self._calm_since = -1e9
        self._provisional = False
        """the limit was measured over less than a minute"""
        self._late = 0.0
        """what each answer accepted during the cooldown adds to the limit (0: nothing)"""
        self._starts: deque[float] = deque()
        self._accepted: deque[float] = deque()
        self._refused: deque[float] = deque()
        self._answers: deque[bool] = deque(maxlen=LAST)

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for this request's start slot; False if the run stops meanwhile."""
        delay = self.reserve() - self._clock()
        return not stop.wait(delay) if delay > 0 else not stop.is_set()

    def reserve(self) -> float:
        """Take the next start slot: the clock time at which this request may start."""
        with self._lock:
            now = self._clock()
            self._starts.append(now)
            _forget(self._starts, now - WINDOW)
            start = max(now, self._paused_until)
            if self.rpm is not None:
                start = max(start, self._next)
                self._next = start + MINUTE / self.rpm
            return start

    def pause(self, seconds: float) -> None:
        """Start no request for `seconds`: a 429 asked to wait (Retry-After, RetryInfo,
        rate-limit reset headers), and the wait holds for the whole pool, not one request. A
        long one (LONG_WAIT or more) is a limit's: it is measured at once, however few requests
        were in flight to see it."""
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + seconds)
            if seconds >= LONG_WAIT and now >= self._cooldown_until:
                # a Retry-After in whole seconds was rounded up: by half a second, on average
                window = seconds - 0.5 if float(seconds).is_integer() else seconds
                measured = self._measure(now, window, full=True)
                if measured is not None and (self.rpm is None or MARGIN * measured < self.rpm):
                    self._slow(now, measured)

    @property
    def waiting(self) -> float:
        """Seconds until requests may start again (0 when not paused)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def feedback(self, rate_limited: bool) -> None:
        """How the last request went: True for a 429."""
        with self._lock:
            now = self._clock()
            if rate_limited:
                self._limited(now)
            else:
                self._answered(now)

    def _target(self) -> float | None:
        """The pace known to be safe: the ceiling, or MARGIN of the limit measured."""
        known = [x for x in (self.ceiling, MARGIN * self.limit if self.limit else None) if x]
        return min(known) if known else None

    def _answered(self, now: float) -> None:
        self._answers.append(False)
        self._accepted.append(now)
        _forget(self._accepted, now - MINUTE)
        if self._late and now < self._cooldown_until and self.limit is not None:
            # accepted before the window filled, answered since: it counts in the limit
            self.limit += self._late
            if self.rpm is not None:
                self.rpm = min(self.rpm + MARGIN * self._late, self.ceiling or float("inf"))
            return
        if self.rpm is None:
            return
        target = self._target()
        if target is None:  # slowed by an overload that measured no limit
            self.rpm += max(1.0, self.rpm * STEP)
            if self.rpm > 2 * self._sent(now):
                self.rpm = None  # recovered: unpaced again
        elif self.rpm < target:  # back up to the pace known to be safe
            self.rpm = min(target, self.rpm + max(1.0, self.rpm * STEP))
            self._calm_since = now
        elif (self.ceiling is None or self.rpm < self.ceiling) \
                and now - self._calm_since >= PROBE:
            self.rpm *= 1 + PROBE_STEP  # calm for a while: probe a little above it
            self.rpm = min(self.rpm, self.ceiling or self.rpm)
            self._calm_since = now

    def _limited(self, now: float) -> None:
        if now < self._cooldown_until:
            return  # the same overload, already counted
        self._calm_since = now
        self._answers.append(True)
        self._refused.append(now)
        _forget(self._refused, now - MINUTE)
        target = self._target()
        if self.rpm is not None and self.limit is not None and target is not None \
                and self.rpm > target:
            self.rpm = target  # a probe above the limit measured: back under it
        elif self._piling(now) or (self._provisional and self._minute_seen(now)):
            self._slow(now, self._measure(now))

    def _piling(self, now: float) -> bool:
        """429s make up TRIGGER or more of the last LAST answers and of the last minute's."""
        if sum(self._answers) < TRIGGER * LAST:
            return False
        _forget(self._accepted, now - MINUTE)
        _forget(self._refused, now - MINUTE)
        return len(self._refused) >= TRIGGER * (len(self._refused) + len(self._accepted))

    def _minute_seen(self, now: float) -> bool:
        return bool(self._accepted) and now - self._accepted[0] >= MINUTE - 1.0

    def _slow(self, now: float, measured: float | None) -> None:
        """Slow to MARGIN of the limit `measured`, or (None: too few answers to measure one)
        to half the pace; then a cooldown, so that one overload counts once."""
        if measured is not None:
            self.limit = measured
            pace = MARGIN * measured
            self.rpm = pace if self.rpm is None else min(self.rpm, pace)
        else:
            self.rpm = (self.rpm or self._sent(now)) / 2
        self.rpm = max(MIN_RPM, self.rpm)
        self.decreases += 1
        self._cooldown_until = now + max(COOLDOWN, 2 * MINUTE / self.rpm)
        self._answers.clear()

    def _measure(self, now: float, wait: float | None = None, *,
                 full: bool = False) -> float | None:
        """Requests per minute the endpoint lets through: the answers accepted over the last
        minute (or since they began), over that span plus the wait it asked for (default: the
        pause in force). None with fewer than MIN_ACCEPTED answers. `full`: the long wait of a
        full window, so that answers accepted before it filled and received since count too."""
        _forget(self._accepted, now - MINUTE)
        if len(self._accepted) < MIN_ACCEPTED:
            return None
        if wait is None:
            wait = max(0.0, self._paused_until - now)
        span = max(min(MINUTE, now - self._accepted[0]) + wait, 1e-3)
        self._provisional = span < MINUTE - 1.0
        self._late = MINUTE / span if full else 0.0
        return MINUTE * len(self._accepted) / span

    def _sent(self, now: float) -> float:
        """Requests per minute started over the last WINDOW seconds."""
        _forget(self._starts, now - WINDOW)
        if not self._starts:
            return MIN_RPM
        return MINUTE * len(self._starts) / max(now - self._starts[0], 1.0)


def _forget(times: deque[float], before: float) -> None:
    while times and times[0] < before:
        times.popleft()
