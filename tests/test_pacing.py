"""Pacing: evenly spaced starts at the rpm limit, halving on 429, recovering additively."""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from dataclasses import dataclass, field

import pytest
from support import backend_overrides

from auto_label import generate
from auto_label.pipelines.engine.pacing import MARGIN, Pacer
from auto_label.sim import write_grounding_dataset
from auto_label.sim.faults import RateWindow
from auto_label.spec_loader import load_spec

MIN_SAMPLES = 20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_start_evenly_at_the_pace():
    clock = Clock()
    pacer = Pacer(1200, clock=clock)
    starts = [pacer.reserve() for _ in range(6)]  # six workers asking at once
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([60 / (1200 * MARGIN)] * 5)
    assert starts[0] == clock.now


def test_workflow_rpm_is_paced_just_under_it():
    assert Pacer(600).rpm == pytest.approx(600 * MARGIN)


def test_a_run_of_429s_with_nothing_accepted_halves_the_pace_once_and_successes_recover_it():
    clock = Clock()
    pacer = Pacer(600, clock=clock)
    pace = pacer.rpm
    for _ in range(5):  # a quarter of the last 20 answers, and no answer to measure a limit by
        pacer.feedback(True)
    assert pacer.rpm == pytest.approx(pace / 2) and pacer.decreases == 1
    for _ in range(5):  # the same overload, within the cooldown
        pacer.feedback(True)
    assert pacer.decreases == 1
    clock.now += 3
    for _ in range(5):
        pacer.feedback(True)
    assert pacer.rpm == pytest.approx(pace / 4) and pacer.decreases == 2
    for _ in range(100):
        pacer.feedback(False)
    assert pacer.rpm == pace  # back up to the configured pace, not beyond


def test_a_run_of_429s_after_answers_measures_the_limit():
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    stop = threading.Event()
    for _ in range(300):  # 300 answers in 3 s, then the endpoint asks to wait 57 s
        assert pacer.acquire(stop)
        pacer.feedback(False)
        clock.now += 0.01
    for _ in range(5):
        pacer.feedback(True)
        pacer.pause(57)
    assert pacer.limit == pytest.approx(300, rel=0.02)  # 300 in 3 + 57 s: 300 a minute
    assert pacer.rpm == pytest.approx(300 * MARGIN, rel=0.02)


def test_sporadic_429s_do_not_throttle_the_run():
    clock = Clock()
    pacer = Pacer(600, clock=clock)
    for i in range(1000):  # one answer in ten is a 429, spread out
        pacer.feedback(i % 10 == 0)
        clock.now += 0.1
    assert pacer.decreases == 0 and pacer.rpm == pytest.approx(600 * MARGIN)


def test_without_a_limit_pacing_starts_at_half_the_observed_rate_and_switches_off_again():
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    stop = threading.Event()
    for _ in range(MIN_SAMPLES):
        assert pacer.acquire(stop)
        clock.now += 0.1  # 10 requests per second
    for _ in range(5):
        pacer.feedback(True)
    assert pacer.rpm == pytest.approx(300, rel=0.15)  # half of 600 per minute
    for _ in range(200):
        pacer.feedback(False)
    assert pacer.rpm is None


def test_acquire_gives_up_when_the_run_stops():
    pacer = Pacer(1)
    stop = threading.Event()
    assert pacer.acquire(stop)
    stop.set()
    assert not pacer.acquire(stop)  # would otherwise wait a minute


@pytest.mark.parametrize("rpm", [None, 600])
def test_a_run_against_a_rate_limited_endpoint(tmp_path, make_sim, rpm):
    # The endpoint allows 20 requests per 2 s (600 per minute).
    sim = make_sim(rpm=20, rpm_window=2.0, retry_after=0.2)
    data = write_grounding_dataset(tmp_path / "data", 20, seed=61)
    extra = [f"image_grounding.workflow.rpm={rpm}"] if rpm else []
    spec = load_spec(None, [
        f"results_dir={tmp_path / 'out'}", "autolabel_type=image_grounding",
        *backend_overrides("image_grounding", "openai", sim),
        f"image_grounding.data.input_jsonl={data.input_path}",
        f"image_grounding.data.image_root={data.root}",
        "image_grounding.workflow.max_workers=8",
        "image_grounding.workflow.retries.max_attempts=20",
        "image_grounding.workflow.retries.backoff_base=0.05",
        *extra,
    ])
    summary = generate(spec)
    assert summary.complete
    limited = sum(1 for r in sim.requests() if r.status == 429)
    if rpm:
        assert limited <= 3  # paced at the limit: hardly ever refused
    else:
        assert limited < summary.requests // 2  # backs off instead of hammering


