"""The run's figures as words, the same for the bars, the plain log lines and the summary (so they
cannot disagree): durations as hh:mm:ss, counts and tokens with thousands separators, rates as
whole numbers from 10 up and with one decimal below, costs through the one `usd` of the tool."""

from __future__ import annotations

import time

from auto_label.api import RunInfo, Snapshot, StepFigures, Tokens


def duration(seconds: float | None) -> str:
    """hh:mm:ss (hours grow past 99); --:--:-- when unknown."""
    if seconds is None:
        return "--:--:--"
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def moment(unix: float) -> str:
    """Local date and time, e.g. 2026-11-30 03:40:12."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix))


def number(n: int) -> str:
    """e.g. 12,345"""
    return f"{n:,}"


def per_minute(value: float) -> str:
    """A rate: whole from 10 up (1,234, 109, 87), one decimal below (4.0, 0.5)."""
    return f"{value:,.0f}" if round(value, 1) >= 10 else f"{value:.1f}"


def usd(cost: float) -> str:
    """Dollars as every part of the tool writes them (the budget's messages included):
    $1,234.56, $0.0200, <$0.0001."""
    from auto_label.estimate import usd as format_usd  # with the dry run's modules: when needed

    return format_usd(cost)


def tokens(t: Tokens) -> str:
    return (f"tokens {number(t.prompt)} prompt, {number(t.answer)} answer, "
            f"{number(t.thinking)} thinking")


def cost(snap: Snapshot, info: RunInfo) -> str:
    """The run's cost so far, or why there is none."""
    if snap.cost is None:
        return f"cost unknown (no price for {info.model or 'the model'})"
    return f"cost {usd(snap.cost)}"


def rate(snap: Snapshot) -> str:
    """e.g. "87 steps/min over the last minute", or that too few steps finished to say."""
    if snap.rate is None:
        return "rate unknown (too few steps finished yet)"
    return f"{per_minute(snap.rate)} steps/min over the last minute"


def eta(snap: Snapshot) -> str:
    """e.g. "ETA 00:04:10" (a wait in force included), "ETA unknown" without a rate."""
    if snap.eta is None and snap.left:
        return "ETA unknown"
    return f"ETA {duration(snap.eta or 0.0)}"


def step_counts(step: StepFigures, images: int) -> str:
    """e.g. 120/300 (1 failed, 3 in flight): done (completed + cached) of all images, then what
    is not done but counted apart."""
    extra = [f"{number(n)} {label}" for n, label in ((step.failed, "failed"),
                                                     (step.skipped, "skipped"),
                                                     (step.in_flight, "in flight")) if n]
    return f"{number(step.done)}/{number(images)}" + (f" ({', '.join(extra)})" if extra else "")


def retries(snap: Snapshot) -> str:
    """"failed attempts: rate_limited 3, server_error 1", or empty."""
    if not snap.retries:
        return ""
    return "failed attempts: " + ", ".join(f"{kind} {number(n)}" for kind, n in snap.retries)


def activity(snap: Snapshot) -> str:
    """Elapsed, rate, ETA, requests: e.g. elapsed 00:01:23, 42 steps/min over the last minute,
    ETA 00:04:10, 1,234 requests (3 in flight)."""
    flight = [f"{number(snap.in_flight)} in flight"] if snap.in_flight else []
    if snap.retrying:
        flight.append(f"{number(snap.retrying)} waiting to retry")
    requests = (f"{number(snap.requests)} request{'s' if snap.requests != 1 else ''}"
                + (f" ({', '.join(flight)})" if flight else ""))
    return f"elapsed {duration(snap.elapsed)}, {rate(snap)}, {eta(snap)}, {requests}"


def why(snap: Snapshot) -> str:
    """What holds the run up, best guess first: the wait it was told, the requests in flight or
    waiting to retry, the pace it slowed to."""
    reasons = [snap.waiting] if snap.waiting else []
    if snap.in_flight and not snap.stopping:
        reasons.append(f"{number(snap.in_flight)} request(s) in flight")
    if snap.retrying:
        reasons.append(f"{number(snap.retrying)} waiting to retry")
    if snap.pace is not None:
        reasons.append(slowed(snap))
    return "; ".join(reasons) or "no request in flight"


def slowed(snap: Snapshot) -> str:
    """e.g. "slowed to 30 requests/min after 429s", or empty."""
    if snap.pace is None:
        return ""
    return f"slowed to {per_minute(snap.pace)} requests/min after 429s"


def last_error(snap: Snapshot) -> str:
    if not snap.last_error:
        return ""
    at = (time.strftime(" at %H:%M:%S", time.localtime(snap.last_error_at))
          if snap.last_error_at is not None else "")
    return f"last error{at}: {snap.last_error}"


def header(info: RunInfo) -> list[str]:
    """Which run this is, in two or three lines."""
    steps = len(info.steps)
    how = (f"batch jobs of up to {number(info.batch_jobs)} requests" if info.batch_jobs else
           f"{info.workers} worker{'s' if info.workers != 1 else ''}")
    lines = [f"{info.pipeline}: {info.backend} {info.model} at {info.endpoint}, {how}, "
             f"{number(info.images)} images x {steps} "
             f"step{'s' if steps != 1 else ''}"]
    if info.inputs:
        lines.append("input: " + ", ".join(f"{name} {path}" for name, path in info.inputs))
    lines.append(f"results_dir: {info.results_dir}")
    return lines


def plain_line(snap: Snapshot, info: RunInfo) -> str:
    """One log line with every figure (without its timestamp)."""
    parts = [" | ".join(f"{s.name} {step_counts(s, snap.images)}" for s in snap.steps),
             activity(snap), tokens(snap.tokens)]
    if snap.cost is not None:
        parts.append(cost(snap, info))
    for extra in (retries(snap), snap.waiting):
        if extra:
            parts.append(extra)
    return " | ".join(parts)
