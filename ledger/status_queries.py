"""The read-only SQL behind `auto_label status`: runs with what each one spent and added, why
it stopped early and the input problems it skipped, the (image, step)s whose latest outcome is a
failure with its reason, where each image was listed. They read the projections (`runs`,
`run_totals`, `outcomes`, `current`, `images`) and the few events of their kind (runs' starts,
ends and warnings, failures), never a scan of every event.

Functions of a connection returning plain rows, like `queries`; as there, a damaged event body
reads as NULL (`_BODY`) rather than failing, so that `status` works on a ledger that
`status --check` is about to report.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from auto_label.ledger.image_events import resolve_source

_BODY = "IIF(json_valid(body), body, NULL)"


@dataclass(frozen=True)
class RunFacts:
    """One run (a run_started event) with what the ledger holds of it."""

    run_id: str
    number: int
    started_at: float
    finished_at: float | None
    status: str | None
    """completed, interrupted, aborted; None: no run_finished (live, killed or crashed)"""
    stopped_by: str | None
    """why the run stopped early, as its run_finished says (`max_cost`), else None"""
    purpose: str
    """generate, probe or replay"""
    backend: str | None
    model: str | None
    spec: str | None
    """the spec the run recorded (JSON text, keys masked)"""
    last_event_at: float
    """unix time of the run's newest event"""
    requests: int
    prompt_tokens: int
    answer_tokens: int
    thinking_tokens: int
    new_images: int
    """images first seeded by this run"""
    failed_images: int
    """distinct images with a step_failed event in this run"""
    input_warning: str | None = None
    """the message of the run's `input` warning (`N input problem(s) skipped, e.g. ...`: the
    input problems it skipped), else None"""


@dataclass(frozen=True)
class LatestOutcome:
    """The latest outcome of an (image, step): its event type; for a failure its kind, message
    and time."""

    image_id: str
    step: str
    type: str
    kind: str | None
    message: str | None
    at: float

    @property
    def failed(self) -> bool:
        return self.type == "step_failed"


def _per_run(conn: sqlite3.Connection, sql: str) -> dict[str, tuple[object, ...]]:
    return {str(row[0]): tuple(row[1:]) for row in conn.execute(sql)}


def run_facts(conn: sqlite3.Connection) -> list[RunFacts]:
    """Every run in start order, with its requests, tokens, new and failed images."""
    e_body = _BODY.replace("body", "e.body")
    started = conn.execute(
        f"SELECT r.run_id, r.number, r.started_at, r.finished_at, r.status, "
        f"json_extract({e_body}, '$.purpose'), json_extract({e_body}, '$.backend'), "
        f"json_extract({e_body}, '$.model'), json_extract({e_body}, '$.spec') FROM runs r "
        "LEFT JOIN events e ON e.type = 'run_started' AND e.run_id = r.run_id "
        "ORDER BY r.number").fetchall()
    totals = _per_run(conn, "SELECT run_id, last_at, requests, prompt_tokens, answer_tokens, "
                            "thinking_tokens, new_images FROM run_totals")
    failed = _per_run(conn, "SELECT run_id, COUNT(DISTINCT image_id) FROM events "
                            "WHERE type = 'step_failed' GROUP BY run_id")
    stopped = _per_run(conn, f"SELECT run_id, json_extract({_BODY}, '$.message') FROM events "
                             "WHERE type = 'run_finished'")
    # the first input warning of each run (SQLite takes a bare column from the MIN(seq) row)
    inputs = _per_run(conn, f"SELECT run_id, json_extract({_BODY}, '$.message'), MIN(seq) "
                            f"FROM events WHERE type = 'run_warning' AND "
                            f"json_extract({_BODY}, '$.kind') = 'input' GROUP BY run_id")
    facts = []
    for run_id, number, started_at, finished_at, status, purpose, backend, model, spec in started:
        last, requests, prompt, answer, thinking, new = totals.get(
            run_id, (started_at, 0, 0, 0, 0, 0))
        facts.append(RunFacts(
            run_id=run_id, number=int(number), started_at=float(started_at),
            finished_at=finished_at, status=status,
            stopped_by=_text(stopped.get(run_id, (None,))[0]), purpose=str(purpose or "generate"),
            backend=backend, model=model, spec=spec,
            last_event_at=float(_number(last if last is not None else started_at)),
            requests=int(_number(requests)), prompt_tokens=int(_number(prompt)),
            answer_tokens=int(_number(answer)), thinking_tokens=int(_number(thinking)),
            new_images=int(_number(new)),
            failed_images=int(_number(failed.get(run_id, (0,))[0])),
            input_warning=_text(inputs.get(run_id, (None,))[0])))
    return facts


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def latest_generate_run(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """(seq, body) of the newest run_started of a dataset run (`purpose` generate; 0.1.0's runs
    have no purpose and all generated), or None."""
    row = conn.execute(
        f"SELECT seq, body FROM events WHERE type = 'run_started' AND "
        f"COALESCE(json_extract({_BODY}, '$.purpose'), 'generate') = 'generate' "
        "ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row is not None else None


def failed_outcomes(conn: sqlite3.Connection) -> list[LatestOutcome]:
    """The (image, step)s whose latest outcome is a failure (the `outcomes` projection), in image
    and step order, each with its kind, message and time."""
    rows = conn.execute(
        f"SELECT o.image_id, o.step, o.type, o.kind, "
        f"json_extract({_BODY.replace('body', 'e.body')}, '$.message'), o.at FROM outcomes o "
        "JOIN events e ON e.seq = o.seq WHERE o.type = 'step_failed' "
        "ORDER BY o.image_id, o.step")
    return [LatestOutcome(str(image_id), str(step), str(kind), failure_kind, message, float(at))
            for image_id, step, kind, failure_kind, message, at in rows]


def current_of(conn: sqlite3.Connection, image_ids: set[str]) -> dict[str, set[str]]:
    """step -> those of `image_ids` whose record holds a completion of it."""
    found: dict[str, set[str]] = {}
    if not image_ids:
        return found
    for image_id, step in conn.execute(
            "SELECT image_id, step FROM current WHERE image_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(image_ids), ensure_ascii=False),)):
        found.setdefault(str(step), set()).add(str(image_id))
    return found


def seeded_ids(conn: sqlite3.Connection) -> set[str]:
    """The images the `images` projection holds."""
    return {str(row[0]) for row in conn.execute("SELECT image_id FROM images")}


def sources(conn: sqlite3.Connection, image_ids: set[str]) -> dict[str, str]:
    """image_id -> where its latest seed (or rejection) says it was listed (`input.jsonl:12`),
    for the images asked about that have one (read through the events of those images only)."""
    if not image_ids:
        return {}
    found: dict[str, str] = {}
    for image_id, source, near, path in conn.execute(
            f"SELECT image_id, json_extract({_BODY}, '$.source'), json_extract({_BODY}, "
            f"'$.near'), json_extract({_BODY}, '$.path') FROM events "
            "WHERE image_id IN (SELECT value FROM json_each(?)) "
            "AND type IN ('image_seeded', 'image_rejected') ORDER BY seq",
            (json.dumps(sorted(image_ids), ensure_ascii=False),)):
        if isinstance(near, str) and isinstance(path, str):
            source = resolve_source(near, path)  # a seed's, relative to its file (v5)
        if isinstance(source, str) and source:
            found[image_id] = source
    return found


def newest_event_at(conn: sqlite3.Connection) -> float | None:
    """Unix time of the ledger's newest event (a live run's last progress)."""
    row = conn.execute("SELECT at FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return float(row[0]) if row is not None else None
