"""One run per results_dir at a time: an advisory lock file beside the ledger.

The lock is an `flock` on `results_dir/.auto_label.lock`, which the operating system releases when
the holder dies, however it dies; a lock left by a killed run therefore never blocks the next one.
The file holds the holder's pid, host and start time, for the message that refuses a second
run and for `lock_holder`, which tells `auto_label status` whether a run is live.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from auto_label.errors import LedgerError, LedgerLockedError

LOCK_FILE = ".auto_label.lock"


@dataclass(frozen=True)
class LockHolder:
    """The run holding a results_dir's lock, as its lock file says (None: not written yet, in the
    instant between taking the lock and writing the file, or unreadable)."""

    pid: int | None
    host: str | None
    since: float | None
    """unix time the holder took the lock"""

    def describe(self) -> str:
        """`pid 123 on host`, or `pid unknown`."""
        if self.pid is None:
            return "pid unknown"
        return f"pid {self.pid} on {self.host or 'an unknown host'}"


def lock_holder(results_dir: str | Path) -> LockHolder | None:
    """The run holding the lock of `results_dir` (see `LockHolder`), or None when it is free.

    Read-only: the file is opened for reading (never created or truncated), and a shared lock is
    tried without blocking and dropped at once, so a free lock is held for microseconds only (a
    run starting in exactly that instant is refused as if another run held it). Raises
    LedgerError naming the file when it exists but cannot be opened.
    """
    path = Path(results_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read the lock file ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RunLock:
    def __init__(self, results_dir: Path) -> None:
        self.path = results_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise LedgerError(
                f"{self.path}: cannot create the lock file ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LedgerLockedError(
                f"{self.path.parent}: another auto_label run ({holder.describe()}) is using this "
                "results_dir; wait for it to end or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.time()}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> LockHolder:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return LockHolder(None, None, None)
    if not isinstance(info, dict):
        return LockHolder(None, None, None)
    pid, host, since = info.get("pid"), info.get("host"), info.get("since")
    return LockHolder(pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
                      host if isinstance(host, str) else None,
                      float(since) if isinstance(since, int | float)
                      and not isinstance(since, bool) else None)
