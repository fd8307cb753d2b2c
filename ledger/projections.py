"""Appending events and keeping the projections in step with them, in the caller's transaction.

`events` is the source of truth; `images` (the latest seed of each image), `completions` (every
completion, under the unique key that makes a duplicate impossible), `current` (the completion each
record shows), `runs` (one row per run, from its run_started and run_finished events), `outcomes`
(the latest outcome of each image's step) and `run_totals` (each run's requests, tokens, first
seeds and newest event) follow from it. `append_batch` is used by the background `LedgerWriter`
and by `Ledger.append` alike.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from auto_label.ledger.events import (
    Event,
    ImageSeeded,
    RequestSent,
    ResponseReceived,
    RunFinished,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepSelected,
)
from auto_label.ledger.fingerprint import content_hash

_INSERT_EVENT = (
    "INSERT INTO events (type, v, run_id, image_id, step, at, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_PROJECTED = (StepCompleted, StepSelected, StepFailed, ImageSeeded, RunStarted, RunFinished)


def input_hash(caption: str | None, extra: dict[str, Any]) -> str:
    """What, besides the file, a seed depends on: its caption and extra inputs."""
    return content_hash({"caption": caption, "extra": extra})


def _row(event: Event) -> tuple[object, ...]:
    return (event.type, event.v, event.run_id, getattr(event, "image_id", None),
            getattr(event, "step", None), event.at, event.body())


def append_batch(conn: sqlite3.Connection, events: Sequence[Event]) -> list[StepCompleted]:
    """Append events and update the projections, inside the caller's transaction.

    Runs of plain events go in with one `executemany`; events that update a projection go one by
    one; the runs' totals are added once per batch. Returns the step completions the unique key
    refused (their events are not stored): the caller reports them, and never counts them as
    completed.
    """
    refused: list[StepCompleted] = []
    plain: list[tuple[object, ...]] = []
    totals: dict[str, _Totals] = {}
    for event in events:
        run = totals.get(event.run_id)
        if run is None:
            run = totals[event.run_id] = _Totals()
        run.last_at = max(run.last_at, event.at)
        if not isinstance(event, _PROJECTED):
            if isinstance(event, RequestSent):
                run.requests += 1
            elif isinstance(event, ResponseReceived):
                usage = event.usage
                run.prompt += usage.prompt_tokens or 0
                run.answer += usage.completion_tokens or 0
                run.thinking += usage.thinking_tokens or 0
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
            _select(conn, event, seq)
        elif isinstance(event, StepFailed):
            _outcome(conn, event.image_id, event.step, seq, event.type, event.kind, event.at)
        elif isinstance(event, ImageSeeded):
            run.new_images += _seeded(conn, event, seq)
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
    conn.executemany(
        "INSERT INTO run_totals (run_id, requests, prompt_tokens, answer_tokens, "
        "thinking_tokens, new_images, last_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id) DO UPDATE SET requests = requests + excluded.requests, "
        "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
        "answer_tokens = answer_tokens + excluded.answer_tokens, "
        "thinking_tokens = thinking_tokens + excluded.thinking_tokens, "
        "new_images = new_images + excluded.new_images, "
        "last_at = MAX(COALESCE(last_at, excluded.last_at), excluded.last_at)",
        [(run_id, t.requests, t.prompt, t.answer, t.thinking, t.new_images, t.last_at)
         for run_id, t in totals.items()])
    return refused


class _Totals:
    """What a batch adds to a run's `run_totals` row."""

    def __init__(self) -> None:
        self.requests = self.prompt = self.answer = self.thinking = self.new_images = 0
        self.last_at = float("-inf")


def _seeded(conn: sqlite3.Connection, event: ImageSeeded, seq: int) -> int:
    """The image's latest seed; 1 when it is the image's first, else 0."""
    row = (seq, event.path, event.size, event.mtime_ns, event.sha256, event.width, event.height,
           input_hash(event.caption, event.extra), event.image_key, event.ingest, event.image_id)
    first = conn.execute(
        "INSERT OR IGNORE INTO images (seq, path, size, mtime_ns, sha256, width, height, "
        "input_hash, image_key, ingest, image_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        row).rowcount
    if not first:
        conn.execute(
            "UPDATE images SET seq = ?, path = ?, size = ?, mtime_ns = ?, sha256 = ?, width = ?, "
            "height = ?, input_hash = ?, image_key = ?, ingest = ? WHERE image_id = ?", row)
    return 1 if first else 0


def _complete(conn: sqlite3.Connection, event: StepCompleted, seq: int) -> bool:
    try:
        conn.execute(
            "INSERT INTO completions (step, image_id, fingerprint, generation, seq, output_hash, "
            "found) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.step, event.image_id, event.fingerprint, event.generation, seq,
             event.output_hash, event.found),
        )
    except sqlite3.IntegrityError:
        return False
    _set_current(conn, event.image_id, event.step, event.fingerprint, seq, event.output_hash,
                 event.found)
    _outcome(conn, event.image_id, event.step, seq, event.type, None, event.at)
    return True


def _select(conn: sqlite3.Connection, event: StepSelected, seq: int) -> None:
    row = conn.execute(
        "SELECT seq, output_hash, found FROM completions WHERE step = ? AND image_id = ? "
        "AND fingerprint = ? ORDER BY seq DESC LIMIT 1",
        (event.step, event.image_id, event.fingerprint),
    ).fetchone()
    if row is not None:
        _set_current(conn, event.image_id, event.step, event.fingerprint, row[0], row[1], row[2])
    _outcome(conn, event.image_id, event.step, seq, event.type, None, event.at)


def _set_current(conn: sqlite3.Connection, image_id: str, step: str, fingerprint: str, seq: int,
                 output_hash: str, found: int | None) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO current (image_id, step, fingerprint, seq, output_hash, found) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (image_id, step, fingerprint, seq, output_hash, found),
    )


def _outcome(conn: sqlite3.Connection, image_id: str, step: str, seq: int, type_: str,
             kind: str | None, at: float) -> None:
    """The (image, step)'s latest outcome: completed, selected again, or failed (`kind`)."""
    conn.execute("INSERT OR REPLACE INTO outcomes (image_id, step, seq, type, kind, at) "
                 "VALUES (?, ?, ?, ?, ?, ?)", (image_id, step, seq, type_, kind, at))
