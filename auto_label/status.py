"""What a results directory's ledger holds: runs, images, per-step outcomes, failures, tokens.

`auto_label status RESULTS_DIR` prints this; `--check` adds the integrity check of
`auto_label.ledger.check`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from auto_label.ledger.check import check_ledger
from auto_label.ledger.events import RunStarted
from auto_label.ledger.store import Ledger

_BODY = "IIF(json_valid(body), body, NULL)"  # a damaged body reads as NULL, not an error


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
    failed: dict[str, int] = field(default_factory=dict)
    """step -> images whose latest outcome is a failure"""
    failures: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    attempt_failures: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, int] = field(default_factory=dict)
    problems: list[str] | None = None
    """with check=True: the integrity problems found (empty: sound)"""


def ledger_status(results_dir: str | Path, *, check: bool = False) -> LedgerStatus:
    with Ledger.open(results_dir, create=False) as ledger:
        conn = ledger.connection()
        started = ledger.latest("run_started")
        runs, last = conn.execute(
            "SELECT COUNT(*), (SELECT COALESCE(status, 'running or killed') FROM runs "
            "ORDER BY number DESC LIMIT 1) FROM runs").fetchone()
        status = LedgerStatus(
            path=ledger.path,
            pipeline=started.pipeline if isinstance(started, RunStarted) else None,
            runs=int(runs), last_run=last,
            images=int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]),
        )
        for step, count in conn.execute("SELECT step, COUNT(*) FROM current GROUP BY step"):
            status.completed[step] = int(count)
        latest: dict[tuple[str, str], tuple[str, str | None]] = {}
        for image_id, step, kind, failure in conn.execute(
                f"SELECT image_id, step, type, json_extract({_BODY}, '$.kind') FROM events "
                "WHERE type IN ('step_failed', 'step_completed') ORDER BY seq"):
            latest[(image_id, step)] = (kind, failure)
        for (_, step), (kind, failure) in latest.items():
            if kind == "step_failed":
                status.failed[step] = status.failed.get(step, 0) + 1
                status.failures[failure or "unknown"] += 1
        status.requests = ledger.count("request_sent")
        for kind, count in conn.execute(
                f"SELECT json_extract({_BODY}, '$.kind'), COUNT(*) FROM events "
                "WHERE type = 'attempt_failed' GROUP BY 1"):
            status.attempt_failures[kind] = int(count)
        prompt, answer, thinking = conn.execute(
            f"SELECT SUM(json_extract({_BODY}, '$.usage.prompt_tokens')), "
            f"SUM(json_extract({_BODY}, '$.usage.completion_tokens')), "
            f"SUM(json_extract({_BODY}, '$.usage.thinking_tokens')) FROM events "
            "WHERE type = 'response_received'").fetchone()
        status.tokens = {"prompt": int(prompt or 0), "answer": int(answer or 0),
                         "thinking": int(thinking or 0)}
        if check:
            status.problems = check_ledger(ledger)
    return status
