"""What the terminal shows during `generate`, drawn from one snapshot of the run's figures: the
header, one bar per step (done = completed + cached; failed, skipped and in flight beside it, never
counted as done), then elapsed, rate, ETA, requests, tokens, cost, failed attempts by kind, what
the run waits for, and the last error."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from auto_label.api import RunInfo, Snapshot, StepFigures
from auto_label.cli import figures

BAR_WIDTH = 32
QUIET_SHOWN = 30.0
"""seconds without an outcome before the view says how long nothing finished"""


def render(info: RunInfo, snap: Snapshot) -> RenderableType:
    """The whole live view for `snap`."""
    lines: list[RenderableType] = [_line(text, "bold" if i == 0 else "dim")
                                   for i, text in enumerate(figures.header(info))]
    lines.append(_steps(snap))
    activity = figures.activity(snap)
    if snap.quiet >= QUIET_SHOWN and snap.left:
        activity += f", nothing finished for {figures.duration(snap.quiet)}"
    lines.append(_line(activity))
    lines.append(_line(f"{figures.tokens(snap.tokens)}, {figures.cost(snap, info)}"))
    if snap.retries:
        lines.append(_line(figures.retries(snap), "yellow"))
    if snap.waiting:
        lines.append(_line(snap.waiting, "bold yellow"))
    if snap.pace is not None:
        lines.append(_line(f"slowed to {snap.pace:.0f} requests/min after 429s", "yellow"))
    if snap.last_error:
        lines.append(_line(figures.last_error(snap), "red"))
    # the cursor rests on an empty last line: the terminal's echo of ^C there cannot wrap a
    # full-width line and shift the view down one line (which left a stale line above it)
    lines.append(Text(""))
    return Group(*lines)


def _line(text: str, style: str = "") -> Text:
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _steps(snap: Snapshot) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(width=BAR_WIDTH)
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(no_wrap=True)
    for step in snap.steps:
        grid.add_row(Text(step.name, style="bold"),
                     ProgressBar(total=max(snap.images, 1), completed=step.done,
                                 width=BAR_WIDTH),
                     f"{step.done}/{snap.images}", _apart(step))
    return grid


def _apart(step: StepFigures) -> Text:
    """failed, skipped and in flight: not done, so shown apart from the bar's count"""
    text = Text()
    for n, label, style in ((step.failed, "failed", "red"), (step.skipped, "skipped", "yellow"),
                            (step.in_flight, "in flight", "cyan")):
        if n:
            text.append(f"{n} {label}  ", style=style)
    return text