# -- a run against a rate-limited endpoint, on a fake clock -----------------------------------


class TokenBucket:
    """A limit that refills continuously (`per_minute`, bursts of a second's worth)."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.at = 0.0

    def acquire(self, now: float) -> float | None:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


@dataclass
class Timeline:
    accepted: list[float] = field(default_factory=list)
    limited: list[float] = field(default_factory=list)

    def accepted_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.accepted if start <= t < end)


def run_paced(pacer: Pacer, clock: Clock, endpoint, *, workers: int = 16, latency: float = 0.1,
              seconds: float = 300.0, seed: int = 0) -> Timeline:
    """`workers` workers send requests through `pacer` to `endpoint` (acquire(now) -> None, or
    the seconds until a slot frees: a 429 with that Retry-After) for `seconds` of fake time, as
    the executor does: a 429 tells the pacer (feedback, then pause for the Retry-After) and its
    request waits at least that long before asking again. Arrivals jitter by up to 5 ms."""
    rng = random.Random(seed)
    start = clock.now
    timeline = Timeline()
    order = itertools.count()
    queue: list[tuple[float, int, str, float | None]] = []
    for _ in range(workers):
        heapq.heappush(queue, (start, next(order), "ask", None))
    while queue:
        at, _, kind, wait = heapq.heappop(queue)
        if at >= start + seconds:
            break
        clock.now = at
        if kind == "ask":
            heapq.heappush(queue, (pacer.reserve(), next(order), "send", None))
        elif kind == "send":
            arrival = at + rng.uniform(0, 0.005)
            wait = endpoint.acquire(arrival)
            (timeline.limited if wait is not None else timeline.accepted).append(arrival - start)
            heapq.heappush(queue, (at + latency * rng.uniform(0.5, 1.5), next(order), "answer",
                                   wait))
        else:
            pacer.feedback(wait is not None)
            if wait is not None:
                pacer.pause(wait)
            retry = max(wait or 0.0, rng.uniform(0, 1.0) if wait is not None else 0.0)
            heapq.heappush(queue, (at + retry, next(order), "ask", None))
    return timeline


@pytest.mark.parametrize("workers", [4, 16, 64])
@pytest.mark.parametrize("setting", [None, 600, 1200])
def test_a_run_settles_just_under_a_per_minute_limit_with_429s_only_at_the_start(workers,
                                                                                 setting):
    # 600 requests in any sliding minute, as the simulator (and a provider) limits them;
    # workflow.rpm unset, set to the limit, or set too high
    clock = Clock()
    timeline = run_paced(Pacer(setting, clock=clock), clock, RateWindow(600, 60.0),
                         workers=workers)
    assert len(timeline.accepted) >= 0.95 * 5 * 600
    assert all(t < 60 for t in timeline.limited), sorted(timeline.limited)[-5:]
    if setting == 600:
        assert not timeline.limited  # told the limit: never refused
    for minute in range(1, 5):  # settled: every later minute near the limit
        assert timeline.accepted_between(60 * minute, 60 * (minute + 1)) >= 0.95 * 600


@pytest.mark.parametrize("workers", [4, 16, 64])
def test_a_limit_that_refills_continuously_is_found_within_a_minute_or_so(workers):
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    timeline = run_paced(pacer, clock, TokenBucket(600), workers=workers)
    assert len(timeline.accepted) >= 0.95 * 5 * 600
    assert len([t for t in timeline.limited if t >= 90]) <= 3  # a probe, now and then


@pytest.mark.parametrize("rate", [0.05, 0.1])
def test_sporadic_429s_do_not_slow_the_pace(rate):
    class Sporadic:  # an overloaded server: a few 429s, whatever the pace
        def __init__(self) -> None:
            self.rng = random.Random(5)

        def acquire(self, now: float) -> float | None:
            return 1.0 if self.rng.random() < rate else None

    clock = Clock()
    pacer = Pacer(None, clock=clock)
    timeline = run_paced(pacer, clock, Sporadic(), workers=32, seconds=120)
    assert len(timeline.limited) > 100
    assert pacer.rpm is None and pacer.decreases == 0


def test_a_limit_that_drops_mid_run_brings_the_pace_down_to_it():
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    window = RateWindow(600, 60.0)
    run_paced(pacer, clock, window, seconds=180)
    window._limit = 300  # the provider halves the limit (a full window: 429s with short waits)
    timeline = run_paced(pacer, clock, window, seconds=300)
    assert pacer.rpm is not None and pacer.rpm <= 1.05 * 300
    assert timeline.accepted_between(60, 300) >= 0.95 * 4 * 300
    late = [t for t in timeline.limited if t >= 60]
    assert len(late) <= 0.05 * timeline.accepted_between(60, 300)
