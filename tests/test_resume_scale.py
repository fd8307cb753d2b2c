"""Resume at scale, as behaviour: planning reads the ledger a batch at a time, never whole tables;
the images in flight are bounded; an unchanged rerun appends a handful of events."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from support import SIM_KEY

from auto_label import generate, load_spec
from auto_label.ledger import queries

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from build_ledger import build

IMAGES = 40


def max_seq(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT MAX(seq) FROM events").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def built(tmp_path):
    return build(tmp_path / "results", tmp_path / "data", images=IMAGES, done=0.75, batch=9)


def test_planning_reads_the_projections_a_batch_at_a_time(built, sim, monkeypatch):
    monkeypatch.setattr("auto_label.pipelines.engine.runner.BATCH", 7)
    asked: list[int] = []
    whole: list[str] = []
    for name in ("images_of", "completions_of", "current_of"):
        real = getattr(queries, name)

        def spy(conn, ids, *rest, _real=real):
            asked.append(len(ids))
            return _real(conn, ids, *rest)

        monkeypatch.setattr(queries, name, spy)
    for name in ("images", "completions", "current"):
        real = getattr(queries, name)

        def whole_table(conn, _real=real, _name=name):
            whole.append(_name)
            return _real(conn)

        monkeypatch.setattr(queries, name, whole_table)

    summary = generate(load_spec(None, built.overrides(
        sim.openai_base_url, f"image_grounding.vlm.openai.api_key={SIM_KEY}")))

    assert summary.complete and summary.counts["0"]["cached"] == built.done
    assert whole == []
    assert len(asked) == 3 * -(-IMAGES // 7)  # three queries per batch of 7, whatever IMAGES
    assert max(asked) <= 7


def test_a_tiny_in_flight_bound_still_finishes_every_image(built, sim, monkeypatch):
    monkeypatch.setattr("auto_label.pipelines.engine.runner.IN_FLIGHT", 2)
    summary = generate(load_spec(None, built.overrides(
        sim.openai_base_url, f"image_grounding.vlm.openai.api_key={SIM_KEY}",
        "image_grounding.workflow.max_workers=8")))
    undone = IMAGES - built.done
    assert summary.complete
    assert summary.counts["0"]["completed"] == undone
    assert summary.counts["0"]["cached"] == built.done


def test_an_unchanged_rerun_appends_only_its_run_events(built, sim):
    spec = load_spec(None, built.overrides(
        sim.openai_base_url, f"image_grounding.vlm.openai.api_key={SIM_KEY}"))
    generate(spec)
    db = built.results_dir / "ledger.db"
    before = max_seq(db)
    sim.reset_counts()
    summary = generate(spec)
    assert summary.complete and summary.requests == 0
    assert max_seq(db) - before <= 3  # run_started, run_finished (+ a warning at most)
