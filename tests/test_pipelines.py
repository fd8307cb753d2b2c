"""One conformance suite for every registered pipeline (the list comes from the registry):
its shape, its spec block, and a run end to end against the simulator that must give sound
records, resume without asking again, and leave a ledger whose outputs read back as their models.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import SIM_KEY, asked, grounding_overrides, read_jsonl, referring_overrides

from auto_label import export, generate, ledger_status, load_spec
from auto_label.errors import SpecError
from auto_label.ledger import Ledger
from auto_label.ledger.events import ResponseReceived
from auto_label.ledger.fingerprint import content_hash
from auto_label.pipelines.registry import PIPELINES
from auto_label.sim import write_grounding_dataset, write_referring_dataset

NAMES = sorted(PIPELINES)


def grounding_case(tmp_path: Path, sim) -> list[str]:
    data = write_grounding_dataset(tmp_path / "data", 4, seed=61, image_format="mixed")
    return grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url)


def referring_case(tmp_path: Path, sim) -> list[str]:
    data = write_referring_dataset(tmp_path / "data", 3, seed=62, image_format="mixed")
    return referring_overrides(tmp_path / "out", data.root, sim, backend="gemini")


CASES = {
    # How each pipeline gets a dataset and a spec against the simulator: a new pipeline adds
    # its line here.
    "image_grounding": grounding_case,
    "image_referring_expression": referring_case,
}
RECORD_KEYS = {"image_id", "image_path", "width", "height", "caption", "cleaned_caption",
               "regions", "expressions", "source", "pipeline_steps"}


def test_every_registered_pipeline_has_a_case():
    assert NAMES and set(NAMES) <= set(CASES), "add the pipeline to CASES"


@pytest.mark.parametrize("name", NAMES)
def test_the_steps_form_a_graph_in_order(name):
    pipeline = PIPELINES[name]
    numbers = [s.number for s in pipeline.steps]
    assert len(set(numbers)) == len(numbers)
    for index, step in enumerate(pipeline.steps):
        assert re.fullmatch(rf"step{step.number}_[a-z0-9_]+", step.name)
        assert all(n in numbers[:index] for n in step.needs)  # upstream steps come first
        assert pipeline.step(step.number) is step
    assert pipeline.workflow.model_validate({}).steps == numbers


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_step_in_the_spec_names_the_steps(name, tmp_path, sim):
    overrides = CASES[name](tmp_path, sim)
    with pytest.raises(SpecError, match=r"unknown step '9'; the steps are"):
        load_spec(None, [*overrides, f"{name}.workflow.steps=['9']"])


@pytest.mark.parametrize("name", NAMES)
def test_a_run_gives_sound_records_and_resumes_without_asking_again(name, tmp_path, sim):
    pipeline = PIPELINES[name]
    spec = load_spec(None, CASES[name](tmp_path, sim))
    first = generate(spec)
    assert first.complete and first.requests > 0
    out = tmp_path / "out"
    records = read_jsonl(out / "annotations.jsonl")
    assert records and [r["image_id"] for r in records] == sorted(r["image_id"] for r in records)
    for record in records:
        assert set(record) >= RECORD_KEYS
        assert record["source"] == name
        assert record["pipeline_steps"] == [s.name for s in pipeline.steps]
        width, height = record["width"], record["height"]
        for index, expression in enumerate(record["expressions"]):
            assert expression["expression_id"] == f"expr_{index:05d}"
            for instance in expression["instances"]:
                x1, y1, x2, y2 = instance["bbox"]
                assert all(isinstance(v, int) for v in instance["bbox"])
                assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
                assert 0.0 <= instance["bbox_score"] <= 1.0
    with Ledger.open(out, create=False) as ledger:
        for _, event in ledger.events(["step_completed"]):
            output = pipeline.step(event.step).stored_output(event)
            assert event.output_version == output.class_version
            assert content_hash(output.to_stored()) == event.output_hash
        responses = [e for _, e in ledger.events(["response_received"])]
    assert responses and all(isinstance(e, ResponseReceived) and e.model_version
                             and e.response_id for e in responses)
    before = (out / "annotations.jsonl").read_bytes()
    sim.reset_counts()
    again = generate(spec)
    assert again.requests == 0 and asked(sim) == [] and again.complete
    assert (out / "annotations.jsonl").read_bytes() == before
    export(out)
    assert (out / "annotations.jsonl").read_bytes() == before
    assert ledger_status(out, check=True).problems == []
    assert all(SIM_KEY.encode() not in p.read_bytes() for p in out.rglob("*") if p.is_file())
