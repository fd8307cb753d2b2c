"""`auto_label show`: every event of one image, in ledger order, with what its record uses.

    from auto_label.history import image_history, lines
    history = image_history("/tmp/out", "img_00003")
    for entry in history.entries:
        print(entry.seq, entry.event.type, entry.in_record)
    print("\n".join(lines(history)))   # the text `auto_label show` prints (and `review` writes)
"""

from __future__ import annotations

import difflib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auto_label.errors import LedgerError, SpecError
from auto_label.ledger import audit_queries
from auto_label.ledger.events import (
    AttemptFailed,
    Event,
    ImageRejected,
    ImageSeeded,
    RequestSent,
    ResponseReceived,
    RunStarted,
    RunWarning,
    StepCompleted,
    StepFailed,
    StepSelected,
)
from auto_label.ledger.fold import fold
from auto_label.ledger.store import Ledger
from auto_label.ledger.templates import SentRequest, TemplateBook
from auto_label.pipelines.records import project, valid_completions
from auto_label.pipelines.registry import get_pipeline
from auto_label.replay import step_number


@dataclass(frozen=True)
class HistoryEntry:
    seq: int
    """the event's position in the ledger"""
    run: int
    """the number of the run that recorded it (1: the ledger's first)"""
    event: Event
    in_record: bool
    """the record uses it: the current completion of its step whose upstream is the one shown,
    or the request and response that completion was read from"""
    sent: SentRequest | None = None
    """for a request: its prompt's full text, backend, model and parameters"""
    unreadable: str | None = None
    """for a request whose prompt cannot be rebuilt (a damaged ledger): why"""
    image_sha256: str | None = None
    """for a request: the sha256 of the file sent (its seed's when the request names none)"""
    sent_size: tuple[int, int] | None = None
    """for a request: (width, height) of the image as sent (its seed's upright size when the
    request names none)"""


@dataclass(frozen=True)
class ImageHistory:
    image_id: str
    pipeline: str
    steps: dict[str, str]
    """step number -> name, as `generate` shows it"""
    entries: list[HistoryEntry]
    record: dict[str, Any] | None
    """the image's unified record now (None: no step has completed)"""

    def to_json(self) -> dict[str, Any]:
        """The history as JSON-able data: {image_id, pipeline, steps, record, events: [{seq,
        run, in_record, ...the event's fields}]}; a request's with its prompt, backend, model and
        parameters as sent."""
        return {
            "image_id": self.image_id, "pipeline": self.pipeline, "steps": self.steps,
            "record": self.record,
            "events": [{"seq": e.seq, "run": e.run, "in_record": e.in_record,
                        **e.event.model_dump(mode="json"),
                        **_as_sent(e)} for e in self.entries],
        }


def _as_sent(entry: HistoryEntry) -> dict[str, Any]:
    if entry.sent is None:
        return {}
    sent = entry.sent
    size = entry.sent_size or (None, None)
    return {"prompt": sent.prompt, "prompt_template": sent.template, "backend": sent.backend,
            "model": sent.model, "parameters": sent.parameters,
            "image_sha256": entry.image_sha256, "sent_width": size[0], "sent_height": size[1]}


def image_history(results_dir: str | Path, image_id: str, *,
                  step: str | None = None) -> ImageHistory:
    """Every event of `image_id` in `results_dir`'s ledger, in order (only those of one `step`,
    by number or name, when given; its seed included). Raises LedgerError when there is no
    ledger (or no run) there, SpecError for an image the ledger does not know (with the closest
    ids) or an unknown step."""
    with Ledger.open(results_dir, create=False) as ledger:
        return HistoryReader(ledger).history(image_id, step=step)


