"""One run per results_dir at a time: an advisory lock file beside the ledger.

The lock is an `flock` on `results_dir/.auto_label.lock`, which the operating system releases when
the holder dies, however it dies; a lock left by a killed run therefore never blocks the next one.
The file holds the holder's pid and host, for the message that refuses a second run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from auto_label.errors import LedgerError, LedgerLockedError

LOCK_FILE = ".auto_label.lock"


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
            holder = _describe_holder(fd)
            os.close(fd)
            raise LedgerLockedError(
                f"{self.path.parent}: another auto_label run ({holder}) is using this "
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


def _describe_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"
