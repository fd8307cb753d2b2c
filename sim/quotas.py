"""Quota answers (HTTP 429) of the VLM SIMULATOR, shaped as the real services send them.

For tests and demos only. Two fault kinds (faults.py):

- ``quota_minute``: a per-minute quota is spent; waiting `SimConfig.quota_retry_delay` seconds is
  enough. Gemini says so in the body (`google.rpc.RetryInfo`), OpenAI in its
  ``x-ratelimit-reset-*`` headers; neither sends a ``Retry-After`` header.
- ``quota_day``: a per-day quota (Gemini) or the account's credit (OpenAI
  ``insufficient_quota``) is spent; retrying soon does not help.

Every shape below is copied from real answers quoted in public issues, cited beside the code.
"""

from __future__ import annotations

from typing import Any

QUOTA_KINDS: tuple[str, ...] = ("quota_minute", "quota_day")

# Google's 429 message, as quoted in the issues cited below (free tier, 2025-2026).
_GEMINI_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To "
    "monitor your current usage, head to: https://ai.dev/rate-limit. \n* Quota exceeded for "
    "metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: "
    "{limit}, model: {model}\nPlease retry in {delay}."
)
_GEMINI_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
_PER_MINUTE = ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "15")
_PER_DAY = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "20")


def protobuf_duration(seconds: float) -> str:
    """`seconds` as a google.protobuf.Duration in JSON: "3s", "0.500s", "1.000001s".

    The JSON mapping in protocolbuffers/protobuf src/google/protobuf/duration.proto: a string
    of seconds ending in "s", nanoseconds as a fraction of 0, 3, 6 or 9 digits. Google's real
    RetryInfo values are whole seconds ("19s", "26s", "47s" in the issues cited below).
    """
    nanos = max(0, round(seconds * 1e9))
    whole, frac = divmod(nanos, 10**9)
    if frac == 0:
        return f"{whole}s"
    for digits, unit in ((3, 10**6), (6, 10**3), (9, 1)):
        if frac % unit == 0:
            return f"{whole}.{frac // unit:0{digits}d}s"
    return f"{whole}.{frac:09d}s"  # pragma: no cover - the loop ends at unit 1


def go_duration(seconds: float) -> str:
    """`seconds` written as Go's time.Duration.String does: "12ms", "1s", "2.5s", "6m0s".

    OpenAI's x-ratelimit-reset-* values are in this format: its rate-limit guide shows "1s" and
    "6m0s" (https://platform.openai.com/docs/guides/rate-limits, "Rate limits in headers"), a
    community answer shows "12ms" and "9ms"
    (https://community.openai.com/t/how-to-get-rate-limit-reset-time-for-response-api/1268905),
    and sashabaranov/go-openai ratelimit.go parses them with time.ParseDuration.
    """
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return _trim(seconds * 1000) + "ms"
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    text = _trim(secs) + "s"
    if hours >= 1:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes >= 1:
        return f"{int(minutes)}m{text}"
    return text


def _trim(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def gemini_quota(kind: str, model: str, delay: float) -> dict[str, Any]:
    """The body of Gemini's 429 RESOURCE_EXHAUSTED for `kind` (no Retry-After header is sent).

    Shape: google-gemini/gemini-cli#8437 and RooCodeInc/Roo-Code#3883 (QuotaFailure with
    quotaMetric / quotaId / quotaDimensions / quotaValue, a Help link, a RetryInfo with
    retryDelay), diegosouzapw/OmniRoute#9504 (the message ending "Please retry in 36.43s.").
    Per-day answers carry a (short) RetryInfo too: OmniRoute#9504 (a lone PerDay violation with
    retryDelay "36s"), googleapis/python-genai#2044 and langchain-ai/langchain-google#1445 (PerDay
    beside PerMinute violations, retryDelay "47s" / "33s"); so a client must read the quotaId,
    as gemini-cli does (packages/core/src/utils/googleQuotaErrors.ts: "PerDay" or "Daily" in a
    quotaId is terminal, before RetryInfo is looked at). No real body says when the day's quota
    resets (Google's rate-limit page says RPD quotas reset at midnight Pacific time,
    https://ai.google.dev/gemini-api/docs/rate-limits), so neither does this one.
    """
    quota_id, limit = _PER_DAY if kind == "quota_day" else _PER_MINUTE
    name = model.removeprefix("models/") or "sim-vlm"
    retry = protobuf_duration(delay)
    return {"error": {
        "code": 429,
        "message": _GEMINI_MESSAGE.format(limit=limit, model=name, delay=retry),
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": _GEMINI_METRIC,
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": name},
                "quotaValue": limit,
            }]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
            }]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry},
        ],
    }}


def openai_quota(kind: str, model: str, delay: float) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers of OpenAI's 429 for `kind` (never a Retry-After header).

    quota_minute: "Rate limit reached for requests" (https://platform.openai.com/docs/guides/
    error-codes) with type "requests" and code "rate_limit_exceeded", and the
    x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers of
    https://platform.openai.com/docs/guides/rate-limits ("Rate limits in headers"); the request
    limit is the one spent, so its reset is `delay` and the tokens' reset is shorter (a client
    waits for the larger of the two, https://thoughtbot.com/blog/openai-rate-limits).
    quota_day: the account is out of credit; the body of ayaka14732/ChatGPTAPIFree#16,
    Pythagora-io/gpt-pilot#340 and ChatGPTNextWeb/NextChat#3664 (type and code
    "insufficient_quota"). Whether real insufficient_quota answers carry rate-limit headers could
    not be sourced; this one carries none.
    """
    if kind == "quota_day":
        return {"error": {
            "message": ("You exceeded your current quota, please check your plan and billing "
                        "details. For more information on this error, read the docs: "
                        "https://platform.openai.com/docs/guides/error-codes/api-errors."),
            "type": "insufficient_quota", "param": None, "code": "insufficient_quota",
        }}, {}
    name = model or "sim-vlm"
    body = {"error": {
        "message": (f"Rate limit reached for {name} in organization org-sim on requests per min "
                    f"(RPM): Limit 3, Used 3, Requested 1. Please try again in "
                    f"{go_duration(delay)}. Visit https://platform.openai.com/account/"
                    "rate-limits to learn more."),
        "type": "requests", "param": None, "code": "rate_limit_exceeded",
    }}
    headers = {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "149000",
        "x-ratelimit-reset-requests": go_duration(delay),
        "x-ratelimit-reset-tokens": go_duration(delay / 10),
    }
    return body, headers
