"""The ledger side of a run: the results_dir's lock, the run_started and run_finished events, and
the writer the workers record through.

The lock is taken before the ledger is opened (and migrated), so a newer tool never migrates a
ledger that an older run is writing.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Any, Literal

from auto_label.errors import LedgerError
from auto_label.ledger import queries
from auto_label.ledger.events import RunFinished, RunStarted
from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.lock import RunLock
from auto_label.ledger.store import Ledger, make_results_dir
from auto_label.ledger.writer import LedgerWriter, OnCommit
from auto_label.version import __version__

RunStatus = Literal["completed", "interrupted", "aborted"]


class RunSession:
    """Open with `RunSession.start(...)`; `finish(...)` records the end and releases everything."""

    def __init__(self, ledger: Ledger, lock: RunLock, writer: LedgerWriter,
                 started: RunStarted) -> None:
        self.ledger = ledger
        self.lock = lock
        self.writer = writer
        self.started = started

    @property
    def run_id(self) -> str:
        return self.started.run_id

    @property
    def number(self) -> int:
        """The run's number in its ledger (1 for the first): the prefix of its request ids."""
        number = queries.run_number(self.ledger.connection(), self.run_id)
        if number is None:  # not reached: start() records run_started before returning
            raise LedgerError(f"{self.ledger.path}: run {self.run_id} has no number")
        return number

    @property
    def generation(self) -> int:
        """The completions' generation of this run: 0, or a new one when it forces
        reprocessing (so that its completions do not collide with earlier ones)."""
        return self.started.generation

    @classmethod
    def start(cls, results_dir: Path, *, pipeline: str, steps: list[str], spec: dict[str, Any],
              backend: str, model: str, force: bool, on_commit: OnCommit | None = None,
              purpose: Literal["generate", "probe", "replay"] = "generate") -> RunSession:
        """Lock `results_dir`, open its ledger and record run_started. Raises LedgerError when the
        results_dir is unusable, locked by another run, or holds another pipeline's ledger."""
        make_results_dir(results_dir)
        lock = RunLock(results_dir).acquire()
        try:
            ledger = Ledger.open(results_dir)
        except BaseException:
            lock.release()
            raise
        try:
            _check_pipeline(ledger, pipeline)
            generation = queries.next_generation(ledger.connection()) if force else 0
            started = RunStarted(
                run_id=uuid.uuid4().hex, purpose=purpose, pipeline=pipeline, steps=steps, spec=spec,
                spec_fingerprint=content_hash(spec), tool_version=__version__, backend=backend,
                model=model, force_reprocess=force, generation=generation, pid=os.getpid(),
                host=socket.gethostname(), cwd=os.getcwd())
            ledger.append([started])
            writer = LedgerWriter(ledger.path, on_commit=on_commit)
        except BaseException:
            ledger.close()
            lock.release()
            raise
        return cls(ledger, lock, writer, started)

    def finish(self, status: RunStatus, counts: dict[str, dict[str, int]],
               message: str = "") -> None:
        """Commit what is queued, record run_finished (with `message`: why it stopped early,
        e.g. `max_cost`), release the ledger and the lock.

        Raises LedgerError when the writer failed (everything committed before stays)."""
        try:
            self.writer.close()
            self.ledger.append([RunFinished(run_id=self.run_id, status=status, summary=counts,
                                            message=message)])
        finally:
            self.ledger.close()
            self.lock.release()

    def close_on_error(self) -> None:
        """Release everything after an error, committing what the writer can."""
        try:
            self.writer.close()
        except LedgerError:
            pass
        finally:
            self.ledger.close()
            self.lock.release()


def _check_pipeline(ledger: Ledger, pipeline: str) -> None:
    event = ledger.latest("run_started")
    if isinstance(event, RunStarted) and event.pipeline != pipeline:
        raise LedgerError(
            f"{ledger.path}: this results_dir holds a {event.pipeline} ledger; "
            f"use another results_dir for {pipeline}"
        )
