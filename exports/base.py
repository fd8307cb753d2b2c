"""What every export format is: a sink fed one record at a time (so that one pass over the
ledger feeds every format asked for), and what it reports having written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from auto_label.boxes import Convention
from auto_label.exports.filters import RecordFilter
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
class ExportOptions:
    """What `export` was asked besides the format."""

    filter: RecordFilter = field(default_factory=RecordFilter)
    convention: Convention = "xyxy_1000"
    """sft: the box convention of the model to fine-tune"""
    sent_size: Callable[[int, int], tuple[int, int]] | None = None
    """sft: (width, height) -> the frame that model's processor sees the image at (None: the
    image's own size)"""
    step: str | None = None
    """export one step's output (with what it builds on) instead of the whole record"""


@dataclass(frozen=True)
class ExportFormat:
    name: str
    description: str
    open: Callable[[Path, ExportOptions], Sink]
    """(results_dir, options) -> a sink writing into it"""
    pipelines: frozenset[str] | None = None
    """the pipelines it fits (None: every one)"""
    filters: bool = True
    """whether `ExportOptions.filter` applies (legacy files mirror the steps as they are)"""
