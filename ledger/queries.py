"""Every read query of the ledger, in one place: projections, the event log, and the aggregates
`status` shows. Functions of a connection; they return rows and plain values, never parsed events
(`Ledger` parses, naming the file when a body is damaged). An event is read as its `StoredRow`:
its columns with its body, since a compact body leaves out what the columns hold.

A damaged event body reads as NULL in the aggregates (`_BODY`), not as an error: `status` must work
on a ledger that `status --check` is about to report.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from auto_label.ledger.events import IMAGE_EVENT_TYPES

_BODY = "IIF(json_valid(body), body, NULL)"
STORED = "e.seq, e.type, e.v, e.run_id, e.image_id, e.step, e.at, e.body"
"""The columns of a `StoredRow`, of the events table as `e`."""
StoredRow = tuple[int, str, int, str, str | None, str | None, float, str]
"""An event as stored: (seq, type, v, run_id, image_id, step, at, body); `Row(*row[1:7])` are
the columns a compact body leaves out."""
OUTCOME_TYPES = ("step_completed", "step_selected", "step_failed")
"""The events that end an (image, step) attempt: done (completed or selected again), or failed."""


@dataclass(frozen=True)
class ImageRow:
    """The latest seed of an image, as the `images` projection holds it."""

    image_id: str
    seq: int
    path: str
    size: int
    mtime_ns: int
    sha256: str
    width: int
    height: int
    """of the upright image: the frame its boxes are stored in"""
    input_hash: str
    image_key: str | None
    """what the model is shown (`ImageSeeded.image_key`); None for a 0.1.0 seed"""
    ingest: str | None
    """how it was ingested; None for a 0.1.0 seed"""


@dataclass(frozen=True)
class CurrentRow:
    """The completion of a step that the image's record currently shows."""

    fingerprint: str
    seq: int
    output_hash: str


@dataclass(frozen=True)
class RunRow:
    run_id: str
    number: int
    started_at: float
    finished_at: float | None
    status: str | None


@dataclass(frozen=True)
class Outcome:
    """The latest outcome of an (image, step): its event type, and the failure kind if failed."""

    type: str
    kind: str | None

    @property
    def failed(self) -> bool:
        return self.type == "step_failed"


# -- projections -------------------------------------------------------------------------------

def images(conn: sqlite3.Connection) -> dict[str, ImageRow]:
    rows = conn.execute(
        "SELECT image_id, seq, path, size, mtime_ns, sha256, width, height, input_hash, "
        "image_key, ingest FROM images")
    return {row[0]: ImageRow(*row) for row in rows}


def completions(conn: sqlite3.Connection) -> dict[tuple[str, str, str], tuple[int, str]]:
    """(image_id, step, fingerprint) -> (seq, output hash) of its newest completion."""
    rows = conn.execute(
        "SELECT image_id, step, fingerprint, seq, output_hash FROM completions ORDER BY seq")
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}


def _listed(values: Sequence[str]) -> str:
    """A list of strings as one parameter, for `IN (SELECT value FROM json_each(?))`."""
    return json.dumps(list(values), ensure_ascii=False)


_IN_LIST = "IN (SELECT value FROM json_each(?))"


def images_of(conn: sqlite3.Connection, image_ids: Sequence[str]) -> dict[str, ImageRow]:
    """`images`, of these images only (one indexed lookup each)."""
    rows = conn.execute(
        "SELECT image_id, seq, path, size, mtime_ns, sha256, width, height, input_hash, "
        f"image_key, ingest FROM images WHERE image_id {_IN_LIST}", (_listed(image_ids),))
    return {row[0]: ImageRow(*row) for row in rows}


def completions_of(conn: sqlite3.Connection, image_ids: Sequence[str],
                   steps: Sequence[str]) -> dict[tuple[str, str, str], tuple[int, str]]:
    """`completions`, of these images and steps only (through the table's key)."""
    rows = conn.execute(
        "SELECT image_id, step, fingerprint, seq, output_hash FROM completions "
        f"WHERE step {_IN_LIST} AND image_id {_IN_LIST} ORDER BY seq",
        (_listed(steps), _listed(image_ids)))
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}


def current_of(conn: sqlite3.Connection,
               image_ids: Sequence[str]) -> dict[tuple[str, str], CurrentRow]:
    """`current`, of these images only."""
    rows = conn.execute("SELECT image_id, step, fingerprint, seq, output_hash FROM current "
                        f"WHERE image_id {_IN_LIST}", (_listed(image_ids),))
    return {(r[0], r[1]): CurrentRow(r[2], r[3], r[4]) for r in rows}


def completion_rows(conn: sqlite3.Connection) -> dict[int, tuple[str, str, str, int, str]]:
    """seq -> (step, image_id, fingerprint, generation, output hash): the raw unique-key table."""
    rows = conn.execute(
        "SELECT seq, step, image_id, fingerprint, generation, output_hash FROM completions")
    return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}


