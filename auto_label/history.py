"""`auto_label show`: every event of one image, in ledger order, with what its record uses.

    from auto_label.history import image_history
    history = image_history("/tmp/out", "img_00003")
    for entry in history.entries:
        print(entry.seq, entry.event.type, entry.in_record)
"""

from __future__ import annotations

import difflib
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
        run, in_record, ...the event's fields}]}."""
        return {
            "image_id": self.image_id, "pipeline": self.pipeline, "steps": self.steps,
            "record": self.record,
            "events": [{"seq": e.seq, "run": e.run, "in_record": e.in_record,
                        **e.event.model_dump(mode="json")} for e in self.entries],
        }


def image_history(results_dir: str | Path, image_id: str, *,
                  step: str | None = None) -> ImageHistory:
    """Every event of `image_id` in `results_dir`'s ledger, in order (only those of one `step`,
    by number or name, when given; its seed included). Raises LedgerError when there is no
    ledger (or no run) there, SpecError for an image the ledger does not know (with the closest
    ids) or an unknown step."""
    with Ledger.open(results_dir, create=False) as ledger:
        started = ledger.latest("run_started")
        if not isinstance(started, RunStarted):
            raise LedgerError(f"{ledger.path}: no run has been recorded yet")
        pipeline = get_pipeline(started.pipeline)
        names = {s.number: s.name for s in pipeline.steps}
        if step is not None:
            step = step_number(pipeline, step)
        conn = ledger.connection()
        events = list(ledger.events(image_id=image_id))
        if not events:
            known = audit_queries.image_ids(conn)
            close = difflib.get_close_matches(image_id, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else \
                f" ({len(known)} images, e.g. {', '.join(known[:3])})" if known else ""
            raise SpecError(f"{ledger.path}: no image {image_id!r} in the ledger{hint}")
        runs = audit_queries.run_numbers(conn)
    state = fold((e for _, e in events), image_id=image_id)
    valid = valid_completions(state, pipeline.steps)
    used_requests = {c.request_id for c in valid.values() if c.request_id}
    entries = []
    for seq, event in events:
        event_step = getattr(event, "step", None)
        if step is not None and event_step is not None and event_step != step:
            continue
        if isinstance(event, StepCompleted):
            in_record = valid.get(event.step) is event  # the very event the fold made current
        elif isinstance(event, RequestSent | ResponseReceived):
            in_record = event.request_id in used_requests
        else:
            in_record = False
        entries.append(HistoryEntry(seq, runs.get(event.run_id, 0), event, in_record))
    record = project(state, pipeline).record
    return ImageHistory(image_id, pipeline.name, names, entries, record)


__all__ = ["AttemptFailed", "HistoryEntry", "ImageHistory", "ImageRejected", "ImageSeeded",
           "RequestSent", "ResponseReceived", "RunWarning", "StepCompleted", "StepFailed",
           "StepSelected", "image_history"]
