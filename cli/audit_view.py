"""How `show` and `replay` print: an image's events as readable blocks, a replay's outcomes."""

from __future__ import annotations

import json
import time
from collections import Counter

from rich.console import Console

from auto_label.history import (
    AttemptFailed,
    HistoryEntry,
    ImageHistory,
    ImageRejected,
    ImageSeeded,
    RequestSent,
    ResponseReceived,
    RunWarning,
    StepCompleted,
    StepFailed,
    StepSelected,
)
from auto_label.replay import ReplayReport

REPLAY_KINDS = ("recovered", "changed", "reread", "same", "still_failing", "lost", "unversioned",
                "skipped")


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _block(label: str, text: str | None) -> list[str]:
    if text is None:
        return []
    lines = text.splitlines() or [""]
    return [f"    {label:<7}| {lines[0]}", *(f"    {'':<7}| {line}" for line in lines[1:])]


def _short(fingerprint: str) -> str:
    """The first 12 hex digits (enough to tell fingerprints apart by eye)."""
    return fingerprint.removeprefix("sha256:")[:12] if fingerprint else "-"


def _tokens(event: ResponseReceived) -> str:
    usage = event.usage
    parts = [f"{usage.prompt_tokens if usage.prompt_tokens is not None else '?'} prompt",
             f"{usage.completion_tokens if usage.completion_tokens is not None else '?'} answer"]
    if usage.thinking_tokens:
        parts.append(f"{usage.thinking_tokens} thinking")
    return " + ".join(parts)


def describe(entry: HistoryEntry, steps: dict[str, str]) -> list[str]:
    """The lines of one event: a head line, then its texts indented."""
    event = entry.event
    step = getattr(event, "step", None)
    where = f"step {step} ({steps.get(step, '?')})" if step is not None else "image"
    mark = "   <- the record uses this" if entry.in_record else ""
    head = f"#{entry.seq:<6} {_when(event.at)}  run {entry.run}  {where}: "
    if isinstance(event, ImageSeeded):
        rotated = f", EXIF orientation {event.orientation} applied" if event.orientation != 1 \
            else ""
        return [head + f"seeded {event.path} ({event.width}x{event.height} "
                f"{event.format or ''}{rotated}) from {event.source or '-'}, sha256 "
                f"{_short(event.sha256)}", *_block("caption", event.caption)]
    if isinstance(event, ImageRejected):
        return [head + f"rejected ({event.kind}): {event.message}"]
    if isinstance(event, RequestSent):
        return [head + f"request {event.request_id}, attempt {event.attempt}, {event.model}, "
                f"image sent at {event.sent_width}x{event.sent_height}, fingerprint "
                f"{_short(event.fingerprint)}{mark}", *_block("prompt", event.prompt)]
    if isinstance(event, ResponseReceived):
        answered = f", answer read from the {event.answer_in}" \
            if event.answer_in != "content" else ""
        return [head + f"response to {event.request_id}: {event.latency_s:.2f} s, "
                f"{_tokens(event)} tokens, finish {event.finish_reason or '-'}, model "
                f"{event.model_version or '-'}{answered}{mark}",
                *_block("thinks", event.thinking), *_block("answer", event.text)]
    if isinstance(event, AttemptFailed):
        wait = f", retry after {event.retry_after_s:g} s" if event.retry_after_s else ""
        status = f" (HTTP {event.status_code})" if event.status_code and \
            not event.message.startswith(f"HTTP {event.status_code}") else ""
        return [head + f"attempt {event.attempt} of {event.request_id} failed: "
                f"{event.kind}{status}{wait}: {event.message}"]
    if isinstance(event, StepCompleted):
        origin = f"read from {event.request_id}" if event.request_id else \
            f"imported from {event.source}" if event.source else "known without asking"
        found = f", found {event.found}" if event.found is not None else ""
        return [head + f"completed ({origin}{found}), fingerprint "
                f"{_short(event.fingerprint)}{mark}",
                *_block("output", json.dumps(event.output, ensure_ascii=False))]
    if isinstance(event, StepSelected):
        return [head + f"completion {_short(event.fingerprint)} selected again"]
    if isinstance(event, StepFailed):
        return [head + f"FAILED ({event.kind}), fingerprint {_short(event.fingerprint)}: "
                f"{event.message}"]
    if isinstance(event, RunWarning):
        return [head + f"warning ({event.kind}): {event.message}"]
    return [head + event.type]


def print_history(console: Console, history: ImageHistory) -> None:
    console.print(f"{history.image_id}: {history.pipeline}, {len(history.entries)} events",
                  markup=False, highlight=False)
    for entry in history.entries:
        for line in describe(entry, history.steps):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if history.record is None:
        console.print("record: none yet (no step has completed)", markup=False)
        return
    expressions = history.record.get("expressions", [])
    boxes = sum(len(e.get("instances", [])) for e in expressions)
    console.print(f"record: {len(expressions)} expressions, {boxes} boxes "
                  f"(`auto_label show ... --json` prints it whole)", markup=False,
                  highlight=False)


def print_replay(console: Console, report: ReplayReport) -> None:
    verb = "would record" if report.dry_run else "recorded"
    images = f"{report.images} image{'' if report.images == 1 else 's'}"
    console.print(f"{report.pipeline}: {images}, their stored answers read again "
                  "(no request sent)", markup=False, highlight=False)
    for number, name in report.steps:
        counts = report.counts.get(number) or Counter()
        parts = [f"{counts[kind]} {kind.replace('_', ' ')}" for kind in REPLAY_KINDS
                 if counts.get(kind)]
        console.print(f"  {name}: {', '.join(parts) or 'nothing to read'}", markup=False,
                      highlight=False)
    for example in report.examples:
        console.print(f"{example.kind.replace('_', ' ')}: {example.image_id} step "
                      f"{example.step.number} ({example.step.name}): {example.message}",
                      markup=False, highlight=False, soft_wrap=True)
    if report.more_examples:
        console.print(f"... and {report.more_examples} more like these (`auto_label status "
                      f"{report.results_dir} --failed` lists the failed ones)", markup=False,
                      highlight=False, soft_wrap=True)
    for reason, count in report.skip_reasons.most_common():
        console.print(f"not read again ({count}): {reason}", markup=False, highlight=False)
    changes = f"; {len(report.records)} record(s) change:" if report.records else \
        "; no record changes"
    console.print(f"{verb} {report.recorded} completion(s){changes}", markup=False)
    for change in report.records:
        for line in change.lines:
            console.print(f"  {change.image_id}: {line}", markup=False, highlight=False,
                          soft_wrap=True)
    if report.downstream:
        console.print(f"{report.downstream} downstream step result(s) no longer fit their "
                      "upstream: the next `generate` asks for those (and only those) again",
                      markup=False)
    for path in report.outputs:
        console.print(f"wrote {path}", markup=False, highlight=False)
    if report.dry_run:
        console.print("dry run: nothing was recorded", markup=False)