def current(conn: sqlite3.Connection) -> dict[tuple[str, str], CurrentRow]:
    """(image_id, step) -> the completion its record shows now."""
    rows = conn.execute("SELECT image_id, step, fingerprint, seq, output_hash FROM current")
    return {(r[0], r[1]): CurrentRow(r[2], r[3], r[4]) for r in rows}


def runs(conn: sqlite3.Connection) -> list[RunRow]:
    rows = conn.execute(
        "SELECT run_id, number, started_at, finished_at, status FROM runs ORDER BY number")
    return [RunRow(*row) for row in rows]


def completion_fingerprint(conn: sqlite3.Connection, seq: int) -> str | None:
    """The fingerprint of the completion at event `seq`, as its `completions` row holds it."""
    row = conn.execute("SELECT fingerprint FROM completions WHERE seq = ?", (seq,)).fetchone()
    return str(row[0]) if row is not None else None


def run_number(conn: sqlite3.Connection, run_id: str) -> int | None:
    """The number of run `run_id` in the ledger (1 for its first run), or None when it has not
    started here."""
    row = conn.execute("SELECT number FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return int(row[0]) if row is not None else None


def next_generation(conn: sqlite3.Connection) -> int:
    """A completion generation no completion uses yet (for a run that forces reprocessing)."""
    return int(conn.execute(
        "SELECT COALESCE(MAX(generation), 0) + 1 FROM completions").fetchone()[0])


def completed_per_step(conn: sqlite3.Connection) -> dict[str, int]:
    """step -> images with a current completion."""
    return {step: int(n) for step, n in
            conn.execute("SELECT step, COUNT(*) FROM current GROUP BY step")}


def nothing_found_per_step(conn: sqlite3.Connection) -> dict[str, int]:
    """step -> images whose current completion found nothing (an explicit empty answer)."""
    return {step: int(n) for step, n in conn.execute(
        "SELECT step, COUNT(*) FROM current WHERE found = 0 GROUP BY step")}


def image_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])


# -- the event log -----------------------------------------------------------------------------

def event_row(conn: sqlite3.Connection, seq: int) -> StoredRow | None:
    row = conn.execute(f"SELECT {STORED} FROM events e WHERE seq = ?", (seq,)).fetchone()
    return tuple(row) if row is not None else None


def event_rows(conn: sqlite3.Connection, types: Iterable[str] | None = None, *,
               image_id: str | None = None, after: int = 0) -> Iterator[StoredRow]:
    """Events in ledger order, optionally of some types or of one image."""
    sql = f"SELECT {STORED} FROM events e WHERE seq > ?"
    params: list[object] = [after]
    if types is not None:
        kinds = list(types)
        sql += f" AND type IN ({','.join('?' * len(kinds))})"
        params.extend(kinds)
    if image_id is not None:
        sql += " AND image_id = ?"
        params.append(image_id)
    yield from conn.execute(sql + " ORDER BY seq", params)


def all_event_rows(conn: sqlite3.Connection) -> Iterator[StoredRow]:
    """Every event, in order (for the integrity check)."""
    yield from conn.execute(f"SELECT {STORED} FROM events e ORDER BY seq")


def latest_event_row(conn: sqlite3.Connection, type_: str) -> StoredRow | None:
    row = conn.execute(f"SELECT {STORED} FROM events e WHERE type = ? ORDER BY seq DESC "
                       "LIMIT 1", (type_,)).fetchone()
    return tuple(row) if row is not None else None


def image_history_rows(conn: sqlite3.Connection) -> Iterator[StoredRow]:
    """The record-making events, image by image in id order (the image id is `row[4]`)."""
    yield from conn.execute(
        f"SELECT {STORED} FROM events e WHERE image_id IS NOT NULL AND type IN "
        f"({','.join('?' * len(IMAGE_EVENT_TYPES))}) ORDER BY image_id, seq",
        IMAGE_EVENT_TYPES,
    )


def seed_rows(conn: sqlite3.Connection, image_ids: Sequence[str] | None = None
              ) -> Iterator[tuple[str, int, str, int, str, str | None, str | None, float, str]]:
    """(image_id, *StoredRow) of each image's latest seed (the `images` projection), in image id
    order; of `image_ids` only when given."""
    where = f"WHERE i.image_id {_IN_LIST} " if image_ids is not None else ""
    return conn.execute(  # a cursor: left unread, it is not closed late
        f"SELECT i.image_id, {STORED} FROM images i JOIN events e ON e.seq = i.seq {where}"
        "ORDER BY i.image_id", () if image_ids is None else (_listed(image_ids),))


