"""What a results directory's ledger holds: runs, images, per-step outcomes, failures, tokens.

`auto_label status RESULTS_DIR` prints this; `--check` adds the integrity check of
`auto_label.ledger.check`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from auto_label.ledger import queries
from auto_label.ledger.check import check_ledger
from auto_label.ledger.events import RunStarted
from auto_label.ledger.store import Ledger


@dataclass
class LedgerStatus:
    path: Path
    pipeline: str | None
    runs: int
    last_run: str | None
    """status of the latest run: completed, interrupted, aborted, or running/killed (unfinished)"""
    images: int
    completed: dict[str, int] = field(default_factory=dict)
    """step -> images with a current completion"""
    nothing_found: dict[str, int] = field(default_factory=dict)
    """step -> images whose current completion is "nothing there" (part of completed)"""
    failed: dict[str, int] = field(default_factory=dict)
    """step -> images whose latest outcome is a failure"""
    failures: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    attempt_failures: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    """what runs warned about, "run N: ..." (a default or a suspect box convention)"""
    problems: list[str] | None = None
    """with check=True: the integrity problems found (empty: sound)"""


def ledger_status(results_dir: str | Path, *, check: bool = False) -> LedgerStatus:
    """What the ledger of `results_dir` holds; with `check`, its integrity problems too.
    Raises LedgerError when there is no ledger there."""
    with Ledger.open(results_dir, create=False) as ledger:
        conn = ledger.connection()
        started = ledger.latest("run_started")
        runs = queries.runs(conn)
        status = LedgerStatus(
            path=ledger.path,
            pipeline=started.pipeline if isinstance(started, RunStarted) else None,
            runs=len(runs), last_run=(runs[-1].status or "running or killed") if runs else None,
            images=queries.image_count(conn),
            completed=queries.completed_per_step(conn),
            nothing_found=queries.nothing_found_per_step(conn),
        )
        for (_, step), outcome in queries.latest_outcomes(conn).items():
            if outcome.failed:
                status.failed[step] = status.failed.get(step, 0) + 1
                status.failures[outcome.kind or "unknown"] += 1
        status.requests = ledger.count("request_sent")
        status.attempt_failures = queries.attempt_failures(conn)
        status.tokens = queries.token_totals(conn)
        status.warnings = [f"run {number}: {message}"
                           for number, _, message in queries.run_warnings(conn)]
        if check:
            status.problems = check_ledger(ledger)
    return status
