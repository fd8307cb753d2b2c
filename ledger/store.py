"""The ledger file: opening (with migrations and sanity checks), appending, and reading back.

One SQLite file, `results_dir/ledger.db`, in WAL mode, created owner-only. Appends go through
`projections.append_batch` (events and projections in one transaction); reads through
`queries` (SQL) and `Ledger.events` & co. (typed events). One connection per thread.
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
from typing import Any, Generic, TypeVar, cast

from pydantic import ValidationError

from auto_label.errors import LedgerError
from auto_label.ledger import queries
from auto_label.ledger.events import Event, ImageSeeded, Row, StepCompleted, parse_event
from auto_label.ledger.migrations import MIGRATIONS, known_migrations
from auto_label.ledger.projections import append_batch

LEDGER_FILE = "ledger.db"
_Row = TypeVar("_Row", bound=tuple[Any, ...])
BUSY_TIMEOUT_MS = 30_000


def connect(path: Path) -> sqlite3.Connection:
    """A connection configured for the ledger: explicit transactions, busy timeout."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


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
        """Open (creating if asked) the ledger of `results_dir` and bring its schema up to date.

        Raises LedgerError (one line naming the file) when it is missing, not ours, written by a
        newer auto-label, or cannot be created.
        """
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
            tables = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                  "LIMIT 1").fetchone() is not None
            applied = MIGRATIONS.applied(conn) if tables else []
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: not an auto-label ledger ({exc})") from None
        if tables and not applied:  # refused before anything (WAL mode included) touches it
            raise LedgerError(f"{self.path}: an SQLite database, but not an auto-label ledger")
        unknown = [name for name in applied if name not in known_migrations()]
        if unknown:
            raise LedgerError(
                f"{self.path}: written by a newer auto-label (schema {unknown[-1]}); "
                "upgrade auto-label to use it"
            )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            if len(applied) < len(known_migrations()):
                MIGRATIONS.apply(conn)
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"{self.path}: cannot update the ledger schema ({exc})") from None

    # -- connections ---------------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection to the ledger."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
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

    def append(self, events: Sequence[Event]) -> list[StepCompleted]:
        """Append events in one transaction; returns the completions the unique key refused."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            refused = append_batch(conn, events)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return refused

    # -- reading (typed events; the SQL is in `queries`) ---------------------------------------

    def _parse(self, seq: int, body: str, row: Row | None = None,
               output_hash: str | None = None, fingerprint: str | None = None) -> Event:
        """The event of a body: with its row's columns (`row`, read by seq when not given and
        the body leaves them out), and, for a completion, the output hash and fingerprint a
        projection holds (so that its output is not hashed again; a completion that reads its
        request's answer under the request's fingerprint leaves its fingerprint to its row in
        `completions`, read by seq when not given)."""
        try:
            raw = json.loads(body)
            if isinstance(raw, dict):
                if row is None and "type" not in raw:
                    stored = queries.event_row(self.connection(), seq)
                    row = Row(*stored[1:7]) if stored is not None else None
                if output_hash is not None and "output_hash" not in raw:
                    raw["output_hash"] = output_hash
                if row is not None and row.type == "step_completed" and "type" not in raw \
                        and "fingerprint" not in raw:
                    found = fingerprint or queries.completion_fingerprint(self.connection(), seq)
                    if found is not None:
                        raw["fingerprint"] = found
            return parse_event(raw, row)
        except (ValueError, ValidationError, AttributeError) as exc:
            first = str(exc).splitlines()[0][:200]
            raise LedgerError(f"{self.path}: event {seq} is damaged ({first}); "
                              "see `auto_label status --check`") from None

    def _stored(self, row: queries.StoredRow, output_hash: str | None = None,
                fingerprint: str | None = None) -> Event:
        return self._parse(row[0], row[7], Row(*row[1:7]), output_hash, fingerprint)

    def parse_row(self, seq: int, body: str) -> Event:
        """An event's seq and body, as a query returned them -> its typed event (its row's
        columns read by seq when the body leaves them out). LedgerError naming the file and the
        seq when the body is damaged."""
        return self._parse(seq, body)

    def event(self, seq: int) -> Event:
        row = queries.event_row(self.connection(), seq)
        if row is None:
            raise LedgerError(f"{self.path}: no event {seq}")
        return self._stored(row)

    def completion(self, seq: int) -> StepCompleted:
        """The step_completed event at `seq`; LedgerError if it is anything else."""
        event = self.event(seq)
        if not isinstance(event, StepCompleted):
            raise LedgerError(f"{self.path}: event {seq} is a {event.type} event, not the "
                              "step_completed event a projection points at; see "
                              "`auto_label status --check`")
        return event

    def events(self, types: Iterable[str] | None = None, *, image_id: str | None = None,
               after: int = 0) -> Iterator[tuple[int, Event]]:
        """(seq, event) in ledger order, optionally of some types or of one image."""
        for row in queries.event_rows(self.connection(), types, image_id=image_id,
                                      after=after):
            yield row[0], self._stored(row)

    def image_histories(self) -> Iterator[tuple[str, list[Event]]]:
        """Each image's record-making events, image by image in id order, each list in order."""
        current_id: str | None = None
        batch: list[Event] = []
        for row in queries.image_history_rows(self.connection()):
            image_id = row[4]
            if image_id != current_id and batch:
                yield current_id or "", batch
                batch = []
            current_id = image_id
            batch.append(self._stored(row))
        if batch:
            yield current_id or "", batch

    def shown(self, image_ids: Sequence[str] | None = None) -> Iterator[Shown]:
        """What each seeded image's record is made of, image by image in id order (of
        `image_ids` only when given): its latest seed, the completions its record shows, the
        steps whose latest outcome is a failure. Read from the projections, three ordered
        cursors merged, so memory stays flat whatever the ledger's size."""
        conn = self.connection()
        completions = _Peek(queries.current_rows(conn, image_ids))
        failures = _Peek(queries.failed_rows(conn, image_ids))
        for image_id, *stored in queries.seed_rows(conn, image_ids):
            seed = self._stored(cast(queries.StoredRow, tuple(stored)))
            if not isinstance(seed, ImageSeeded):
                raise LedgerError(f"{self.path}: event {stored[0]} is a {seed.type} event, not "
                                  "the image_seeded event a projection points at; see "
                                  "`auto_label status --check`")
            current = [self._completion(row[3:], row[1], row[2])
                       for row in completions.take(image_id)]
            yield Shown(image_id, seed, current, frozenset(row[1] for row in
                                                           failures.take(image_id)))

    def completion_of(self, seq: int, body: str) -> StepCompleted:
        """The step_completed event of a seq and body; LedgerError if it is anything else."""
        return self._checked_completion(seq, self._parse(seq, body))

    def _completion(self, row: queries.StoredRow, output_hash: str,
                    fingerprint: str) -> StepCompleted:
        return self._checked_completion(row[0], self._stored(row, output_hash, fingerprint))

    def _checked_completion(self, seq: int, event: Event) -> StepCompleted:
        if not isinstance(event, StepCompleted):
            raise LedgerError(f"{self.path}: event {seq} is a {event.type} event, not the "
                              "step_completed event a projection points at; see "
                              "`auto_label status --check`")
        return event

    def latest(self, type_: str) -> Event | None:
        """The newest event of a type."""
        row = queries.latest_event_row(self.connection(), type_)
        return self._stored(row) if row is not None else None

    def count(self, type_: str | None = None) -> int:
        return queries.count_events(self.connection(), type_)


