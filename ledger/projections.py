"""Appending events and keeping the projections in step with them, in the caller's transaction.

`events` is the source of truth; `images` (the latest seed of each image), `completions` (every
completion, under the unique key that makes a duplicate impossible), `current` (the completion each
record shows) and `runs` (one row per run, from its run_started and run_finished events) follow
from it. `append_batch` is used by the background `LedgerWriter` and by `Ledger.append` alike.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from auto_label.ledger.events import (
    Event,
    ImageSeeded,
    RunFinished,
    RunStarted,
    StepCompleted,
    StepSelected,
)
from auto_label.ledger.fingerprint import content_hash

_INSERT_EVENT = (
    "INSERT INTO events (type, v, run_id, image_id, step, at, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_PROJECTED = (StepCompleted, StepSelected, ImageSeeded, RunStarted, RunFinished)


def input_hash(caption: str | None, extra: dict[str, Any]) -> str:
    """What, besides the file, a seed depends on: its caption and extra inputs."""
    return content_hash({"caption": caption, "extra": extra})


def _row(event: Event) -> tuple[object, ...]:
    return (event.type, event.v, event.run_id, getattr(event, "image_id", None),
            getattr(event, "step", None), event.at, event.body())


def append_batch(conn: sqlite3.Connection, events: Sequence[Event]) -> list[StepCompleted]:
    """Append events and update the projections, inside the caller's transaction.

    Runs of plain events go in with one `executemany`; events that update a projection go one by
    one. Returns the step completions the unique key refused (their events are not stored): the
    caller reports them, and never counts them as completed.
    """
    refused: list[StepCompleted] = []
    plain: list[tuple[object, ...]] = []
    for event in events:
        if not isinstance(event, _PROJECTED):
            plain.append(_row(event))
            continue
        if plain:
            conn.executemany(_INSERT_EVENT, plain)
            plain = []
        seq = conn.execute(_INSERT_EVENT, _row(event)).lastrowid
        assert seq is not None
        if isinstance(event, StepCompleted):
            if not _complete(conn, event, seq):
                conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
                refused.append(event)
        elif isinstance(event, StepSelected):
            _select(conn, event)
        elif isinstance(event, ImageSeeded):
            conn.execute(
                "INSERT OR REPLACE INTO images (image_id, seq, path, size, mtime_ns, sha256, "
                "width, height, input_hash, image_key, ingest) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event.image_id, seq, event.path, event.size, event.mtime_ns, event.sha256,
                 event.width, event.height, input_hash(event.caption, event.extra),
                 event.image_key, event.ingest),
            )
        elif isinstance(event, RunStarted):
            conn.execute(
                "INSERT INTO runs (run_id, number, started_at) "
                "VALUES (?, (SELECT COALESCE(MAX(number), 0) + 1 FROM runs), ?)",
                (event.run_id, event.at))
        else:
            conn.execute("UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?",
                         (event.at, event.status, event.run_id))
    if plain:
        conn.executemany(_INSERT_EVENT, plain)
    return refused


def _complete(conn: sqlite3.Connection, event: StepCompleted, seq: int) -> bool:
    try:
        conn.execute(
            "INSERT INTO completions (step, image_id, fingerprint, generation, seq, output_hash) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (event.step, event.image_id, event.fingerprint, event.generation, seq,
             event.output_hash),
        )
    except sqlite3.IntegrityError:
        return False
    _set_current(conn, event.image_id, event.step, event.fingerprint, seq, event.output_hash)
    return True


def _select(conn: sqlite3.Connection, event: StepSelected) -> None:
    row = conn.execute(
        "SELECT seq, output_hash FROM completions WHERE step = ? AND image_id = ? "
        "AND fingerprint = ? ORDER BY seq DESC LIMIT 1",
        (event.step, event.image_id, event.fingerprint),
    ).fetchone()
    if row is not None:
        _set_current(conn, event.image_id, event.step, event.fingerprint, row[0], row[1])


def _set_current(conn: sqlite3.Connection, image_id: str, step: str, fingerprint: str, seq: int,
                 output_hash: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO current (image_id, step, fingerprint, seq, output_hash) "
        "VALUES (?, ?, ?, ?, ?)",
        (image_id, step, fingerprint, seq, output_hash),
    )
