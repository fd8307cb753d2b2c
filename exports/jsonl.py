"""The unified export: `annotations.jsonl`, one record per image that completed a step, in image
id order (the schema is in the README, Output).

Pure half: `record_to_json_line`. I/O half: `save_annotations_jsonl` (and `AnnotationsJsonl`, the
same as a sink for one pass over the ledger with other formats): a temporary file beside the
target, fsynced and renamed over it, so a reader never sees half a file and a crash leaves the
previous one intact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from auto_label.exports.atomic import AtomicTextFile
from auto_label.exports.base import Written
from auto_label.exports.filters import RecordFilter
from auto_label.pipelines.records import ImageRecord

ANNOTATIONS_FILE = "annotations.jsonl"


def record_to_json_line(record: ImageRecord) -> str | None:
    """The record's line of annotations.jsonl (newline included), None when it has no record."""
    if record.record is None:
        return None
    return json.dumps(record.record, ensure_ascii=False) + "\n"


class AnnotationsJsonl:
    """A sink writing `results_dir/annotations.jsonl` (what `record_filter` keeps of each)."""

    def __init__(self, results_dir: Path, record_filter: RecordFilter | None = None) -> None:
        self.filter = record_filter
        self.path = results_dir / ANNOTATIONS_FILE
        self._file = AtomicTextFile(self.path, durable=True)
        self._records = 0

    def add(self, record: ImageRecord) -> None:
        if self.filter is not None and record.record is not None:
            record = replace(record, record=self.filter.apply(record.record))
        line = record_to_json_line(record)
        if line is not None:
            self._file.write(line)
            self._records += 1

    def close(self) -> Written:
        self._file.commit()
        return Written([self.path], self._records)

    def discard(self) -> None:
        self._file.discard()


def save_annotations_jsonl(records: Iterable[ImageRecord], results_dir: Path) -> Written:
    """Write `results_dir/annotations.jsonl` from `records`, atomically and durably."""
    sink = AnnotationsJsonl(results_dir)
    try:
        for record in records:
            sink.add(record)
    except BaseException:
        sink.discard()
        raise
    return sink.close()
