"""What a compact body leaves to the rest of the ledger (issue 12's ledger bytes): short request
ids, a request's key and size left to its run's step template and its image's seed, a
completion's fingerprint left to its request and its `completions` row, a seed's ingest left at
the default and its source named from its file's folder. Every reader gets each value back: the
typed events, `show`, the SQL views, `status --check` (which proves the rows agree with the
requests)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support import grounding_spec

from auto_label import generate, ledger_status
from auto_label.history import image_history
from auto_label.ledger import Ledger
from auto_label.ledger.events import DEFAULT_INGEST, ImageSeeded, RequestSent, StepCompleted
from auto_label.ledger.image_events import near_source, resolve_source
from auto_label.sim import write_grounding_dataset


def _bodies(results: Path, kind: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(results / "ledger.db")
    try:
        return [json.loads(body) for (body,) in conn.execute(
            "SELECT body FROM events WHERE type = ? ORDER BY seq", (kind,))]
    finally:
        conn.close()


@pytest.fixture
def grounded(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=5)
    out = tmp_path / "out"
    generate(grounding_spec(out, data.root, sim.openai_base_url))
    return out, data


def test_bodies_leave_out_what_the_ledger_knows_and_every_reader_gets_it_back(grounded):
    out, data = grounded
    requests, completions = _bodies(out, "request_sent"), _bodies(out, "step_completed")
    seeds = _bodies(out, "image_seeded")
    assert len(requests) == len(completions) == 6 and len(seeds) == 3
    assert all(r["request_id"].startswith("1-") for r in requests)  # the ledger's first run
    assert all({"prompt_template", "sent_width", "sent_height"}.isdisjoint(r) for r in requests)
    assert all("fingerprint" not in c and c["request_id"] for c in completions)
    assert all("ingest" not in s and "source" not in s and s["near"].startswith("../")
               for s in seeds)
    with Ledger.open(out, create=False) as ledger:
        events = [e for _, e in ledger.events()]
    sent = {e.request_id: e for e in events if isinstance(e, RequestSent)}
    seed = {e.image_id: e for e in events if isinstance(e, ImageSeeded)}
    done = [e for e in events if isinstance(e, StepCompleted)]
    assert len(set(sent)) == 6 and len(done) == 6
    for completion in done:
        assert completion.request_id is not None
        assert completion.fingerprint == sent[completion.request_id].fingerprint
    for event in seed.values():
        assert event.ingest == DEFAULT_INGEST
        file, _, line = event.source.rpartition(":")
        assert Path(file) == data.root / "input.jsonl" and int(line) >= 1
        assert Path(file).is_absolute()
    for request in sent.values():
        image = seed[request.image_id]
        assert request.prompt_template is None  # its step's template
        assert request.sent_size((0, 0)) == (0, 0)  # left to the seed
        assert request.sent_size((image.width, image.height)) == (image.width, image.height)
    assert ledger_status(out, check=True).problems == []
    conn = sqlite3.connect(out / "ledger.db")
    try:
        view = conn.execute(
            "SELECT q.request_id, q.prompt_template, q.template IS NOT NULL, q.sent_width, "
            "q.sent_height, i.width, i.height FROM requests q JOIN images i "
            "ON i.image_id = q.image_id").fetchall()
        by_view = dict(conn.execute("SELECT seq, fingerprint FROM step_completions"))
        by_row = dict(conn.execute("SELECT seq, fingerprint FROM completions"))
    finally:
        conn.close()
    keys = {"0": "grounding.extract@1", "1": "grounding.ground@1/xyxy_pixel"}
    assert sorted(key for _, key, *_ in view) == sorted([keys["0"], keys["1"]] * 3)
    assert all(has_text and (w, h) == (iw, ih) for _, _, has_text, w, h, iw, ih in view)
    assert by_view == by_row and all(f.startswith("sha256:") for f in by_view.values())
    shown = [e for e in image_history(out, "scene_0000").to_json()["events"]
             if e["type"] == "request_sent"]
    image = seed["scene_0000"]
    assert [e["prompt_template"] for e in shown] == [keys["0"], keys["1"]]
    assert all((e["sent_width"], e["sent_height"]) == (image.width, image.height)
               for e in shown)


def test_a_second_run_numbers_its_requests_and_a_resized_image_keeps_its_size(grounded, sim):
    out, data = grounded
    generate(grounding_spec(out, data.root, sim.openai_base_url,
                            "image_grounding.vlm.openai.max_image_side=200"))  # asks again
    requests = _bodies(out, "request_sent")
    ids = [r["request_id"] for r in requests]
    assert len(ids) == len(set(ids)) == 12
    later = [r for r in requests if r["request_id"].startswith("2-")]
    assert len(later) == 6
    assert all(max(r["sent_width"], r["sent_height"]) == 200 for r in later)
    assert ledger_status(out, check=True).problems == []


def test_check_finds_a_completion_row_that_is_not_its_requests(grounded):
    out, _ = grounded
    conn = sqlite3.connect(out / "ledger.db")
    conn.execute("UPDATE completions SET fingerprint = 'sha256:' || hex(randomblob(32)) "
                 "WHERE seq = (SELECT MIN(seq) FROM completions)")
    conn.commit()
    conn.close()
    problems = ledger_status(out, check=True).problems
    assert any("its completion row has another key" in p for p in problems)


@pytest.mark.parametrize(("source", "path", "near"), [
    ("/data/set/in.jsonl:7", "/data/set/images/a.png", "../in.jsonl:7"),
    ("/data/kitti/label_2/000123.txt", "/data/kitti/image_2/000123.png",
     "../label_2/000123.txt"),
    ("/d/images/list.jsonl:12", "/d/images/a.png", "list.jsonl:12"),
    ("/d/in.jsonl:7", "/d/images/a.png", None),  # "../in.jsonl:7" is not shorter
    ("in.jsonl:7", "/d/images/a.png", None),  # not absolute: kept as it is
    ("/d/in.jsonl:7", "images/a.png", None),
    ("/a:1", "/a/very/deep/folder/of/images/x.png", None),  # not shorter
    ("/d/x/../in.jsonl:7", "/d/images/a.png", None),  # would not read back as it was
])
def test_a_source_is_named_from_its_image_folder_only_when_it_reads_back(source, path, near):
    assert near_source(source, path) == near
    if near is not None:
        assert resolve_source(near, path) == source