class HistoryReader:
    """The histories of the images of one open ledger, its runs and prompt templates read once
    (`auto_label review` reads every image's)."""

    def __init__(self, ledger: Ledger) -> None:
        """Raises LedgerError when the ledger has no run."""
        started = ledger.latest("run_started")
        if not isinstance(started, RunStarted):
            raise LedgerError(f"{ledger.path}: no run has been recorded yet")
        self.ledger = ledger
        self.pipeline = get_pipeline(started.pipeline)
        self.names = {s.number: s.name for s in self.pipeline.steps}
        self.runs = audit_queries.run_numbers(ledger.connection())
        self.book = TemplateBook(ledger.connection(), str(ledger.path))

    def history(self, image_id: str, *, step: str | None = None) -> ImageHistory:
        """What `image_history` returns, from this ledger. Raises SpecError for an image the
        ledger does not know or an unknown step."""
        ledger, pipeline, runs = self.ledger, self.pipeline, self.runs
        if step is not None:
            step = step_number(pipeline, step)
        events = list(ledger.events(image_id=image_id))
        if not events:
            known = audit_queries.image_ids(ledger.connection())
            close = difflib.get_close_matches(image_id, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else \
                f" ({len(known)} images, e.g. {', '.join(known[:3])})" if known else ""
            raise SpecError(f"{ledger.path}: no image {image_id!r} in the ledger{hint}")
        sent: dict[int, SentRequest | str] = {}
        for seq, event in events:
            if isinstance(event, RequestSent) and (step is None or event.step == step):
                try:
                    sent[seq] = self.book.sent(event)
                except LedgerError as exc:
                    sent[seq] = str(exc)
        state = fold((e for _, e in events), image_id=image_id)
        valid = valid_completions(state, pipeline.steps)
        used_requests = {c.request_id for c in valid.values() if c.request_id}
        entries = []
        seed_sha: str | None = None
        seed_size = (0, 0)
        for seq, event in events:
            if isinstance(event, ImageSeeded):
                seed_sha, seed_size = event.sha256, (event.width, event.height)
            event_step = getattr(event, "step", None)
            if step is not None and event_step is not None and event_step != step:
                continue
            if isinstance(event, StepCompleted):
                in_record = valid.get(event.step) is event  # the very event the fold made current
            elif isinstance(event, RequestSent | ResponseReceived):
                in_record = event.request_id in used_requests
            else:
                in_record = False
            how = sent.get(seq)
            request = event if isinstance(event, RequestSent) else None
            entries.append(HistoryEntry(
                seq, runs.get(event.run_id, 0), event, in_record,
                how if isinstance(how, SentRequest) else None,
                how if isinstance(how, str) else None,
                request.image_sha256 or seed_sha if request else None,
                request.sent_size(seed_size) if request else None))
        record = project(state, pipeline).record
        return ImageHistory(image_id, pipeline.name, self.names, entries, record)


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _block(label: str, text: str | None) -> list[str]:
    if text is None:
        return []
    rows = text.splitlines() or [""]
    return [f"    {label:<7}| {rows[0]}", *(f"    {'':<7}| {row}" for row in rows[1:])]


def _size(size: tuple[int, int] | None) -> str:
    return f"{size[0]}x{size[1]}" if size else "?"


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
        sent = entry.sent
        prompt = sent.prompt if sent is not None else f"(cannot be read: {entry.unreadable})"
        return [head + f"request {event.request_id}, attempt {event.attempt}, "
                f"{sent.model if sent is not None else '?'}, "
                f"image sent at {_size(entry.sent_size)}, fingerprint "
                f"{_short(event.fingerprint)}{mark}", *_block("prompt", prompt)]
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


def lines(history: ImageHistory) -> list[str]:
    """What `auto_label show` prints of a history, line by line: a head line, each event's
    lines (`describe`), then what its record holds."""
    out = [f"{history.image_id}: {history.pipeline}, {len(history.entries)} events"]
    for entry in history.entries:
        out.extend(describe(entry, history.steps))
    if history.record is None:
        out.append("record: none yet (no step has completed)")
        return out
    expressions = history.record.get("expressions", [])
    boxes = sum(len(e.get("instances", [])) for e in expressions)
    out.append(f"record: {len(expressions)} expressions, {boxes} boxes "
               f"(`auto_label show ... --json` prints it whole)")
    return out


__all__ = ["AttemptFailed", "HistoryEntry", "HistoryReader", "ImageHistory", "ImageRejected",
           "ImageSeeded", "RequestSent", "ResponseReceived", "RunWarning", "StepCompleted",
           "StepFailed", "StepSelected", "describe", "image_history", "lines"]
