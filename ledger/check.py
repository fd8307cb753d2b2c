"""Checking a ledger: SQLite's own integrity check, then the invariants the tool relies on.

- every event parses as its typed model, and its indexed columns match its body;
- every completion row belongs to a `step_completed` event with the same key, and every
  `step_completed` event has its completion row (the unique key is what refuses duplicates);
- `current`, `images` and `runs` are what folding the events gives;
- every response and failed attempt answers a request sent before it;
- every request names a prompt template its run recorded before it, and its values fill it;
  one that names no image file was sent its image's seeded file (a seed comes before it).

Each problem is one line; an empty list means the ledger is sound.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from pydantic import ValidationError

from auto_label.ledger import queries
from auto_label.ledger.events import (
    AttemptFailed,
    ImageSeeded,
    RequestSent,
    RequestTemplate,
    ResponseReceived,
    Row,
    RunFinished,
    RunStarted,
    StepCompleted,
    StepSelected,
    parse_event,
)
from auto_label.ledger.store import Ledger
from auto_label.ledger.templates import render

MAX_PROBLEMS = 50


def check_ledger(ledger: Ledger) -> list[str]:
    problems: list[str] = []
    for problem in _problems(ledger):
        problems.append(problem)
        if len(problems) >= MAX_PROBLEMS:
            problems.append(f"... stopped after {MAX_PROBLEMS} problems")
            break
    return problems


class _Expected:
    """The projections as the fold of the events says they should be."""

    def __init__(self) -> None:
        self.seeds: dict[str, int] = {}
        self.current: dict[tuple[str, str], tuple[int, str]] = {}
        self.by_fingerprint: dict[tuple[str, str, str], int] = {}
        self.runs: dict[str, queries.RunRow] = {}


def _problems(ledger: Ledger) -> Iterator[str]:
    conn = ledger.connection()
    result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    if result != ["ok"]:
        yield from (f"sqlite integrity_check: {line}" for line in result)
        return
    completions = queries.completion_rows(conn)
    requests: dict[str, str] = {}
    """request id -> its fingerprint"""
    templates: dict[tuple[str, str, str], str] = {}
    """(run id, "key" or "step", template key or step) -> the text of the first such template"""
    expected = _Expected()
    for seq, kind, version, run_id, image_id, step, at, body in queries.all_event_rows(conn):
        where = f"event {seq} ({kind})"
        try:
            raw = json.loads(body)
            if kind == "step_completed" and isinstance(raw, dict) and "type" not in raw \
                    and "fingerprint" not in raw and raw.get("request_id") in requests:
                raw["fingerprint"] = requests[raw["request_id"]]  # its request's (v6)
            event = parse_event(raw, Row(kind, version, run_id, image_id, step, at))
        except (ValueError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            yield f"{where}: body does not parse as an event: {first}"
            continue
        if event.type != kind or getattr(event, "image_id", None) != image_id or \
                getattr(event, "step", None) != step:
            yield f"{where}: columns (type, image_id, step) disagree with the body"
        if isinstance(event, ImageSeeded):
            expected.seeds[event.image_id] = seq
        elif isinstance(event, RequestTemplate):
            templates.setdefault((event.run_id, "key", event.template), event.text)
            if event.step is not None:  # the step's template: the first the run recorded
                templates.setdefault((event.run_id, "step", event.step), event.text)
        elif isinstance(event, RequestSent):
            requests[event.request_id] = event.fingerprint
            yield from _request_problems(where, event, templates)
            if event.image_sha256 is None and event.image_id not in expected.seeds:
                yield f"{where}: names no image file, and {event.image_id} was never seeded " \
                      "before it"
        elif isinstance(event, ResponseReceived | AttemptFailed):
            if event.request_id not in requests:
                yield f"{where}: answers request {event.request_id}, never sent"
        elif isinstance(event, StepCompleted):
            row = completions.pop(seq, None)
            if row is None:
                yield f"{where}: no completion row for {event.image_id} step {event.step}"
            elif row[:4] != (event.step, event.image_id, event.fingerprint, event.generation) \
                    or row[4] != event.output_hash:
                yield f"{where}: its completion row has another key or output hash"
            if event.image_id not in expected.seeds:
                yield f"{where}: completes a step of {event.image_id}, never seeded"
            expected.current[(event.image_id, event.step)] = (seq, event.fingerprint)
            expected.by_fingerprint[(event.image_id, event.step, event.fingerprint)] = seq
        elif isinstance(event, StepSelected):
            earlier = expected.by_fingerprint.get((event.image_id, event.step, event.fingerprint))
            if earlier is None:
                yield f"{where}: selects a completion that does not exist"
            else:
                expected.current[(event.image_id, event.step)] = (earlier, event.fingerprint)
        elif isinstance(event, RunStarted):
            expected.runs[event.run_id] = queries.RunRow(
                event.run_id, len(expected.runs) + 1, event.at, None, None)
        elif isinstance(event, RunFinished):
            started = expected.runs.get(event.run_id)
            if started is None:
                yield f"{where}: finishes run {event.run_id}, never started"
            else:
                expected.runs[event.run_id] = queries.RunRow(
                    started.run_id, started.number, started.started_at, event.at, event.status)
    for seq, row in completions.items():
        yield f"completion row of {row[1]} step {row[0]} points at event {seq}, " \
              "which is not a step_completed event"
    yield from _projections(ledger, expected)


def _request_problems(where: str, event: RequestSent,
                      templates: dict[tuple[str, str, str], str]) -> Iterator[str]:
    if event.prompt_template == "":  # recorded before templates: the prompt is inline
        return
    text = templates.get((event.run_id, "key", event.prompt_template)
                         if event.prompt_template is not None
                         else (event.run_id, "step", event.step))
    if text is None:
        named = f"its prompt template {event.prompt_template}" \
            if event.prompt_template is not None else f"the prompt template of step {event.step}"
        yield f"{where}: {named} was not recorded by its run before it"
        return
    try:
        render(text, event.prompt_vars)
    except (KeyError, TypeError) as exc:
        yield f"{where}: its prompt does not render from its template ({exc})"


def _projections(ledger: Ledger, expected: _Expected) -> Iterator[str]:
    conn = ledger.connection()
    stored = queries.current(conn)
    for key in sorted(set(stored) | set(expected.current)):
        want = expected.current.get(key)
        have = stored.get(key)
        if want is None or have is None or (have.seq, have.fingerprint) != want:
            yield f"current completion of {key[0]} step {key[1]} disagrees with the events"
    images = queries.images(conn)
    for image_id in sorted(set(images) | set(expected.seeds)):
        row = images.get(image_id)
        if row is None or row.seq != expected.seeds.get(image_id):
            yield f"images row of {image_id} is not its latest image_seeded event"
    runs = {row.run_id: row for row in queries.runs(conn)}
    for run_id in sorted(set(runs) | set(expected.runs)):
        if runs.get(run_id) != expected.runs.get(run_id):
            yield f"runs row of run {run_id} is not what its run_started / run_finished events say"
