"""The retry policy shared by every backend.

Retried: 429, 5xx, timeouts, connection errors, bodies that are not the protocol's, and (a bounded
number of times, as fresh samples) answers that do not parse. Backoff is exponential with full
jitter (a wait drawn uniformly from 0 to min(backoff_max, backoff_base * 2^(attempt - 1)), the
"Full Jitter" of aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), and a
server's `Retry-After` is a floor under it. Client errors (400, 404...) and a rejected API key
are not retried. Sleeps end early when the run is stopped.

The loop is tenacity's shape (`for attempt in retrying(...): with attempt: ...`), written out:
tenacity's general machinery cost about 20 µs per step, on every request, for a policy this
small.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from types import TracebackType

from auto_label.pipelines.config import RetryConfig


class RetryableFailure(Exception):
    """One attempt failed in a way worth another try."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class Stopped(Exception):
    """The run was asked to stop while waiting to retry."""


class AttemptState:
    def __init__(self, attempt_number: int) -> None:
        self.attempt_number = attempt_number
        """1 for the first attempt"""


class Attempt:
    """One attempt: a context manager that keeps a `RetryableFailure` raised in its body for the
    loop to judge; any other exception goes through."""

    def __init__(self, number: int) -> None:
        self.retry_state = AttemptState(number)
        self.failure: RetryableFailure | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> bool:
        if isinstance(error, RetryableFailure):
            self.failure = error
            return True
        return False


def backoff(config: RetryConfig, attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): full jitter, with the
    server's `retry_after` as a floor."""
    try:
        high = min(config.backoff_max, config.backoff_base * 2.0 ** (attempt - 1))
    except OverflowError:
        high = config.backoff_max
    seconds = random.uniform(0, max(0.0, high))
    return max(seconds, retry_after) if retry_after is not None else seconds


def retrying(config: RetryConfig, stop_event: threading.Event,
             on_wait: Callable[[float], None] | None = None) -> Iterator[Attempt]:
    """The attempts of one step: `for attempt in retrying(...): with attempt: return try_it()`.

    A `RetryableFailure` in an attempt's body waits its backoff and yields the next attempt;
    after `config.max_attempts` attempts, or once `stop_event` is set, the last one is raised.
    Raises `Stopped` when the run stops during a wait."""
    number = 0
    while True:
        number += 1
        attempt = Attempt(number)
        yield attempt
        failure = attempt.failure
        if failure is None:
            return
        if stop_event.is_set() or number >= config.max_attempts:
            raise failure
        seconds = backoff(config, number, failure.retry_after)
        if on_wait is not None:
            on_wait(seconds)
        if stop_event.wait(seconds):
            raise Stopped
