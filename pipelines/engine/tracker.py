"""Outcome bookkeeping of a run: the summary's counts, failures and warnings, the live figures
(the monitor) and the progress sink, kept in step from every thread (workers, and the ledger
writer for completions and every other committed event).

A completion is counted when the ledger has stored it, not when it was parsed: one that the
unique key refused is reported as a failure and never counted as completed.
"""

from __future__ import annotations

import threading
from collections import Counter

from auto_label.ledger.events import Event, StepCompleted
from auto_label.pipelines.engine.monitor import Monitor
from auto_label.pipelines.engine.progress import ProgressSink, RunSummary
from auto_label.pipelines.engine.snapshot import RunInfo

MAX_EXAMPLES = 5
MAX_NOTES = 20


class Tracker:
    def __init__(self, summary: RunSummary, progress: ProgressSink,
                 monitor: Monitor | None = None) -> None:
        self.summary = summary
        self.progress = progress
        self.monitor = monitor or Monitor(RunInfo(summary.pipeline, steps=tuple(summary.steps)))
        self._names = dict(summary.steps)
        self._lock = threading.Lock()

    def outcome(self, step: str, outcome: str) -> None:
        """One (image, step) reached `outcome` (cached, skipped; completed comes from commits)."""
        with self._lock:
            self.summary.counts.setdefault(step, Counter())[outcome] += 1
            self.monitor.outcome(step, outcome)

    def begin(self, images: int) -> None:
        """The run starts on `images` images: the display begins."""
        self.progress.begin(self.monitor.begin(images), self.monitor.snapshot)

    def end(self) -> None:
        """The run is over (every event committed): the summary keeps the last figures."""
        self.summary.final = self.monitor.end()
        self.progress.end(self.summary.final)

    def skipped(self, step: str, reason: str) -> None:
        with self._lock:
            self.summary.counts.setdefault(step, Counter())["skipped"] += 1
            self.summary.skip_reasons[f"step {step} {reason}"] += 1
            self.monitor.outcome(step, "skipped")

    def failed(self, step: str, kind: str, message: str) -> None:
        with self._lock:
            self.summary.counts.setdefault(step, Counter())["failed"] += 1
            self.summary.failures[kind] += 1
            if len(self.summary.examples) < MAX_EXAMPLES:
                self.summary.examples.append(message)
            self.monitor.outcome(step, "failed")

    def warn(self, messages: list[str], *, show: int | None = None) -> None:
        """Input problems that were skipped: all in the summary; the first `show` (default all)
        shown as they come, then one line saying how many more."""
        with self._lock:
            self.summary.warnings.extend(messages)
            shown = messages if show is None else messages[:show]
            for message in shown:
                self.progress.note(message)
            if len(messages) > len(shown):
                self.progress.note(f"... and {len(messages) - len(shown)} more input problems "
                                   "(see the run summary)")

    def note(self, message: str) -> None:
        """News of the run (a batch job submitted or done), shown as it comes."""
        self.progress.note(message)

    def alarm(self, message: str) -> None:
        """Something wrong with every box, most likely: in the summary, and shown at once."""
        with self._lock:
            self.summary.alarms.append(message)
            self.progress.note(f"WARNING: {message}")

    def committed(self, events: list[Event], refused: list[StepCompleted]) -> None:
        """The ledger writer stored `events` and refused `refused` (its on_commit callback)."""
        self.monitor.committed(events)
        for event in events:
            if isinstance(event, StepCompleted) and not event.source:
                self.outcome(event.step, "completed")
                if event.found == 0:
                    with self._lock:
                        self.summary.nothing_found[event.step] += 1
        for event in refused:
            self.failed(event.step, "duplicate_completion",
                        f"{event.image_id} step {event.step} ({self._names.get(event.step, '')}): "
                        "the ledger already holds a completion with this fingerprint and "
                        "generation; this answer was not recorded")
