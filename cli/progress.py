"""Progress display for `generate`: a live view on a terminal (rich), timestamped lines otherwise.
Both draw the run's snapshots (the monitor's figures), so their counts agree."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from auto_label.api import RunInfo, Snapshot
from auto_label.cli import figures

if TYPE_CHECKING:  # rich is imported by the live view only: plain lines need none of it
    from rich.console import Console, RenderableType
    from rich.live import Live

MIN_STALL = 60.0
"""seconds without an outcome before the plain log says the run is held up (at least)"""


class RichProgress:
    """The live view, redrawn `refresh` times a second; messages print above it."""

    def __init__(self, console: Console, *, refresh: float = 4.0) -> None:
        self.console = console
        self.refresh = refresh
        self._info = RunInfo("")
        self._snapshot: Callable[[], Snapshot] = Snapshot
        self._live: Live | None = None

    def begin(self, info: RunInfo, snapshot: Callable[[], Snapshot]) -> None:
        from rich.live import Live

        self._info, self._snapshot = info, snapshot
        self._live = Live(get_renderable=self._render, console=self.console, transient=False,
                          refresh_per_second=self.refresh)
        self._live.start(refresh=True)

    def _render(self) -> RenderableType:
        from auto_label.cli.live_view import render

        return render(self._info, self._snapshot(), self.console.width)

    def note(self, message: str) -> None:
        """Printed above the live view, which stays below it (also from a signal handler)."""
        self.console.print(message, markup=False, highlight=False)

    def end(self, final: Snapshot) -> None:
        self._snapshot = lambda: final
        if self._live is not None:
            self._live.stop()  # draws the final figures once more and leaves them


class PlainProgress:
    """For logs and pipes: the header, then a timestamped line with every figure each `every`
    seconds (default: the run's `workflow.progress_interval`), one at the end, and a line saying
    why whenever no step has finished for `stall_after` seconds (default: twice the interval,
    at least a minute)."""

    def __init__(self, every: float | None = None, stream: TextIO | None = None, *,
                 stall_after: float | None = None) -> None:
        self.every = every
        self.stall_after = stall_after
        self.stream = stream or sys.stdout
        self._info = RunInfo("")
        self._snapshot: Callable[[], Snapshot] = Snapshot
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._last_error = ""
        self._stall_said = -1.0

    def begin(self, info: RunInfo, snapshot: Callable[[], Snapshot]) -> None:
        self._info, self._snapshot = info, snapshot
        if self.every is None:
            self.every = info.progress_interval
        if self.stall_after is None:
            self.stall_after = max(2 * self.every, MIN_STALL)
        now = snapshot()
        for line in figures.header(info):
            self._write(line, now.time)
        self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)
        self._thread.start()

    def note(self, message: str) -> None:
        self._write(message)

    def end(self, final: Snapshot) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self._report(final, last=True)

    def line(self, snap: Snapshot) -> str:
        """The figures of `snap` as one line, without its timestamp."""
        return figures.plain_line(snap, self._info)

    def _tick(self) -> None:
        assert self.every is not None
        while not self._done.wait(self.every):
            self._report(self._snapshot())

    def _report(self, snap: Snapshot, *, last: bool = False) -> None:
        self._write(self.line(snap), snap.time)
        if snap.last_error and snap.last_error != self._last_error:
            self._last_error = snap.last_error
            self._write(figures.last_error(snap), snap.time)
        stall = self.stall_after or MIN_STALL
        if last:
            return
        if snap.left and snap.quiet >= stall and snap.quiet - self._stall_said >= stall:
            self._stall_said = snap.quiet
            self._write(f"nothing finished for {figures.duration(snap.quiet)}: "
                        f"{figures.why(snap)}", snap.time)
        elif snap.quiet < stall:
            self._stall_said = -1.0

    def _write(self, text: str, at: float | None = None) -> None:
        stamp = figures.moment(time.time() if at is None else at)
        with self._write_lock:
            print(f"{stamp} {text}", file=self.stream, flush=True)
