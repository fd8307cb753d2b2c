"""Export at scale, as behaviour: records come from the projections and equal the fold of every
event; annotations.jsonl is brought up to date from the images touched since the last export,
with the same bytes as a full export, and done in full whenever the previous one is not
trusted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support import SIM_KEY, grounding_spec, referring_spec

from auto_label import export, generate, load_spec
from auto_label.exports import ExportOptions, RecordFilter
from auto_label.exports import incremental as incremental_module
from auto_label.exports.incremental import STATE_FILE
from auto_label.ledger.store import Ledger
from auto_label.pipelines import records as records_module
from auto_label.pipelines.records import folded_records, image_records
from auto_label.pipelines.registry import get_pipeline
from auto_label.sim import write_grounding_dataset, write_referring_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from build_ledger import build


def same_records(results: Path, pipeline: str) -> None:
    with Ledger.open(results, create=False) as ledger:
        folded = [r for r in folded_records(ledger, get_pipeline(pipeline)) if r.seed is not None]
        projected = list(image_records(ledger, get_pipeline(pipeline)))
    assert projected == folded


def test_records_from_the_projections_equal_the_fold_of_every_event(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "g", 5, seed=74)
    (data.root / data.records[0]["image_path"]).unlink()
    sim.script(["malformed", "malformed", "malformed", "malformed"], task="grounding.ground")
    for extra in ([], ["image_grounding.vlm.openai.temperature=0.2"], []):
        generate(grounding_spec(tmp_path / "gout", data.root, sim.openai_base_url, *extra))
    same_records(tmp_path / "gout", "image_grounding")
    referring = write_referring_dataset(tmp_path / "r", 3, seed=75)
    sim.script(["server_error"] * 8, task="referring.caption")
    generate(referring_spec(tmp_path / "rout", referring.root, sim,
                            "image_referring_expression.workflow.retries.max_attempts=1"))
    with Ledger.open(tmp_path / "rout", create=False) as ledger:
        failed = [r for r in image_records(ledger, get_pipeline("image_referring_expression"))
                  if r.failed]
    assert failed  # the failed captions are there to compare
    same_records(tmp_path / "rout", "image_referring_expression")


@pytest.fixture
def built(tmp_path):
    return build(tmp_path / "results", tmp_path / "data", images=40, done=0.75, batch=11)


def full_export(results: Path) -> bytes:
    (results / STATE_FILE).unlink(missing_ok=True)
    export(results)
    return (results / "annotations.jsonl").read_bytes()


def test_a_rerun_updates_annotations_from_the_images_it_touched(built, sim, monkeypatch):
    results = built.results_dir
    export(results)
    assert (results / STATE_FILE).exists()
    asked: list[list[str] | None] = []
    real = records_module.image_records

    def spy(ledger, pipeline, image_ids=None):
        asked.append(None if image_ids is None else list(image_ids))
        return real(ledger, pipeline, image_ids)

    monkeypatch.setattr(incremental_module, "image_records", spy)
    summary = generate(load_spec(None, built.overrides(
        sim.openai_base_url, f"image_grounding.vlm.openai.api_key={SIM_KEY}")))
    assert summary.records == 40
    fresh = [ids for ids in asked if ids is not None and len(ids) > 4]
    assert None not in asked and fresh == [sorted(built.undone)]
    updated = (results / "annotations.jsonl").read_bytes()
    monkeypatch.undo()
    assert updated == full_export(results)
    assert len(updated.splitlines()) == 40


def test_an_untrusted_previous_file_is_exported_in_full(built, sim):
    results = built.results_dir
    spec = load_spec(None, built.overrides(
        sim.openai_base_url, f"image_grounding.vlm.openai.api_key={SIM_KEY}"))
    export(results)
    (results / "annotations.jsonl").write_text('{"image_id": "img_00000000", "x": 1}\n')
    generate(spec)  # a hand-edited file: not merged into
    assert (results / "annotations.jsonl").read_bytes() == full_export(results)
    export(results, options=ExportOptions(filter=RecordFilter(min_score=0.95)))
    assert not (results / STATE_FILE).exists()  # a filtered file is no base for the next
    plain = export(results)
    assert plain.records == 40
    assert (results / "annotations.jsonl").read_bytes() == full_export(results)
