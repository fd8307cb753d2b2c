"""The unified export: `annotations.jsonl`, one record per image, projected from the ledger.

`ledger_records` is the pure half (ledger -> records, by folding each image's events);
`save_annotations_jsonl` is the I/O half: it writes a temporary file beside the target and renames
it over, so a reader never sees a half-written file and a crash leaves the previous one intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from auto_label.ledger.fold import fold
from auto_label.ledger.store import Ledger
from auto_label.pipelines.steps import Pipeline

ANNOTATIONS_FILE = "annotations.jsonl"


def ledger_records(ledger: Ledger, pipeline: Pipeline) -> Iterator[dict[str, Any]]:
    """Each image's unified record, in image id order (images with no completed step left out)."""
    for image_id, events in ledger.image_histories():
        record = pipeline.to_record(fold(events, image_id=image_id))
        if record is not None:
            yield record


def atomic_write_lines(path: Path, lines: Iterable[str]) -> int:
    """Write lines to `path` atomically (temp file + fsync + rename); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line)
                handle.write("\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return count


def save_annotations_jsonl(records: Iterable[dict[str, Any]], path: Path) -> int:
    """Write records as JSON lines at `path`, atomically; returns how many."""
    return atomic_write_lines(path, (json.dumps(r, ensure_ascii=False) for r in records))