@dataclass(frozen=True)
class Shown:
    """What an image's record is made of (`Ledger.shown`)."""

    image_id: str
    seed: ImageSeeded
    current: list[StepCompleted]
    """the completions its record shows, in step order"""
    failed: frozenset[str]
    """steps whose latest outcome is a failure"""


class _Peek(Generic[_Row]):
    """An iterator of rows ordered by their first column, taken one key at a time."""

    def __init__(self, rows: Iterator[_Row]) -> None:
        self._rows = rows
        self._next: _Row | None = next(rows, None)

    def take(self, key: str) -> list[_Row]:
        """The rows whose first column is `key` (those before it, left behind, are skipped)."""
        taken: list[_Row] = []
        while self._next is not None and self._next[0] <= key:
            if self._next[0] == key:
                taken.append(self._next)
            self._next = next(self._rows, None)
        return taken


def make_results_dir(results_dir: Path) -> None:
    """Create the results directory (and its parents). Raises LedgerError naming it."""
    if results_dir.exists() and not results_dir.is_dir():
        raise LedgerError(f"{results_dir}: results_dir is not a directory")
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise LedgerError(f"{results_dir}: results_dir is not a directory") from None
    except PermissionError:
        raise LedgerError(f"{results_dir}: results_dir is not writable") from None
    except OSError as exc:
        raise LedgerError(f"{results_dir}: cannot create results_dir ({exc.strerror})") from None


def _create_file(results_dir: Path, path: Path) -> None:
    """Create the results directory and an empty, owner-only ledger file."""
    make_results_dir(results_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        return
    except PermissionError:
        raise LedgerError(f"{results_dir}: results_dir is not writable") from None
    except OSError as exc:
        raise LedgerError(f"{results_dir}: cannot create the ledger ({exc.strerror})") from None
