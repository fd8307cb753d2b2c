"""What every export format is: a sink fed one record at a time (so that one pass over the
ledger feeds every format asked for), and what it reports having written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from auto_label.pipelines.records import ImageRecord


@dataclass(frozen=True)
class Written:
    paths: list[Path]
    """the files (or folders) written"""
    records: int
    """records written (for formats with one entry per image)"""
    files: int = 0
    """files written (for formats with files per image)"""


class Sink(Protocol):
    def add(self, record: ImageRecord) -> None:
        """Take one image's record."""

    def close(self) -> Written:
        """Finish writing and say what was written."""

    def discard(self) -> None:
        """Give up (an error happened): leave the previous export in place where possible."""


@dataclass(frozen=True)
class ExportFormat:
    name: str
    description: str
    open: Callable[[Path], Sink]
    """results_dir -> a sink writing into it"""
    pipelines: frozenset[str] | None = None
    """the pipelines it fits (None: every one)"""
