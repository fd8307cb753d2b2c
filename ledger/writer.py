"""The single writer: a background thread that commits queued events in batched transactions.

Workers call `put(*events)` and go on at once; the events of one `put` always land in the same
transaction (a response and the completion parsed from it are never split). The writer commits
whatever is queued every `interval` seconds (50 ms), so a kill loses at most that fraction of a
second of responses, and the workers never wait on SQLite.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from auto_label.errors import LedgerError
from auto_label.ledger.events import Event, StepCompleted
from auto_label.ledger.projections import append_batch
from auto_label.ledger.store import connect

OnCommit = Callable[[list[Event], list[StepCompleted]], None]
"""Called (in the writer's thread) after each commit with the events stored and the completions
the unique key refused."""


class LedgerWriter:
    """Owns one connection; `close()` commits what is queued and stops the thread.

    `put` appends to a deque under a lock held for two operations (no thread is woken per
    event); the writer wakes every `interval` seconds, or at once for `flush`/`close`, and
    commits everything pending in the order it was put.
    """

    def __init__(self, path: Path, *, interval: float = 0.05, max_batch: int = 5000,
                 on_commit: OnCommit | None = None) -> None:
        self.path = path
        self.interval = interval
        self.max_batch = max_batch
        self.refused: list[StepCompleted] = []
        self._on_commit = on_commit
        self._pending: deque[tuple[int, tuple[Event, ...]]] = deque()
        self._put_lock = threading.Lock()
        self._tickets = 0
        self._committed_ticket = 0
        self._committed = threading.Condition()
        self._wake = threading.Event()
        self._closing = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def put(self, *events: Event) -> int:
        """Queue events to be committed together; returns their ticket for `flush`."""
        if self._error is not None:
            self._raise_if_failed()
        with self._put_lock:  # tickets and queue order agree
            self._tickets += 1
            ticket = self._tickets
            self._pending.append((ticket, events))
        return ticket

    def flush(self, ticket: int | None = None, timeout: float | None = None) -> None:
        """Block until the events of `ticket` (default: everything queued so far) are committed.

        Raises LedgerError if writing failed.
        """
        target = self._tickets if ticket is None else ticket
        self._wake.set()
        with self._committed:
            self._committed.wait_for(
                lambda: self._committed_ticket >= target or self._error is not None, timeout)
        self._raise_if_failed()

    def close(self) -> None:
        """Commit what is queued, then stop. Raises LedgerError if writing failed."""
        self._closing = True
        self._wake.set()
        self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise LedgerError(f"{self.path}: writing the ledger failed: {self._error}")

    def _run(self) -> None:
        try:
            conn = connect(self.path)
        except sqlite3.Error as exc:
            self._fail(exc)
            return
        try:
            while True:
                self._wake.wait(self.interval)
                self._wake.clear()
                closing = self._closing
                while self._pending:
                    groups: list[tuple[int, tuple[Event, ...]]] = []
                    size = 0
                    while self._pending and size < self.max_batch:
                        group = self._pending.popleft()
                        groups.append(group)
                        size += len(group[1])
                    self._commit(conn, groups)
                if closing:
                    return
        except BaseException as exc:
            self._fail(exc)
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection,
                groups: list[tuple[int, tuple[Event, ...]]]) -> None:
        events = [event for _, group in groups for event in group]
        conn.execute("BEGIN IMMEDIATE")
        try:
            refused = append_batch(conn, events)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.refused.extend(refused)
        with self._committed:
            self._committed_ticket = groups[-1][0]
            self._committed.notify_all()
        if self._on_commit is not None:
            stored = events if not refused else [
                e for e in events if all(e is not r for r in refused)]
            self._on_commit(stored, refused)

    def _fail(self, exc: BaseException) -> None:
        with self._committed:
            self._error = exc
            self._committed.notify_all()
