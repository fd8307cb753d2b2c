"""The single writer: a background thread that commits queued events in batched transactions.

Workers call `put(*events)` and go on at once; the events of one `put` always land in the same
transaction (a response and the completion parsed from it are never split). The writer commits
whatever is queued at least every `interval` seconds, so a kill loses at most that fraction of a
second of responses, and the workers never wait on SQLite.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from auto_label.ledger.events import Event
from auto_label.ledger.store import append_batch, connect

from auto_label.errors import LedgerError

_STOP = object()


class LedgerWriter:
    """Owns one connection; `close()` commits what is queued and stops the thread."""

    def __init__(self, path: Path, *, interval: float = 0.05, max_batch: int = 2000,
                 on_commit: Callable[[list[Event]], None] | None = None) -> None:
        self.path = path
        self.interval = interval
        self.max_batch = max_batch
        self.refused = 0
        self._on_commit = on_commit
        self._queue: queue.Queue[object] = queue.Queue()
        self._error: BaseException | None = None
        self._committed = threading.Condition()
        self._put_count = 0
        self._commit_count = 0
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def put(self, *events: Event) -> None:
        """Queue events to be committed together."""
        self._raise_if_failed()
        with self._committed:
            self._put_count += 1
        self._queue.put(events)

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything queued so far is committed."""
        with self._committed:
            target = self._put_count
            self._committed.wait_for(
                lambda: self._commit_count >= target or self._error is not None, timeout)
        self._raise_if_failed()

    def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
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
            stopping = False
            while not stopping:
                groups: list[tuple[Event, ...]] = []
                first = self._queue.get()
                if first is _STOP:
                    stopping = True
                else:
                    groups.append(first)  # type: ignore[arg-type]
                deadline = time.monotonic() + self.interval
                while not stopping and sum(len(g) for g in groups) < self.max_batch:
                    remaining = deadline - time.monotonic()
                    try:
                        item = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 \
                            else self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                    else:
                        groups.append(item)  # type: ignore[arg-type]
                if groups:
                    self._commit(conn, groups)
        except BaseException as exc:
            self._fail(exc)
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, groups: list[tuple[Event, ...]]) -> None:
        events = [event for group in groups for event in group]
        conn.execute("BEGIN IMMEDIATE")
        try:
            self.refused += append_batch(conn, events)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        with self._committed:
            self._commit_count += len(groups)
            self._committed.notify_all()
        if self._on_commit is not None:
            self._on_commit(events)

    def _fail(self, exc: BaseException) -> None:
        with self._committed:
            self._error = exc
            self._committed.notify_all()
