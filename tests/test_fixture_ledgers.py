"""Ledgers written by auto-label 0.1.0 (tests/fixtures/ledgers_v0_1_0, kept forever) stay readable:
today's code exports the same records from them, finds them sound, and resumes them without asking
the model again. See tests/fixtures/make_ledger_fixtures.py for how they were made."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support import SIM_KEY, asked, backend_overrides

from auto_label import export, generate, ledger_status, load_spec
from auto_label.ledger import Ledger, queries
from auto_label.ledger.events import ResponseReceived, RunStarted, StepCompleted

FIXTURES = Path(__file__).parent / "fixtures" / "ledgers_v0_1_0"
PIPELINES = ["image_grounding", "image_referring_expression"]


@pytest.fixture(params=PIPELINES)
def old(request, tmp_path):
    """A copy of one fixture (dataset and results_dir), and its pipeline's name."""
    shutil.copytree(FIXTURES / request.param, tmp_path / request.param)
    return request.param, tmp_path / request.param


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".db" and not p.name.startswith(".")
            and "ledger.db" not in p.name}


def test_the_old_ledger_exports_the_same_files_and_is_sound(old):
    pipeline, root = old
    results = root / "results"
    before = files_under(results)
    for path in results.rglob("*"):
        if path.is_file() and "ledger.db" not in path.name:
            path.unlink()
    fmt = "both" if pipeline == "image_referring_expression" else "jsonl"
    result = export(results, output_format=fmt)
    assert result.records == len((FIXTURES / pipeline / "results" / "annotations.jsonl")
                                 .read_text().splitlines())
    assert files_under(results) == before
    status = ledger_status(results, check=True)
    assert status.problems == []
    assert status.pipeline == pipeline and status.runs >= 1


def test_old_events_and_outputs_read_as_todays_models(old):
    _, root = old
    with Ledger.open(root / "results", create=False) as ledger:
        events = [e for _, e in ledger.events()]
        runs = queries.runs(ledger.connection())
    completions = [e for e in events if isinstance(e, StepCompleted)]
    assert completions and {e.output_version for e in completions} == {1}
    assert all(isinstance(e, ResponseReceived) and e.model_version is None
               for e in events if e.type == "response_received")
    started = [e for e in events if isinstance(e, RunStarted)]
    # m002 rebuilt `runs` from the events: one row per run_started, with its time
    assert [(r.run_id, r.started_at) for r in runs] == [(e.run_id, e.at) for e in started]
    assert all(r.status == "completed" for r in runs)


def test_every_old_output_reads_as_its_step_model_and_dumps_back_unchanged(old):
    from auto_label.ledger.fingerprint import content_hash
    from auto_label.pipelines.registry import get_pipeline

    pipeline_name, root = old
    pipeline = get_pipeline(pipeline_name)
    with Ledger.open(root / "results", create=False) as ledger:
        completions = [e for _, e in ledger.events(["step_completed"])]
    for event in completions:
        typed = pipeline.step(event.step).stored_output(event)
        assert content_hash(typed.to_stored()) == event.output_hash


def test_the_old_ledger_resumes_without_asking_again(old, sim):
    pipeline, root = old
    data = root / "data"
    if pipeline == "image_grounding":
        inputs = [f"image_grounding.data.input_jsonl={data / 'input.jsonl'}",
                  f"image_grounding.data.image_root={data}",
                  "image_grounding.vlm.openai.temperature=0.0"]  # as in the fixture's last run
        backend = "openai"
    else:
        inputs = [f"{pipeline}.data.image_dir={data / 'images'}",
                  f"{pipeline}.data.kitti_label_dir={data / 'labels'}",
                  f"{pipeline}.workflow.output_format=both"]
        backend = "gemini"
    overrides = [f"results_dir={root / 'results'}", f"autolabel_type={pipeline}",
                 *backend_overrides(pipeline, backend, sim), *inputs]
    summary = generate(load_spec(None, overrides))
    assert summary.requests == 0
    assert asked(sim) == []
    for number, _ in summary.steps:
        counts = summary.counts.get(number, {})
        assert counts.get("completed", 0) == 0
        assert counts.get("cached", 0) >= 3
    assert ledger_status(root / "results", check=True).problems == []
    records = [json.loads(line) for line in
               (root / "results" / "annotations.jsonl").read_text().splitlines()]
    old_records = [json.loads(line) for line in
                   (FIXTURES / pipeline / "results" / "annotations.jsonl").read_text()
                   .splitlines()]
    strip = ("image_path",)  # re-seeded from where the copy lives
    assert [{k: v for k, v in r.items() if k not in strip} for r in records] == \
        [{k: v for k, v in r.items() if k not in strip} for r in old_records]
    assert SIM_KEY not in (root / "results" / "annotations.jsonl").read_text()
