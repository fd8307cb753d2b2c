"""Writing a file so that readers see the old one or the new one, never half of either: a
temporary file in the same folder, then a rename over the target."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO


def write_atomic(path: Path, chunks: Iterable[str], *, durable: bool = False) -> None:
    """Write the chunks to `path` atomically; `durable` also fsyncs before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(chunk)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class AtomicTextFile:
    """A text file written line by line that appears at `path` only on `commit()` (with fsync
    when `durable`); `discard()` leaves the previous file untouched."""

    def __init__(self, path: Path, *, durable: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.durable = durable
        fd, self._tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        self._handle: IO[str] = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, text: str) -> None:
        self._handle.write(text)

    def commit(self) -> None:
        try:
            if self.durable:
                self._handle.flush()
                os.fsync(self._handle.fileno())
            self._handle.close()
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        self._handle.close()
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)
