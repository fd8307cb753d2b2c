"""The unified export: `annotations.jsonl`, one record per image, projected from the ledger.

`ledger_records` is the pure half (ledger -> records, by folding each image's events);
`save_annotations_jsonl` is the I/O half: it writes a temporary file beside the target and renames
it over, so a reader never sees a half-written file and a crash leaves the previous one intact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from auto_label.ledger.fold import ImageState, fold
from auto_label.ledger.store import Ledger
from auto_label.pipelines.atomic_file import write_atomic
from auto_label.pipelines.steps import Pipeline

ANNOTATIONS_FILE = "annotations.jsonl"


def ledger_states(ledger: Ledger) -> Iterator[ImageState]:
    """Each image's state, the fold of its events, in image id order."""
    for image_id, events in ledger.image_histories():
        yield fold(events, image_id=image_id)


def ledger_records(ledger: Ledger, pipeline: Pipeline) -> Iterator[dict[str, Any]]:
    """Each image's unified record, in image id order (images with no completed step left out)."""
    for state in ledger_states(ledger):
        record = pipeline.to_record(state)
        if record is not None:
            yield record


def save_annotations_jsonl(records: Iterable[dict[str, Any]], path: Path) -> int:
    """Write records as JSON lines at `path`, atomically and durably; returns how many."""
    count = 0

    def lines() -> Iterator[str]:
        nonlocal count
        for record in records:
            count += 1
            yield json.dumps(record, ensure_ascii=False) + "\n"

    write_atomic(path, lines(), durable=True)
    return count
