"""The live figures of a run, folded from what it records: outcomes (from the tracker) and every
committed event (the ledger writer's on_commit, through the tracker), kept under a lock and
handed out as immutable `Snapshot`s.

- In flight: a `request_sent` whose `response_received` or `attempt_failed` is not recorded yet.
- Active time: the run's time outside the pool-wide pauses (an endpoint's Retry-After holds
  every worker: the pacer's pause). A pause starts when its failed attempt is recorded and ends
  when the pacer says.
- Rate: steps finished (completed or failed) by this run over the last RATE_WINDOW seconds of
  active time (or since the start, when the run is younger), per minute. A wait neither drags the
  rate down while it lasts nor makes it swing once it is over, as a rate over the clock did (4
  steps/min, then 40, two seconds apart). Cached and skipped steps are not work: counting them made
  a resume's ETA say 3 s for 43 s of work. Unknown (None) while fewer than MIN_STEPS steps
  finished in a window shorter than RATE_WINDOW: too few to measure a rate.
- ETA: the rest of the pause in force, plus the (image, step) pairs not reached yet divided by
  that rate; unknown with the rate, at a rate of 0 and while stopping.
- Cost: each response's usage priced with `usage_cost` (thinking tokens billed once).
- Waiting: the pacer's pause, named after the failed attempt that set the wait now in force (the
  one whose wait ends last), with its time, so that a later error with a shorter wait (the last
  error line) cannot contradict it; or a stop that waits for the requests in flight.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import replace

from auto_label.backends.base import Backend
from auto_label.backends.prices import Price, usage_cost
from auto_label.ledger.events import (
    AttemptFailed,
    Event,
    RequestSent,
    ResponseReceived,
    StepCompleted,
    StepFailed,
)
from auto_label.pipelines.engine.execute import Pacer
from auto_label.pipelines.engine.options import RunOptions
from auto_label.pipelines.engine.pacing import Pacer as AdaptivePacer
from auto_label.pipelines.engine.snapshot import RunInfo, Snapshot, StepFigures, Tokens

RATE_WINDOW = 60.0
"""seconds of completions the current rate is measured over"""
MIN_SPAN = 1.0
"""seconds of active time a rate needs before it means anything"""
MIN_STEPS = 5
"""steps finished in a window shorter than RATE_WINDOW below which the rate is unknown"""
SAME_WAIT = 1.0
"""seconds by which a recorded wait's end may differ from the pacer's and still be the one in
force (the attempt is recorded within the ledger writer's interval of the pause)"""
MAX_ERROR = 300
"""characters of the last error kept"""


class Monitor:
    """Thread-safe: `outcome` (workers), `committed` (the ledger writer) and `snapshot` (a
    display's refresh thread) may be called from any thread at any time.

    `clock` measures durations (monotonic seconds), `wall` gives the unix time of snapshots and
    errors; tests pass fake ones.
    """

    def __init__(self, info: RunInfo, *, price: Price | None = None,
                 completion_includes_thinking: bool = False, pacer: Pacer | None = None,
                 stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.info = info
        self.price = price
        self.completion_includes_thinking = completion_includes_thinking
        self._pacer = pacer if isinstance(pacer, AdaptivePacer) else None
        self._stop = stop
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._started = clock()
        self._last_outcome = self._started
        self._counts: dict[str, Counter[str]] = {number: Counter() for number, _ in info.steps}
        self._finished: deque[float] = deque()
        """active time of each step finished in the last RATE_WINDOW seconds of active time"""
        self._paused = 0.0
        """seconds of the pauses that ended before `_pause_from`"""
        self._pause_from = self._pause_until = self._started
        """the latest pause (empty at first)"""
        self._sent: dict[str, str] = {}
        """request id -> step, for the requests in flight"""
        self._retrying: set[tuple[str, str]] = set()
        self._requests = 0
        self._prompt = self._answer = self._thinking = 0
        self._cost = 0.0
        self._retries: Counter[str] = Counter()
        self._wait: tuple[float, str, float, float] | None = None
        """(end, kind, unix time, seconds asked) of the attempt whose wait ends last"""
        self._last_error = ""
        self._last_error_at: float | None = None
        self._final: Snapshot | None = None

    @classmethod
    def of(cls, options: RunOptions, pipeline: str, backend: Backend, steps: list[tuple[str, str]],
           *, pacer: Pacer | None, stop: threading.Event) -> Monitor:
        """The monitor of a run of `pipeline` with `backend` on the selected `steps`."""
        info = RunInfo.of(pipeline, backend, options.workflow, options.data,
                          options.results_dir, steps, priced=options.price is not None)
        return cls(info, price=options.price, pacer=pacer, stop=stop,
                   completion_includes_thinking=backend.completion_includes_thinking)

    def begin(self, images: int) -> RunInfo:
        """The run starts on `images` images: the clock starts; returns the header to show."""
        with self._lock:
            self.info = self.info.with_images(images)
            self._started = self._last_outcome = self._clock()
            self._paused, self._pause_from = 0.0, self._started
            self._pause_until = self._started
            return self.info

    def end(self) -> Snapshot:
        """The run is over (its events committed): the last figures, which stay as they are."""
        final = replace(self.snapshot(), stopping=False, waiting="", retrying=0, pause=0.0)
        with self._lock:
            self._final = final
        return final

    def outcome(self, step: str, outcome: str) -> None:
        """An image reached `outcome` (completed, cached, failed, skipped) for `step`."""
        with self._lock:
            now = self._clock()
            self._counts.setdefault(step, Counter())[outcome] += 1
            self._last_outcome = now
            if outcome in ("completed", "failed"):
                active = self._active(now)
                self._finished.append(active)
                self._trim(active)

    def committed(self, events: Iterable[Event]) -> None:
        """Fold events the ledger stored (in the order they were stored)."""
        with self._lock:
            for event in events:
                self._fold(event)

    def _fold(self, event: Event) -> None:
        if isinstance(event, RequestSent):
            self._requests += 1
            self._sent[event.request_id] = event.step
            self._retrying.discard((event.image_id, event.step))
        elif isinstance(event, ResponseReceived):
            self._sent.pop(event.request_id, None)
            self._usage(event)
        elif isinstance(event, AttemptFailed):
            self._sent.pop(event.request_id, None)
            self._retries[event.kind] += 1
            self._retrying.add((event.image_id, event.step))
            self._error(event.kind, event.message, event.at)
            if event.retry_after_s:
                self._asked(event, event.retry_after_s)
        elif isinstance(event, StepFailed):
            self._retrying.discard((event.image_id, event.step))
            self._error(event.kind, event.message, event.at)
        elif isinstance(event, StepCompleted):
            self._retrying.discard((event.image_id, event.step))

    def _usage(self, event: ResponseReceived) -> None:
        usage = event.usage
        prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
        thinking = usage.thinking_tokens or 0
        self._prompt += prompt
        self._thinking += thinking
        self._answer += (max(0, completion - thinking) if self.completion_includes_thinking
                         else completion)
        if self.price is not None:
            self._cost += usage_cost(self.price, prompt, completion, thinking,
                                     completion_includes_thinking=self.completion_includes_thinking)

    def _error(self, kind: str, message: str, at: float) -> None:
        first = message.splitlines()[0] if message else ""
        line = first if kind in first else f"{kind}: {first}"
        self._last_error = line if len(line) <= MAX_ERROR else line[:MAX_ERROR - 3] + "..."
        self._last_error_at = at

    def _asked(self, event: AttemptFailed, seconds: float) -> None:
        """An attempt asked for a wait: the pacer pauses the pool for it (when there is one)."""
        now = self._clock()
        end = now + seconds
        if self._wait is None or end >= self._wait[0]:
            status = f" (HTTP {event.status_code})" if event.status_code else ""
            self._wait = (end, event.kind.replace("_", " ") + status, event.at, seconds)
        if self._pacer is not None:
            self._pause(now, end)

    def _pause(self, start: float, end: float) -> None:
        """The pool is paused from `start` to `end` (overlapping pauses merge)."""
        start = max(start, self._started)
        if start <= self._pause_until:
            self._pause_until = max(self._pause_until, end)
            return
        self._paused += self._pause_until - self._pause_from
        self._pause_from, self._pause_until = start, end

    def _active(self, now: float) -> float:
        """Seconds of active time (outside pauses) from the start to `now`."""
        current = max(0.0, min(now, self._pause_until) - self._pause_from)
        return max(0.0, now - self._started - self._paused - current)

    def _trim(self, active: float) -> None:
        while self._finished and self._finished[0] < active - RATE_WINDOW:
            self._finished.popleft()

    @property
    def cost(self) -> float | None:
        """USD of this run's responses so far; None when the price is unknown."""
        with self._lock:
            return None if self.price is None else self._cost

    def snapshot(self) -> Snapshot:
        """The figures now (after `end`, the last ones)."""
        if self._final is not None:
            return self._final
        pause = self._pacer.waiting if self._pacer is not None else 0.0
        pace = self._slowed()
        with self._lock:
            stopping = self._stop is not None and self._stop.is_set()
            now = self._clock()
            if pause > 0:  # the pacer knows when the pause ends, even before its attempt is in
                self._pause(now, now + pause)
            active = self._active(now)
            self._trim(active)
            elapsed = max(0.0, now - self._started)
            in_flight: Counter[str] = Counter(self._sent.values())
            steps = tuple(
                StepFigures(number, name, completed=c["completed"], cached=c["cached"],
                            failed=c["failed"], skipped=c["skipped"], in_flight=in_flight[number])
                for number, name in self.info.steps
                for c in [self._counts.get(number, Counter())])
            span, finished = min(RATE_WINDOW, active), len(self._finished)
            measured = span >= RATE_WINDOW or (span >= MIN_SPAN and finished >= MIN_STEPS)
            rate = 60.0 * finished / span if measured else None
            snap = Snapshot(
                time=self._wall(), elapsed=elapsed, images=self.info.images, steps=steps,
                requests=self._requests, in_flight=len(self._sent),
                retrying=len(self._retrying), rate=rate,
                tokens=Tokens(self._prompt, self._answer, self._thinking),
                cost=None if self.price is None else self._cost,
                retries=tuple(self._retries.most_common()), pace=pace,
                last_error=self._last_error, last_error_at=self._last_error_at,
                quiet=max(0.0, now - self._last_outcome), stopping=stopping)
            waiting = self._waiting(pause, now, snap)
        left = snap.left
        eta = (0.0 if left == 0 else None if stopping or not rate
               else pause + 60.0 * left / rate)
        return replace(snap, eta=eta, waiting=waiting, pause=pause)

    def _waiting(self, pause: float, now: float, snap: Snapshot) -> str:
        """e.g. "waiting 74 s: rate limited (HTTP 429) at 03:40:12 asked for 75 s"."""
        if snap.stopping:
            plural = "" if snap.in_flight == 1 else "s"
            return (f"stopping: finishing {snap.in_flight} request{plural} in flight"
                    if snap.in_flight else "stopping")
        if pause <= 0:
            return ""
        waiting = f"waiting {math.ceil(pause)} s"
        if self._wait is None or self._wait[0] < now + pause - SAME_WAIT:
            return f"{waiting}: the endpoint asked every request to wait"
        _, kind, at, asked = self._wait
        return (f"{waiting}: {kind} at {time.strftime('%H:%M:%S', time.localtime(at))} "
                f"asked for {asked:g} s")

    def _slowed(self) -> float | None:
        """The pace the pacer set after 429s, when below what the spec allows."""
        pacer = self._pacer
        if pacer is None or pacer.rpm is None or not pacer.decreases:
            return None
        if pacer.ceiling is not None and pacer.rpm >= pacer.ceiling:
            return None
        return pacer.rpm
