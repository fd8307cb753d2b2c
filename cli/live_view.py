"""What the terminal shows during `generate`, drawn from one snapshot of the run's figures: the
header, one bar per step (done = completed + cached; failed, skipped and in flight beside it, never
counted as done), then elapsed, rate, ETA, requests, tokens, cost, failed attempts by kind, what
the run waits for, and the last error. Lines wrap at the terminal's width (a narrow one loses no
figure), and the bars shrink to leave room for their counts."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from auto_label.api import RunInfo, Snapshot, StepFigures
from auto_label.cli import figures

BAR_WIDTH = 32
MIN_BAR = 8
QUIET_SHOWN = 30.0
"""seconds without an outcome before the view says how long nothing finished"""


def render(info: RunInfo, snap: Snapshot, width: int = 120) -> RenderableType:
    """The whole live view for `snap`, on a terminal `width` columns wide."""
    lines: list[RenderableType] = [_line(text, "bold" if i == 0 else "dim")
                                   for i, text in enumerate(figures.header(info))]
    lines.append(_steps(snap, width))
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
        lines.append(_line(figures.slowed(snap), "yellow"))
    if snap.last_error:
        lines.append(_line(figures.last_error(snap), "red"))
    # the cursor rests on an empty last line: the terminal's echo of ^C there cannot wrap a
    # full-width line and shift the view down one line (which left a stale line above it)
    lines.append(Text(""))
    return Group(*lines)


def _line(text: str, style: str = "") -> Text:
    """Wrapped at spaces (folded inside a word longer than the width), never cut, whatever
    the console's soft_wrap (the CLI's `out` has it, which would crop the live view)."""
    return Text(text, style=style, no_wrap=False, overflow="fold")


def _steps(snap: Snapshot, width: int) -> Table:
    """name, bar, done/images, then what is not done; the bar takes what the rest leaves (at
    most BAR_WIDTH), and the last column wraps when even MIN_BAR leaves too little."""
    rows = [(step.name, f"{figures.number(step.done)}/{figures.number(snap.images)}",
             _apart(step)) for step in snap.steps]
    widest = [max((len(row[i]) for row in rows), default=0) for i in range(2)]
    apart = max((row[2].cell_len for row in rows), default=0)
    bar = max(MIN_BAR, min(BAR_WIDTH, width - sum(widest) - apart - 3))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(width=bar)
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(overflow="fold")
    for step, (name, count, extra) in zip(snap.steps, rows, strict=True):
        grid.add_row(Text(name, style="bold"),
                     ProgressBar(total=max(snap.images, 1), completed=step.done, width=bar),
                     count, extra)
    return grid


def _apart(step: StepFigures) -> Text:
    """failed, skipped and in flight: not done, so shown apart from the bar's count"""
    text = Text()
    for n, label, style in ((step.failed, "failed", "red"), (step.skipped, "skipped", "yellow"),
                            (step.in_flight, "in flight", "cyan")):
        if n:
            text.append(f"{figures.number(n)} {label}  ", style=style)
    text.rstrip()
    return text
