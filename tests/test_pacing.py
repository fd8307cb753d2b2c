"""Pacing: evenly spaced starts at the rpm limit, halving on 429, recovering additively."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from support import backend_overrides

from auto_label import generate
from auto_label.pipelines.engine.pacing import Pacer
from auto_label.sim import write_grounding_dataset
from auto_label.spec_loader import load_spec

MIN_SAMPLES = 20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_start_evenly_at_the_rpm_limit():
    pacer = Pacer(1200)  # one start every 50 ms
    stop = threading.Event()
    times = []
    for _ in range(6):
        assert pacer.acquire(stop)
        times.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.045 <= gap <= 0.1 for gap in gaps), gaps


def test_a_run_of_429s_halves_the_pace_once_and_successes_recover_it():
    clock = Clock()
    pacer = Pacer(600, clock=clock)
    for _ in range(5):  # a quarter of the last 20 answers
        pacer.feedback(True)
    assert pacer.rpm == 300 and pacer.decreases == 1
    for _ in range(5):  # the same overload, within the cooldown
        pacer.feedback(True)
    assert pacer.decreases == 1
    clock.now += 3
    for _ in range(5):
        pacer.feedback(True)
    assert pacer.rpm == 150 and pacer.decreases == 2
    for _ in range(100):
        pacer.feedback(False)
    assert pacer.rpm == 600  # back up to the configured limit, not beyond


def test_sporadic_429s_do_not_throttle_the_run():
    clock = Clock()
    pacer = Pacer(600, clock=clock)
    for i in range(1000):  # one answer in ten is a 429, spread out
        pacer.feedback(i % 10 == 0)
        clock.now += 0.1
    assert pacer.decreases == 0 and pacer.rpm == 600


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
