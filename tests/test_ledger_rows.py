"""Bodies without what their row holds (issue 12, ledger bytes per image): an image's events no
longer repeat their row's columns (type, v, run_id, image_id, step, at) in their body, a
completion leaves out the hash of its output, an answer its attempt 1 and finish reason `stop`, a
seed the image_path of its extra when it is the file's path. Read back (every reader passes the
row's columns), they are the events that were written; the views still show every field; ledgers
written before still read as they were."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support import grounding_spec, read_jsonl

from auto_label import export, generate, ledger_status
from auto_label.ledger import Ledger
from auto_label.ledger.bodies import ROW_FIELDS
from auto_label.ledger.events import (
    EVENT_CLASSES,
    ImageSeeded,
    ResponseReceived,
    StepCompleted,
)
from auto_label.ledger.fingerprint import content_hash
from auto_label.sim import write_grounding_dataset

FIXTURES = Path(__file__).parent / "fixtures"
IMAGE_TYPES = {cls.model_fields["type"].default for cls in EVENT_CLASSES if cls.compact_body}


def _run(tmp_path: Path, sim: Any, images: int = 3) -> Path:
    data = write_grounding_dataset(tmp_path / "data", images, seed=5)
    out = tmp_path / "out"
    assert generate(grounding_spec(out, data.root, sim.openai_base_url)).complete
    return out


def _rows(out: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(out / "ledger.db")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_an_image_event_body_holds_none_of_its_row_columns(tmp_path, sim):
    out = _run(tmp_path, sim)
    rows = _rows(out, "SELECT type, body FROM events")
    kinds = {kind for kind, _ in rows}
    assert {"image_seeded", "request_sent", "response_received", "step_completed",
            "request_template"} <= kinds
    for kind, body in rows:
        held = set(json.loads(body))
        if kind in IMAGE_TYPES:
            assert not held & set(ROW_FIELDS), (kind, body)
        else:  # a run's own events keep their whole dump
            assert {"type", "v", "run_id", "at"} <= held
    with Ledger.open(out, create=False) as ledger:
        columns = {seq: (kind, v, run_id, image_id, step, at) for seq, kind, v, run_id, image_id,
                   step, at in ledger.connection().execute(
                       "SELECT seq, type, v, run_id, image_id, step, at FROM events")}
        for seq, event in ledger.events():
            assert columns[seq] == (event.type, event.v, event.run_id,
                                    getattr(event, "image_id", None),
                                    getattr(event, "step", None), event.at)
            assert ledger.event(seq) == event
            assert ledger.parse_row(seq, ledger.connection().execute(
                "SELECT body FROM events WHERE seq = ?", (seq,)).fetchone()[0]) == event
    assert ledger_status(out, check=True).problems == []


def test_a_completion_leaves_out_its_output_hash_and_reads_it_back(tmp_path, sim):
    out = _run(tmp_path, sim)
    assert all("output_hash" not in json.loads(body) for (body,) in _rows(
        out, "SELECT body FROM events WHERE type = 'step_completed'"))
    projected = dict(_rows(out, "SELECT seq, output_hash FROM completions"))
    with Ledger.open(out, create=False) as ledger:
        completions = dict(ledger.events(["step_completed"]))
        shown = [c for s in ledger.shown() for c in s.current]
    assert projected and set(completions) == set(projected)
    for seq, event in completions.items():
        assert isinstance(event, StepCompleted)
        assert event.output_hash == content_hash(event.output) == projected[seq]
    assert sorted(shown, key=lambda e: e.at) == sorted(completions.values(), key=lambda e: e.at)


def test_a_hash_that_is_not_the_outputs_is_stored(tmp_path):
    odd = StepCompleted(image_id="i", step="0", fingerprint="f", output={"a": 1},
                        output_hash="sha256:" + "0" * 64)
    assert json.loads(odd.body())["output_hash"] == odd.output_hash
    with Ledger.open(tmp_path) as ledger:
        ledger.append([ImageSeeded(image_id="i", path="/p", sha256="s", width=1, height=1,
                                   size=1, mtime_ns=1), odd])
        assert [e for _, e in ledger.events(["step_completed"])] == [odd]


def test_answers_leave_out_attempt_one_and_stop_and_the_view_shows_them(tmp_path, sim):
    out = _run(tmp_path, sim)
    bodies = [json.loads(b) for (b,) in _rows(
        out, "SELECT body FROM events WHERE type = 'response_received'")]
    assert bodies and all({"attempt", "finish_reason"}.isdisjoint(b) for b in bodies)
    assert set(_rows(out, "SELECT attempt, finish_reason FROM responses")) == {(1, "stop")}
    with Ledger.open(out, create=False) as ledger:
        answers = [e for _, e in ledger.events(["response_received"])]
    assert all(isinstance(a, ResponseReceived) and (a.attempt, a.finish_reason) == (1, "stop")
               for a in answers)
    said_none = ResponseReceived(request_id="q", image_id="i", step="0", text="",
                                 latency_s=0.1, finish_reason=None, attempt=2)
    assert json.loads(said_none.body())["finish_reason"] is None


def test_the_responses_view_tells_a_left_out_finish_reason_by_version(tmp_path):
    Ledger.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "ledger.db")
    base = {"request_id": "q", "text": "t", "latency_s": 0.1}
    old = {**base, "type": "response_received", "v": 3, "at": 1.0, "run_id": "r",
           "image_id": "i", "step": "0", "attempt": 2}  # v3 left out a finish reason of None
    for v, body in ((3, old), (4, base), (4, {**base, "finish_reason": None}),
                    (4, {**base, "finish_reason": "length"})):
        conn.execute("INSERT INTO events (type, v, run_id, image_id, step, at, body) "
                     "VALUES ('response_received', ?, 'r', 'i', '0', 1.0, ?)",
                     (v, json.dumps(body)))
    conn.commit()
    shown = conn.execute("SELECT attempt, finish_reason FROM responses ORDER BY seq").fetchall()
    conn.close()
    assert shown == [(2, None), (1, "stop"), (1, None), (1, "length")]
    with Ledger.open(tmp_path, create=False) as ledger:
        read = [(e.attempt, e.finish_reason) for _, e in ledger.events(["response_received"])
                if isinstance(e, ResponseReceived)]
    assert read == shown


def test_a_seed_leaves_out_the_image_path_that_is_its_file_and_records_still_show_it(
        tmp_path, sim):
    out = _run(tmp_path, sim)
    seeds = [json.loads(b) for (b,) in _rows(
        out, "SELECT body FROM events WHERE type = 'image_seeded'")]
    assert seeds and all("image_path" not in s.get("extra", {}) and "image_path" not in s
                         for s in seeds)
    with Ledger.open(out, create=False) as ledger:
        read = [e for _, e in ledger.events(["image_seeded"])]
    assert all(isinstance(e, ImageSeeded) and e.extra["image_path"] == e.path for e in read)
    records = read_jsonl(out / "annotations.jsonl")
    assert {r["image_path"] for r in records} == {getattr(e, "path", None) for e in read}


@pytest.mark.parametrize("written_by", ["ledgers_v0_1_0", "ledgers_main_e2b8715"])
def test_ledgers_written_before_read_export_and_check_as_they_did(tmp_path, written_by):
    root = tmp_path / "g"
    shutil.copytree(FIXTURES / written_by / "image_grounding", root)
    results = root / "results"
    expected = (results / "annotations.jsonl").read_text()
    (results / "annotations.jsonl").unlink()
    export(results, output_format="jsonl")
    assert (results / "annotations.jsonl").read_text() == expected
    assert ledger_status(results, check=True).problems == []
    conn = sqlite3.connect(results / "ledger.db")
    stated = conn.execute("SELECT COUNT(*) FROM responses r JOIN events e ON e.seq = r.seq "
                          "WHERE r.finish_reason IS NOT json_extract(e.body, "
                          "'$.finish_reason')").fetchone()[0]
    conn.close()
    assert stated == 0  # old bodies say their finish reason: the view shows it as it was


def test_check_finds_columns_that_disagree_with_a_body_that_holds_them(tmp_path):
    root = tmp_path / "g"
    shutil.copytree(FIXTURES / "ledgers_v0_1_0" / "image_grounding", root)
    conn = sqlite3.connect(root / "results" / "ledger.db")
    conn.execute("UPDATE events SET image_id = 'other' WHERE seq = "
                 "(SELECT MIN(seq) FROM events WHERE type = 'image_seeded')")
    conn.commit()
    conn.close()
    problems = ledger_status(root / "results", check=True).problems
    assert any("disagree with the body" in p for p in problems), problems
