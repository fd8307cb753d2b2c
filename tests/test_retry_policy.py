"""The retry loop itself: attempts, backoff bounds, Retry-After as a floor, stopping."""

from __future__ import annotations

import threading

import pytest

from auto_label.pipelines.config import RetryConfig
from auto_label.pipelines.engine.retry import RetryableFailure, Stopped, backoff, retrying


def run(config: RetryConfig, outcomes: list[Exception | str], stop: threading.Event,
        waits: list[float]) -> tuple[str, int]:
    """Attempts that raise or return `outcomes` in turn; (the result, attempts made)."""
    made = 0
    for attempt in retrying(config, stop, on_wait=waits.append):
        with attempt:
            made = attempt.retry_state.attempt_number
            outcome = outcomes[made - 1]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome, made
    raise AssertionError("the loop ended without a result")


def test_a_retryable_failure_is_tried_again_until_it_works():
    waits: list[float] = []
    config = RetryConfig(max_attempts=5, backoff_base=0.001, backoff_max=0.002)
    result = run(config, [RetryableFailure("server_error", "500"),
                          RetryableFailure("timeout", "slow"), "ok"], threading.Event(), waits)
    assert result == ("ok", 3) and len(waits) == 2


def test_after_max_attempts_the_last_failure_is_raised():
    config = RetryConfig(max_attempts=3, backoff_base=0.001, backoff_max=0.001)
    failures = [RetryableFailure("server_error", f"500 #{i}") for i in range(3)]
    with pytest.raises(RetryableFailure, match="500 #2"):
        run(config, [*failures], threading.Event(), [])


def test_another_error_is_not_retried():
    config = RetryConfig(max_attempts=5)
    with pytest.raises(KeyError):
        run(config, [KeyError("bug"), "ok"], threading.Event(), [])


def test_a_stop_during_the_wait_ends_it():
    stop = threading.Event()
    config = RetryConfig(max_attempts=5, backoff_base=60, backoff_max=60)
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    with pytest.raises(Stopped):
        run(config, [RetryableFailure("rate_limited", "429", retry_after=60), "ok"], stop, [])
    timer.cancel()


def test_a_stopped_run_raises_the_failure_instead_of_waiting():
    stop = threading.Event()
    stop.set()
    with pytest.raises(RetryableFailure):
        run(RetryConfig(max_attempts=5), [RetryableFailure("timeout", "slow"), "ok"], stop, [])


def test_backoff_is_full_jitter_under_a_growing_cap_with_retry_after_as_a_floor():
    config = RetryConfig(backoff_base=1.0, backoff_max=5.0)
    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (50, 5.0), (5000, 5.0)]:
        waits = [backoff(config, attempt) for _ in range(200)]
        assert all(0 <= w <= cap for w in waits) and max(waits) > cap / 2
    assert all(backoff(config, 1, retry_after=30.0) == 30.0 for _ in range(20))
