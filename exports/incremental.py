"""Exporting a ledger, and bringing annotations.jsonl up to date without redoing it.

`export_ledger` reads the ledger in one snapshot (a read transaction), streams every record to the
formats asked for, and remembers (in `results_dir/.annotations.jsonl.state`) which ledger, up to
which event, the plain annotations.jsonl it wrote holds. The next export of annotations.jsonl
alone, with nothing filtered, then reads only the records of the images with events after that
one and merges them into the previous file's lines (which are in image id order, each starting
with its `image_id`), copying the others as they are: the same bytes as a full export.

The previous file is only trusted when the state names this ledger (its first run), this tool
version and pipeline, and the file's size and mtime; a few of its untouched lines are rendered
again and must match. Otherwise, or when any line does not read, the export is done in full. A
stale state never survives an export: it is removed before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from auto_label.exports import write_exports
from auto_label.exports.atomic import AtomicTextFile, write_atomic
from auto_label.exports.base import ExportFormat, ExportOptions, Written
from auto_label.exports.jsonl import ANNOTATIONS_FILE, record_to_json_line
from auto_label.ledger import queries
from auto_label.ledger.store import Ledger
from auto_label.pipelines.contract import Pipeline
from auto_label.pipelines.records import ImageRecord, image_records
from auto_label.version import __version__

STATE_FILE = ".annotations.jsonl.state"
PREFIX = '{"image_id": '
"""how every line of annotations.jsonl starts (the record's first key)"""
SAMPLES = 4
"""untouched lines rendered again before the previous file is trusted"""


@dataclass(frozen=True)
class ExportState:
    """What the plain annotations.jsonl of `results_dir` holds."""

    tool: str
    pipeline: str
    ledger: str
    """the ledger's first run id: another ledger in the same folder is another history"""
    seq: int
    """the newest event it includes"""
    size: int
    mtime_ns: int


def export_ledger(ledger: Ledger, pipeline: Pipeline, results_dir: Path,
                  formats: Sequence[ExportFormat],
                  options: ExportOptions | None = None) -> tuple[list[Written], int]:
    """Write `formats` from the ledger, as `write_exports` does (its errors too); annotations.jsonl
    alone and unfiltered is brought up to date from the images touched since the last export
    when that export can be trusted. Returns what was written and the records (images with one).
    """
    options = options or ExportOptions()
    plain = options.filter.keeps_everything and options.step is None
    conn = ledger.connection()
    conn.execute("BEGIN")  # one snapshot: the records and the seq they are as of agree
    try:
        seq = queries.last_seq(conn)
        first = conn.execute("SELECT run_id FROM runs ORDER BY number LIMIT 1").fetchone()
        identity = str(first[0]) if first is not None else ""
        previous = _read_state(results_dir)
        (results_dir / STATE_FILE).unlink(missing_ok=True)
        if plain and [f.name for f in formats] == ["jsonl"] and previous is not None and \
                _trusted(previous, results_dir, pipeline.name, identity):
            written = _update(ledger, pipeline, results_dir, previous.seq)
            if written is not None:
                _write_state(results_dir, pipeline.name, identity, seq)
                return [written], written.records
        counted = 0

        def counting() -> Iterator[ImageRecord]:
            nonlocal counted
            for record in image_records(ledger, pipeline):
                counted += record.record is not None
                yield record

        done = write_exports(counting(), results_dir, formats, options, pipeline)
        if plain and any(f.name == "jsonl" for f in formats):
            _write_state(results_dir, pipeline.name, identity, seq)
        return done, counted
    finally:
        conn.execute("COMMIT")


def _update(ledger: Ledger, pipeline: Pipeline, results_dir: Path,
            since: int) -> Written | None:
    """annotations.jsonl with the records of the images touched after `since` merged in; None
    (nothing written) when the previous file cannot be trusted after all."""
    path = results_dir / ANNOTATIONS_FILE
    touched = queries.touched_since(ledger.connection(), since)
    if not _samples_hold(ledger, pipeline, path, set(touched)):
        return None
    fresh = image_records(ledger, pipeline, touched) if touched else iter(())
    out = AtomicTextFile(path, durable=True)
    try:
        count = _merge(path, fresh, set(touched), out)
    except BaseException:
        out.discard()
        raise
    if count is None:
        out.discard()
        return None
    out.commit()
    return Written([path], count)


def _merge(path: Path, fresh: Iterator[ImageRecord], touched: set[str],
           out: AtomicTextFile) -> int | None:
    """Write the previous file's lines with the touched images' fresh records in their places;
    the lines written, or None when a previous line does not read."""
    count = 0
    pending = next(fresh, None)

    def emit(record: ImageRecord) -> None:
        nonlocal count
        line = record_to_json_line(record)
        if line is not None:
            out.write(line)
            count += 1

    with path.open(encoding="utf-8") as old:
        for line in old:
            image_id = _line_id(line)
            if image_id is None:
                return None
            while pending is not None and pending.image_id <= image_id:
                emit(pending)
                pending = next(fresh, None)
            if image_id not in touched:
                out.write(line)
                count += 1
    while pending is not None:
        emit(pending)
        pending = next(fresh, None)
    return count


def _line_id(line: str) -> str | None:
    """The image_id a line of annotations.jsonl starts with (None: not such a line)."""
    if not line.startswith(PREFIX) or not line.endswith("\n"):
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(line, len(PREFIX))
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _samples_hold(ledger: Ledger, pipeline: Pipeline, path: Path, touched: set[str]) -> bool:
    """Whether a few untouched lines (the first ones, and some spread through the file) are what
    a full export writes for them today."""
    lines: dict[str, str] = {}
    size = path.stat().st_size
    with path.open("rb") as handle:
        for offset in [0] + [size * k // SAMPLES for k in range(1, SAMPLES)]:
            handle.seek(offset)
            if offset:
                handle.readline()  # the rest of the line the offset fell in
            raw = handle.readline()
            line = raw.decode("utf-8", errors="replace")
            image_id = _line_id(line) if raw else None
            if raw and image_id is None:
                return False
            if image_id is not None and image_id not in touched:
                lines[image_id] = line
    for record in image_records(ledger, pipeline, sorted(lines)):
        if record_to_json_line(record) != lines.pop(record.image_id, None):
            return False
    return not lines


def _trusted(state: ExportState, results_dir: Path, pipeline: str, identity: str) -> bool:
    try:
        stat = (results_dir / ANNOTATIONS_FILE).stat()
    except OSError:
        return False
    return (state.tool == __version__ and state.pipeline == pipeline and bool(identity)
            and state.ledger == identity and state.size == stat.st_size
            and state.mtime_ns == stat.st_mtime_ns)


def _read_state(results_dir: Path) -> ExportState | None:
    try:
        raw = json.loads((results_dir / STATE_FILE).read_text(encoding="utf-8"))
        return ExportState(**raw)
    except (OSError, ValueError, TypeError):
        return None


def _write_state(results_dir: Path, pipeline: str, identity: str, seq: int) -> None:
    try:
        stat = (results_dir / ANNOTATIONS_FILE).stat()
    except OSError:
        return
    state = ExportState(__version__, pipeline, identity, seq, stat.st_size, stat.st_mtime_ns)
    write_atomic(results_dir / STATE_FILE, [json.dumps(asdict(state))])
