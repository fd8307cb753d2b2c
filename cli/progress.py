"""Progress display for `generate`: a rich bar per step on a terminal, a plain line otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichProgress:
    """One bar per step: done (completed + cached) of all images, failures, rate and ETA."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed[/] [dim]{task.fields[skipped]} "
                       "skipped[/]"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._counts: dict[str, Counter[str]] = {}
        self._started = time.monotonic()

    def begin(self, steps: list[tuple[str, str]], images: int) -> None:
        self._started = time.monotonic()
        for number, name in steps:
            self._counts[number] = Counter()
            self._tasks[number] = self._progress.add_task(name, total=images, failed=0,
                                                          skipped=0, rate="")
        self._progress.start()

    def advance(self, step: str, outcome: str) -> None:
        counts = self._counts[step]
        counts[outcome] += 1
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self._progress.update(
            self._tasks[step], completed=sum(counts.values()), failed=counts["failed"],
            skipped=counts["skipped"], rate=f"{counts['completed'] / elapsed:.1f}/s",
        )

    def note(self, message: str) -> None:
        self._progress.console.print(message)

    def end(self) -> None:
        self._progress.stop()


class PlainProgress:
    """For logs and pipes: one line every `every` seconds, and one at the end."""

    def __init__(self, every: float = 5.0, stream: object = None) -> None:
        self.every = every
        self.stream = stream or sys.stdout
        self._counts: dict[str, Counter[str]] = {}
        self._names: dict[str, str] = {}
        self._images = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def begin(self, steps: list[tuple[str, str]], images: int) -> None:
        self._images = images
        self._names = dict(steps)
        self._counts = {number: Counter() for number, _ in steps}
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)
        self._thread.start()

    def advance(self, step: str, outcome: str) -> None:
        with self._lock:
            self._counts[step][outcome] += 1

    def note(self, message: str) -> None:
        self._write(message)

    def end(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self._write(self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        parts = []
        with self._lock:
            for number, counts in self._counts.items():
                done = counts["completed"] + counts["cached"]
                part = f"{self._names[number]} {done}/{self._images}"
                if counts["failed"]:
                    part += f" ({counts['failed']} failed)"
                if counts["skipped"]:
                    part += f" ({counts['skipped']} skipped)"
                parts.append(part + f" {counts['completed'] / elapsed:.1f}/s")
        return f"[{elapsed:6.0f}s] " + " | ".join(parts)

    def _tick(self) -> None:
        while not self._done.wait(self.every):
            self._write(self.line())

    def _write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)  # type: ignore[arg-type]
