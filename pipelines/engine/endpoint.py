"""The endpoint's own failures, told apart from an image's: a pre-flight before the first image,
a circuit breaker for transport failures in a row, and the one-line error that stops the run.

Connection refused, DNS, TLS, a route or model that does not exist, a rejected key, a spent daily
quota, or requests that keep timing out across images are the endpoint's problem: retrying image
after image would take a day to fail 100k images. The run stops within seconds instead, with one
line naming the URL and the likely fix; no image is recorded as failed for it, and a rerun
resumes.
"""

from __future__ import annotations

import threading

from auto_label.backends.base import (
    AuthFailed,
    Backend,
    BackendError,
    ConnectionFailed,
    DailyQuotaExhausted,
    RequestTimeout,
)
from auto_label.errors import AuthRejected, EndpointUnavailable, QuotaExhausted, RunAborted

TRANSPORT_KINDS = (ConnectionFailed, RequestTimeout)
RESUME = "nothing was recorded as failed; rerun to resume"


def aborting(error: BackendError, endpoint: str) -> RunAborted:
    """The error that stops the run for a backend error that `stops_run`."""
    if isinstance(error, AuthFailed):
        return AuthRejected(f"the endpoint rejected the API key ({error}) at {endpoint}: check "
                            "the spec's vlm.<backend>.api_key, or the OPENAI_API_KEY / "
                            "GOOGLE_API_KEY it falls back to, and that the key is for this "
                            "endpoint")
    if isinstance(error, DailyQuotaExhausted):
        return QuotaExhausted(str(error))
    if isinstance(error, TRANSPORT_KINDS):
        return EndpointUnavailable(f"{error}: is the server running, and is "
                                   f"{endpoint} its address? {RESUME}")
    return EndpointUnavailable(f"{error}; {RESUME}")


def preflight(backend: Backend) -> None:
    """One cheap request before the first image; RunAborted when the endpoint is unreachable,
    misconfigured, or rejects the key (in about a second, not after a run's worth of retries)."""
    try:
        backend.preflight()
    except BackendError as error:
        if error.stops_run or isinstance(error, TRANSPORT_KINDS):
            raise aborting(error, backend.endpoint) from None


class Breaker:
    """Counts transport failures (connection refused, timeouts) in a row, across images and
    workers; any answer from the endpoint, even an error status, resets it. At `threshold` it
    trips: the run stops."""

    def __init__(self, threshold: int, endpoint: str) -> None:
        self.threshold = threshold
        self.endpoint = endpoint
        self._failures = 0
        self._lock = threading.Lock()

    def answered(self) -> None:
        with self._lock:
            self._failures = 0

    def failed(self, error: BackendError) -> RunAborted | None:
        """Count one transport failure; the error that stops the run when it trips."""
        with self._lock:
            self._failures += 1
            tripped = self._failures >= self.threshold
            count = self._failures
        if not tripped:
            return None
        return EndpointUnavailable(
            f"{self.endpoint}: {count} requests in a row failed without an answer (last: "
            f"{error}); is the server running and reachable? {RESUME}")
