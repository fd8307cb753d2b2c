"""How a run reports progress and what it returns: a sink protocol (the CLI renders it with rich;
a notebook may pass its own or none) and the run summary.

A sink is given the run's header and a function returning the live figures (`Snapshot`, from
the run's monitor) when the run begins; it reads them as often as it redraws. The same figures
feed every display, so a bar and a log line cannot disagree.

Every (image, selected step) pair ends the run with exactly one outcome:
- `completed`: answered, parsed and recorded in this run;
- `cached`: already completed for the same fingerprint before this run;
- `failed`: this run tried and gave up (the event says why);
- `skipped`: not tried because an upstream step failed or never completed for the image.
Pairs without an outcome were not reached (the run was interrupted).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from auto_label.pipelines.contract import InputNote
from auto_label.pipelines.engine.snapshot import RunInfo, Snapshot

OUTCOMES = ("completed", "cached", "failed", "skipped")


class ProgressSink(Protocol):
    def begin(self, info: RunInfo, snapshot: Callable[[], Snapshot]) -> None:
        """The run starts: its header, and a function (thread-safe, cheap) giving its figures
        now."""

    def note(self, message: str) -> None:
        """A one-line message worth showing (a rejected image, an alarm...); any thread."""

    def end(self, final: Snapshot) -> None:
        """The run is over (before the summary is printed): its last figures."""


class NullProgress:
    def begin(self, info: RunInfo, snapshot: Callable[[], Snapshot]) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def end(self, final: Snapshot) -> None:
        pass


@dataclass
class RunSummary:
    run_id: str
    pipeline: str
    results_dir: Path
    images: int
    steps: list[tuple[str, str]]
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    """step number -> outcome -> images"""
    nothing_found: Counter[str] = field(default_factory=Counter)
    """step number -> completions (of this run) whose answer was: nothing there"""
    failures: Counter[str] = field(default_factory=Counter)
    """failure kind -> failed (image, step) pairs"""
    examples: list[str] = field(default_factory=list)
    """the first few failure messages, one line each"""
    requests: int = 0
    interrupted: str | None = None
    """the signal or reason that stopped the run early"""
    outputs: list[Path] = field(default_factory=list)
    records: int = 0
    warnings: list[str] = field(default_factory=list)
    """input problems that were skipped (unlabelled images, malformed label rows...)"""
    alarms: list[str] = field(default_factory=list)
    """what a person must hear about the boxes (a default or a suspect convention)"""
    skip_reasons: Counter[str] = field(default_factory=Counter)
    """"step N: why" -> (image, step) pairs skipped for it"""
    suspect_boxes: bool = False
    """the boxes of this run look like another convention or frame (the convention alarm)"""
    final: Snapshot | None = None
    """the live figures when the run ended: elapsed, tokens, cost, failed attempts by kind..."""

    @property
    def ok(self) -> bool:
        """Complete, no input problem skipped, and no alarm says the boxes look wrong (what exit
        code 0 means)."""
        return self.complete and not self.suspect_boxes and not self.input_problems

    @property
    def input_problems(self) -> list[str]:
        """The warnings that are problems: not the notes (`InputNote`, e.g. DontCare rows)."""
        return [w for w in self.warnings if not isinstance(w, InputNote)]

    @property
    def complete(self) -> bool:
        """Every image completed every selected step (now or before)."""
        return self.interrupted is None and all(
            self.counts.get(n, Counter())["completed"] + self.counts.get(n, Counter())["cached"]
            == self.images
            for n, _ in self.steps
        )
