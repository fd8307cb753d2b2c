"""The retry policy shared by every backend, built on tenacity.

Retried: 429, 5xx, timeouts, connection errors, bodies that are not the protocol's, and (a bounded
number of times, as fresh samples) answers that do not parse. Backoff is exponential with full
jitter, and a server's `Retry-After` is a floor under it. Client errors (400, 404...) and a rejected
API key are not retried. Sleeps end early when the run is stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from auto_label.pipelines.config import RetryConfig


class RetryableFailure(Exception):
    """One attempt failed in a way worth another try."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class Stopped(Exception):
    """The run was asked to stop while waiting to retry."""


def retrying(config: RetryConfig, stop_event: threading.Event,
             on_wait: Callable[[float], None] | None = None) -> Retrying:
    """A tenacity `Retrying` that retries `RetryableFailure` as the spec says."""
    jitter = wait_random_exponential(multiplier=config.backoff_base, max=config.backoff_max)

    def wait(state: RetryCallState) -> float:
        seconds = jitter(state)
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RetryableFailure) and error.retry_after is not None:
            seconds = max(seconds, error.retry_after)
        if on_wait is not None:
            on_wait(seconds)
        return seconds

    def sleep(seconds: float) -> None:
        if stop_event.wait(seconds):
            raise Stopped

    def stop(state: RetryCallState) -> bool:
        return stop_event.is_set() or stop_after_attempt(config.max_attempts)(state)

    return Retrying(
        stop=stop,
        wait=wait,
        sleep=sleep,
        retry=retry_if_exception_type(RetryableFailure),
        reraise=True,
    )