def current_rows(conn: sqlite3.Connection, image_ids: Sequence[str] | None = None
                 ) -> Iterator[tuple[str, str, str, int, str, int, str, str | None, str | None,
                                     float, str]]:
    """(image_id, output hash, fingerprint, *StoredRow) of the completions the records show
    (`current`), in image id and step order; of `image_ids` only when given. The output hash is
    the one the completion event holds, or derives from its output (`StepCompleted.expand`), and
    the fingerprint the one it holds or its request's: given here, a reader need not hash the
    output again nor look the fingerprint up."""
    where = f"WHERE c.image_id {_IN_LIST} " if image_ids is not None else ""
    return conn.execute(  # a cursor: left unread, it is not closed late
        f"SELECT c.image_id, c.output_hash, c.fingerprint, {STORED} FROM current c JOIN events e "
        f"ON e.seq = c.seq {where}ORDER BY c.image_id, c.step",
        () if image_ids is None else (_listed(image_ids),))


def failed_rows(conn: sqlite3.Connection,
                image_ids: Sequence[str] | None = None) -> Iterator[tuple[str, str]]:
    """(image_id, step) whose latest outcome is a failure (`outcomes`), in image id order."""
    where = f"AND image_id {_IN_LIST} " if image_ids is not None else ""
    return conn.execute(  # a cursor: left unread, it is not closed late
        f"SELECT image_id, step FROM outcomes WHERE type = 'step_failed' {where}"
        "ORDER BY image_id, step", () if image_ids is None else (_listed(image_ids),))


def touched_since(conn: sqlite3.Connection, seq: int) -> list[str]:
    """The images with an event after `seq`, in id order (read through the seq range)."""
    return sorted({str(row[0]) for row in conn.execute(
        "SELECT image_id FROM events WHERE seq > ?", (seq,)) if row[0] is not None})


def last_seq(conn: sqlite3.Connection) -> int:
    """The newest event's seq (0 for an empty ledger)."""
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])


def count_events(conn: sqlite3.Connection, type_: str | None = None) -> int:
    if type_ is None:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    return int(conn.execute("SELECT COUNT(*) FROM events WHERE type = ?", (type_,)).fetchone()[0])


# -- outcomes and aggregates -------------------------------------------------------------------

def latest_outcomes(conn: sqlite3.Connection) -> dict[tuple[str, str], Outcome]:
    """(image_id, step) -> its latest outcome: completed, selected again, or failed (with kind).

    The one query for "did the last attempt at this step fail", used by `--retry-failed` and
    `status` alike (the `outcomes` projection).
    """
    return {(image_id, step): Outcome(kind, failure if kind == "step_failed" else None)
            for image_id, step, kind, failure in conn.execute(
                "SELECT image_id, step, type, kind FROM outcomes")}


def failed_images(conn: sqlite3.Connection) -> set[str]:
    """Images whose latest outcome at some step is a failure."""
    return {str(row[0]) for row in conn.execute(
        "SELECT DISTINCT image_id FROM outcomes WHERE type = 'step_failed'")}


def attempt_failures(conn: sqlite3.Connection) -> Counter[str]:
    """Failed attempts (retried or not) by kind."""
    return Counter({str(kind): int(n) for kind, n in conn.execute(
        f"SELECT json_extract({_BODY}, '$.kind'), COUNT(*) FROM events "
        "WHERE type = 'attempt_failed' GROUP BY 1")})


def token_totals(conn: sqlite3.Connection) -> dict[str, int]:
    """Tokens of every recorded response: prompt, answer and thinking (`run_totals`)."""
    prompt, answer, thinking = conn.execute(
        "SELECT SUM(prompt_tokens), SUM(answer_tokens), SUM(thinking_tokens) FROM run_totals"
    ).fetchone()
    return {"prompt": int(prompt or 0), "answer": int(answer or 0),
            "thinking": int(thinking or 0)}


def request_count(conn: sqlite3.Connection) -> int:
    """Requests every run sent (`run_totals`)."""
    return int(conn.execute("SELECT COALESCE(SUM(requests), 0) FROM run_totals").fetchone()[0])


def run_warnings(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
    """(run number, kind, message) of every warning runs recorded (run_warning events), in
    order: they stay true of the completions those runs made, cached by later runs."""
    return [(int(number), str(kind), str(message)) for number, kind, message in conn.execute(
        f"SELECT r.number, json_extract({_BODY.replace('body', 'e.body')}, '$.kind'), "
        f"json_extract({_BODY.replace('body', 'e.body')}, '$.message') FROM events e "
        "JOIN runs r ON r.run_id = e.run_id WHERE e.type = 'run_warning' ORDER BY e.seq")]


def suspect_current(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    """(run number, current completions it made) for the runs that warned their boxes look like
    another convention: those boxes are still what the records show."""
    return [(int(number), int(n)) for number, n in conn.execute(
        "SELECT r.number, COUNT(*) FROM current c JOIN events e ON e.seq = c.seq "
        "JOIN runs r ON r.run_id = e.run_id WHERE e.run_id IN ("
        f"  SELECT run_id FROM events WHERE type = 'run_warning' "
        f"  AND json_extract({_BODY}, '$.kind') = 'convention') "
        "GROUP BY r.number ORDER BY r.number")]
