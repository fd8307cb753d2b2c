"""The ledger file: opening (with migrations and sanity checks), appending, and reading back.

One SQLite file, `results_dir/ledger.db`, in WAL mode, created owner-only. Appends go through
`append_batch`, used both by the background `LedgerWriter` and by direct `Ledger.append` calls; it
writes the events and their projections in one transaction. Reads use one connection per thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlite_utils import Database

from auto_label.errors import LedgerError
from auto_label.ledger.events import (
    IMAGE_EVENT_TYPES,
    Event,
    ImageSeeded,
    StepCompleted,
    StepSelected,
    parse_event,
)
from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.migrations import MIGRATIONS, known_migrations

LEDGER_FILE = "ledger.db"
BUSY_TIMEOUT_MS = 30_000


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
    input_hash: str


@dataclass(frozen=True)
class CurrentRow:
    """The completion of a step that the image's record currently shows."""

    fingerprint: str
    seq: int
    output_hash: str


def connect(path: Path) -> sqlite3.Connection:
    """A connection configured for the ledger: explicit transactions, WAL, busy timeout."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def input_hash(caption: str | None, extra: dict[str, Any]) -> str:
    """What, besides the file, a seed depends on: its caption and extra inputs."""
    return content_hash({"caption": caption, "extra": extra})


_INSERT_EVENT = (
    "INSERT INTO events (type, v, run_id, image_id, step, at, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _row(event: Event) -> tuple[object, ...]:
    return (event.type, event.v, event.run_id, getattr(event, "image_id", None),
            getattr(event, "step", None), event.at, event.model_dump_json())


def append_batch(conn: sqlite3.Connection, events: Sequence[Event]) -> int:
    """Append events and update the projections, inside the caller's transaction.

    Runs of plain events go in with one `executemany`; events that update a projection go one by
    one. Returns how many step completions were refused as duplicates (their events are not
    stored).
    """
    refused = 0
    plain: list[tuple[object, ...]] = []
    for event in events:
        if not isinstance(event, StepCompleted | StepSelected | ImageSeeded):
            plain.append(_row(event))
            continue
        if plain:
            conn.executemany(_INSERT_EVENT, plain)
            plain = []
        seq = conn.execute(_INSERT_EVENT, _row(event)).lastrowid
        if isinstance(event, StepCompleted):
            try:
                conn.execute(
                    "INSERT INTO completions "
                    "(step, image_id, fingerprint, generation, seq, output_hash) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (event.step, event.image_id, event.fingerprint, event.generation, seq,
                     event.output_hash),
                )
            except sqlite3.IntegrityError:
                conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
                refused += 1
                continue
            _set_current(conn, event.image_id, event.step, event.fingerprint, seq,
                         event.output_hash)
        elif isinstance(event, StepSelected):
            row = conn.execute(
                "SELECT seq, output_hash FROM completions WHERE step = ? AND image_id = ? "
                "AND fingerprint = ? ORDER BY seq DESC LIMIT 1",
                (event.step, event.image_id, event.fingerprint),
            ).fetchone()
            if row is not None:
                _set_current(conn, event.image_id, event.step, event.fingerprint, row[0], row[1])
        else:
            conn.execute(
                "INSERT OR REPLACE INTO images "
                "(image_id, seq, path, size, mtime_ns, sha256, width, height, input_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event.image_id, seq, event.path, event.size, event.mtime_ns, event.sha256,
                 event.width, event.height, input_hash(event.caption, event.extra)),
            )
    if plain:
        conn.executemany(_INSERT_EVENT, plain)
    return refused


def _set_current(conn: sqlite3.Connection, image_id: str, step: str, fingerprint: str, seq: int,
                 output_hash: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO current (image_id, step, fingerprint, seq, output_hash) "
        "VALUES (?, ?, ?, ?, ?)",
        (image_id, step, fingerprint, seq, output_hash),
    )


class Ledger:
    """A results directory's ledger. Open with `Ledger.open`; close when done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, results_dir: str | Path, *, create: bool = True) -> Ledger:
        """Open (creating if asked) the ledger of `results_dir` and bring its schema up to date."""
        results_dir = Path(results_dir)
        path = results_dir / LEDGER_FILE
        if results_dir.exists() and not results_dir.is_dir():
            raise LedgerError(f"{results_dir}: results_dir is not a directory")
        if not path.exists():
            if not create:
                raise LedgerError(f"{path}: no ledger here (has a run been started?)")
            _create_file(results_dir, path)
        ledger = cls(path)
        try:
            ledger._migrate()
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _migrate(self) -> None:
        conn = self.connection()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            db = Database(conn)
            tables = set(db.table_names())
            applied = [m.name for m in MIGRATIONS.applied(db)]
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: not an auto-label ledger ({exc})") from None
        if tables and not applied:
            raise LedgerError(f"{self.path}: an SQLite database, but not an auto-label ledger")
        unknown = [name for name in applied if name not in known_migrations()]
        if unknown:
            raise LedgerError(
                f"{self.path}: written by a newer auto-label (schema {unknown[-1]}); "
                "upgrade auto-label to use it"
            )
        try:
            MIGRATIONS.apply(db)
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"{self.path}: cannot update the ledger schema ({exc})") from None

    # -- connections ---------------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection to the ledger."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = connect(self.path)
            except sqlite3.OperationalError as exc:
                raise LedgerError(f"{self.path}: cannot open the ledger ({exc})") from None
            except sqlite3.DatabaseError as exc:
                raise LedgerError(f"{self.path}: not an auto-label ledger ({exc})") from None
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> int:
        """Append events in one transaction (see `append_batch`)."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            refused = append_batch(conn, events)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return refused

    def start_run(self, run_id: str, started_at: float) -> int:
        """Register a run and return its number (1, 2, ...)."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            (number,) = conn.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM runs").fetchone()
            conn.execute("INSERT INTO runs (run_id, number, started_at) VALUES (?, ?, ?)",
                         (run_id, number, started_at))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return int(number)

    def finish_run(self, run_id: str, finished_at: float, status: str) -> None:
        self.connection().execute(
            "UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?",
            (finished_at, status, run_id),
        )

    # -- reading -------------------------------------------------------------------------------

    def images(self) -> dict[str, ImageRow]:
        rows = self.connection().execute(
            "SELECT image_id, seq, path, size, mtime_ns, sha256, width, height, input_hash "
            "FROM images"
        )
        return {row[0]: ImageRow(*row) for row in rows}

    def completions(self) -> dict[tuple[str, str, str], tuple[int, str]]:
        """(image_id, step, fingerprint) -> (seq, output hash) of its newest completion."""
        rows = self.connection().execute(
            "SELECT image_id, step, fingerprint, seq, output_hash FROM completions ORDER BY seq"
        )
        return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}

    def current(self) -> dict[tuple[str, str], CurrentRow]:
        """(image_id, step) -> the completion its record shows now."""
        rows = self.connection().execute(
            "SELECT image_id, step, fingerprint, seq, output_hash FROM current"
        )
        return {(r[0], r[1]): CurrentRow(r[2], r[3], r[4]) for r in rows}

    def _parse(self, seq: int, body: str) -> Event:
        try:
            return parse_event(json.loads(body))
        except (ValueError, ValidationError) as exc:
            first = str(exc).splitlines()[0][:200]
            raise LedgerError(f"{self.path}: event {seq} is damaged ({first}); "
                              "see `auto_label status --check`") from None

    def event(self, seq: int) -> Event:
        row = self.connection().execute("SELECT body FROM events WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise LedgerError(f"{self.path}: no event {seq}")
        return self._parse(seq, row[0])

    def events(self, types: Iterable[str] | None = None, *, image_id: str | None = None,
               after: int = 0) -> Iterator[tuple[int, Event]]:
        """(seq, event) in ledger order, optionally of some types or of one image."""
        sql = "SELECT seq, body FROM events WHERE seq > ?"
        params: list[object] = [after]
        if types is not None:
            kinds = list(types)
            sql += f" AND type IN ({','.join('?' * len(kinds))})"
            params.extend(kinds)
        if image_id is not None:
            sql += " AND image_id = ?"
            params.append(image_id)
        for seq, body in self.connection().execute(sql + " ORDER BY seq", params):
            yield seq, self._parse(seq, body)

    def image_histories(self) -> Iterator[tuple[str, list[Event]]]:
        """Each image's record-making events, image by image in id order, each list in order."""
        rows = self.connection().execute(
            f"SELECT image_id, seq, body FROM events WHERE image_id IS NOT NULL AND type IN "
            f"({','.join('?' * len(IMAGE_EVENT_TYPES))}) ORDER BY image_id, seq",
            IMAGE_EVENT_TYPES,
        )
        current_id: str | None = None
        batch: list[Event] = []
        for image_id, seq, body in rows:
            if image_id != current_id and batch:
                yield current_id or "", batch
                batch = []
            current_id = image_id
            batch.append(self._parse(seq, body))
        if batch:
            yield current_id or "", batch

    def failed_images(self) -> set[str]:
        """Images whose latest outcome at some step is a failure (no completion after it)."""
        rows = self.connection().execute(
            "SELECT image_id, step, type FROM events WHERE type IN ('step_failed', "
            "'step_completed') AND image_id IS NOT NULL ORDER BY seq"
        )
        latest: dict[tuple[str, str], str] = {}
        for image_id, step, kind in rows:
            latest[(image_id, step)] = kind
        return {image for (image, _), kind in latest.items() if kind == "step_failed"}

    def latest(self, type_: str) -> Event | None:
        """The newest event of a type."""
        row = self.connection().execute(
            "SELECT seq, body FROM events WHERE type = ? ORDER BY seq DESC LIMIT 1", (type_,)
        ).fetchone()
        return self._parse(row[0], row[1]) if row is not None else None

    def count(self, type_: str | None = None) -> int:
        if type_ is None:
            return int(self.connection().execute("SELECT COUNT(*) FROM events").fetchone()[0])
        return int(self.connection().execute(
            "SELECT COUNT(*) FROM events WHERE type = ?", (type_,)).fetchone()[0])


def _create_file(results_dir: Path, path: Path) -> None:
    """Create the results directory and an empty, owner-only ledger file."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        return
    except NotADirectoryError:
        raise LedgerError(f"{results_dir}: results_dir is not a directory") from None
    except PermissionError:
        raise LedgerError(f"{results_dir}: results_dir is not writable") from None
    except OSError as exc:
        raise LedgerError(f"{results_dir}: cannot create the ledger ({exc.strerror})") from None
