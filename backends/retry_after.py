"""Reading how long an endpoint asks us to wait: a `Retry-After` header (delay-seconds or an HTTP
date, RFC 9110 section 10.2.3), OpenAI's rate-limit reset headers, Google's RetryInfo."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait, or None when the header is absent or unreadable. Never negative."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(value: str | None) -> float | None:
    """Seconds in a duration string, or None when unreadable. Reads Go-style durations, as in
    OpenAI's `x-ratelimit-reset-*` headers ("1s", "6m0s", "20ms"; platform.openai.com/docs/
    guides/rate-limits, "Rate limits in headers"), and protobuf Duration JSON, as in Google's
    `RetryInfo.retryDelay` ("19s", "0.5s"; googleapis/googleapis google/rpc/error_details.proto).
    """
    if value is None:
        return None
    text = value.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def openai_wait(headers: Mapping[str, str]) -> float | None:
    """How long an OpenAI-compatible 429 asks us to wait: `retry-after-ms` and `Retry-After` (as
    the openai SDK reads them), else the reset header of the limit that is spent
    (`x-ratelimit-remaining-requests` or `-tokens` at 0), else the sooner of the two resets."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    after = parse_retry_after(headers.get("retry-after"))
    if after is not None:
        return after
    requests = parse_duration(headers.get("x-ratelimit-reset-requests"))
    tokens = parse_duration(headers.get("x-ratelimit-reset-tokens"))
    if headers.get("x-ratelimit-remaining-requests") == "0" and requests is not None:
        return requests
    if headers.get("x-ratelimit-remaining-tokens") == "0" and tokens is not None:
        return tokens
    known = [v for v in (requests, tokens) if v is not None]
    return min(known) if known else None


def google_details(details: object) -> tuple[float | None, list[str]]:
    """(the RetryInfo wait in seconds, the quota ids of QuotaFailure violations) of a Google API
    error's `details` (google.rpc.Status.details: a list of typed messages,
    "type.googleapis.com/google.rpc.RetryInfo" with `retryDelay`,
    "type.googleapis.com/google.rpc.QuotaFailure" with `violations[].quotaId`)."""
    wait: float | None = None
    quotas: list[str] = []
    for entry in details if isinstance(details, list) else []:
        if not isinstance(entry, dict):
            continue
        kind = str(entry.get("@type", ""))
        if kind.endswith("google.rpc.RetryInfo"):
            wait = parse_duration(str(entry.get("retryDelay", "")))
        elif kind.endswith("google.rpc.QuotaFailure"):
            for violation in entry.get("violations") or []:
                if isinstance(violation, dict) and violation.get("quotaId"):
                    quotas.append(str(violation["quotaId"]))
    return wait, quotas
