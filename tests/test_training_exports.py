"""Training formats: COCO (with referring sentences and tokens_positive), ODVG and the chat SFT
JSONL, read back with the consumers' loaders where one exists (pycocotools), on real runs
against the simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pycocotools.coco import COCO
from support import grounding_spec, read_jsonl, referring_spec

from auto_label.api import generate
from auto_label.boxes import CONVENTIONS, to_pixels
from auto_label.exports.coco import CocoFile
from auto_label.exports.filters import RecordFilter
from auto_label.exports.odvg import LABEL_MAP_FILE, OdvgFiles
from auto_label.exports.sft import SftJsonl, sft_lines
from auto_label.ledger.store import Ledger
from auto_label.pipelines.records import image_records
from auto_label.pipelines.registry import get_pipeline
from auto_label.sim import write_grounding_dataset, write_referring_dataset


def _export(out: Path, pipeline: str, sink: Any) -> Any:
    with Ledger.open(out, create=False) as ledger:
        for record in image_records(ledger, get_pipeline(pipeline)):
            sink.add(record)
    return sink.close()


@pytest.fixture(scope="module")
def grounding_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from auto_label.sim import SimConfig, Simulator

    root = tmp_path_factory.mktemp("grounding")
    data = write_grounding_dataset(root / "data", 8, seed=71)
    with Simulator(SimConfig(seed=3, api_key="sk-sim-test-key-0123456789")) as sim:
        assert generate(grounding_spec(root / "out", data.root, sim.openai_base_url)).complete
    return root / "out"


@pytest.fixture(scope="module")
def referring_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from auto_label.sim import SimConfig, Simulator

    root = tmp_path_factory.mktemp("referring")
    data = write_referring_dataset(root / "data", 6, seed=72)
    with Simulator(SimConfig(seed=3, api_key="sk-sim-test-key-0123456789")) as sim:
        assert generate(referring_spec(root / "out", data.root, sim)).complete
    return root / "out"


def test_coco_loads_with_pycocotools_and_every_box_round_trips(grounding_run):
    written = _export(grounding_run, "image_grounding", CocoFile(grounding_run))
    records = read_jsonl(grounding_run / "annotations.jsonl")
    coco = COCO(str(written.paths[0]))
    assert len(coco.getImgIds()) == len(records) == written.records
    for record in records:
        [image] = [i for i in coco.dataset["images"] if i["original_id"] == record["image_id"]]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        got = sorted([a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                      a["bbox"][1] + a["bbox"][3]] for a in anns)
        want = sorted({tuple(i["bbox"]) for e in record["expressions"]
                       for i in e["instances"]})
        assert [tuple(b) for b in got] == want  # every box, once, exactly
        caption = image["caption"]
        for ann in anns:
            assert ann["sentences"] and ann["area"] == ann["bbox"][2] * ann["bbox"][3]
            for start, end in ann["tokens_positive"]:
                assert caption[start:end] in {s["raw"] for s in ann["sentences"]}
            name = coco.loadCats([ann["category_id"]])[0]["name"]
            assert name == name.lower() and name


def test_coco_of_referring_results_carries_region_types_and_sentences(referring_run):
    written = _export(referring_run, "image_referring_expression", CocoFile(referring_run))
    coco = COCO(str(written.paths[0]))
    records = read_jsonl(referring_run / "annotations.jsonl")
    types = {r["type"] for rec in records for r in rec["regions"]}
    assert {c["name"] for c in coco.dataset["categories"]} == types
    for record in records:
        [image] = [i for i in coco.dataset["images"] if i["original_id"] == record["image_id"]]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert len(anns) == len(record["regions"])  # expressions point at the KITTI boxes
        by_box = {(a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                   a["bbox"][1] + a["bbox"][3]): a for a in anns}
        for expression in record["expressions"]:
            for instance in expression["instances"]:
                sentences = by_box[tuple(instance["bbox"])]["sentences"]
                assert expression["text"] in {s["raw"] for s in sentences}


def test_odvg_has_the_fields_its_loaders_read(grounding_run, referring_run):
    written = _export(grounding_run, "image_grounding", OdvgFiles(grounding_run))
    lines = read_jsonl(written.paths[0])
    records = {r["image_path"]: r for r in read_jsonl(grounding_run / "annotations.jsonl")}
    for line in lines:
        record = records[line["filename"]]
        assert (line["height"], line["width"]) == (record["height"], record["width"])
        caption = line["grounding"]["caption"]
        boxes = sorted(tuple(r["bbox"]) for r in line["grounding"]["regions"])
        assert boxes == sorted(tuple(i["bbox"]) for e in record["expressions"]
                               for i in e["instances"])
        for region in line["grounding"]["regions"]:
            for start, end in region.get("tokens_positive", []):
                assert caption[start:end] == region["phrase"]
    assert "detection" not in lines[0]
    referring = _export(referring_run, "image_referring_expression", OdvgFiles(referring_run))
    label_map = json.loads((referring_run / LABEL_MAP_FILE).read_text())
    for line in read_jsonl(referring.paths[0]):
        for instance in line["detection"]["instances"]:
            assert label_map[str(instance["label"])] == instance["category"]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_sft_boxes_convert_back_to_the_stored_ones(grounding_run, convention):
    records = read_jsonl(grounding_run / "annotations.jsonl")
    for record in records:
        size = (record["width"], record["height"])
        lines = list(sft_lines(record, convention))
        with_boxes = [e for e in record["expressions"] if e["instances"]]
        assert len(lines) == len(with_boxes)
        for line, expression in zip(lines, with_boxes, strict=True):
            user, assistant = line["messages"]
            assert user["content"].startswith("<image>") and expression["text"] in user["content"]
            assert line["images"] == [record["image_path"]]
            answer = json.loads(assistant["content"])
            key = "box_2d" if convention == "yxyx_1000" else "bbox_2d"
            for box, instance in zip(answer, expression["instances"], strict=True):
                back = to_pixels(box[key], convention, size, size)
                unit = (1 if convention == "xyxy_pixel"
                        else max(size) / 1000)  # one step of the 0-1000 grid
                assert all(abs(a - b) <= unit / 2 + 1e-9 for a, b in
                           zip(back, instance["bbox"], strict=True))


def test_sft_in_a_processor_frame_and_the_filters(grounding_run):
    def frame(width: int, height: int) -> tuple[int, int]:
        return width // 2, height // 2

    records = read_jsonl(grounding_run / "annotations.jsonl")
    record = next(r for r in records if r["expressions"] and r["expressions"][0]["instances"])
    [line, *_] = sft_lines(record, "xyxy_pixel", frame)
    box = json.loads(line["messages"][1]["content"])[0]["bbox_2d"]
    stored = record["expressions"][0]["instances"][0]["bbox"]
    assert all(abs(a - b / 2) <= 0.5 for a, b in zip(box, stored, strict=True))
    scores = sorted(i["bbox_score"] for r in records for e in r["expressions"]
                    for i in e["instances"])
    cut = scores[len(scores) // 2]
    sink = SftJsonl(grounding_run, RecordFilter(min_score=cut), "xyxy_1000")
    written = _export(grounding_run, "image_grounding", sink)
    kept = sum(len(json.loads(x["messages"][1]["content"])) for x in read_jsonl(written.paths[0]))
    assert kept == sum(1 for s in scores if s >= cut) < len(scores)


def test_verified_only_keeps_what_the_check_confirmed():
    record = {"image_id": "a", "image_path": "a.jpg", "width": 100, "height": 100,
              "regions": [], "expressions": [
                  {"text": "yes", "verified": True, "instances": [{"bbox": [0, 0, 10, 10]}]},
                  {"text": "no", "verified": False, "instances": [{"bbox": [5, 5, 20, 20]}]},
                  {"text": "unchecked", "verified": None,
                   "instances": [{"bbox": [1, 1, 9, 9]}]}]}
    kept = RecordFilter(verified_only=True).apply(record)
    assert [e["text"] for e in kept["expressions"]] == ["yes"]
    assert len(record["expressions"]) == 3  # the input is left alone


def test_export_command_writes_each_training_format_with_its_options(referring_run):
    from typer.testing import CliRunner

    from auto_label.cli.main import app

    runner = CliRunner()
    out = str(referring_run)
    for fmt, name in (("coco", "coco.json"), ("odvg", "odvg.jsonl")):
        done = runner.invoke(app, ["export", out, "--format", fmt])
        assert done.exit_code == 0, done.output
        assert str(referring_run / name) in done.output
    refused = runner.invoke(app, ["export", out, "--format", "sft"])
    assert refused.exit_code == 2 and "--for-model" in refused.output
    qwen = runner.invoke(app, ["export", out, "--format", "sft", "--for-model",
                               "Qwen/Qwen2.5-VL-7B-Instruct", "--max-pixels", "200704"])
    assert qwen.exit_code == 0, qwen.output
    sample = read_jsonl(referring_run / "sft.jsonl")[0]
    assert '"bbox_2d"' in sample["messages"][1]["content"]
    records = read_jsonl(referring_run / "annotations.jsonl")
    # --step 2: the expressions before the check (never verified), no record change on disk
    before = runner.invoke(app, ["export", out, "--format", "odvg", "--step", "2"])
    assert before.exit_code == 0, before.output
    assert len(read_jsonl(referring_run / "odvg.jsonl")) == len(records)
    unverified = runner.invoke(app, ["export", out, "--format", "coco", "--step", "2",
                                     "--verified-only"])
    assert unverified.exit_code == 0
    coco = json.loads((referring_run / "coco.json").read_text())
    assert not any(s.get("source") == "expression" for a in coco["annotations"]
                   for s in a["sentences"])  # nothing is verified before step 3
    for bad, says in ((["--format", "legacy", "--min-score", "0.5"], "filters do not apply"),
                      (["--format", "coco", "--step", "9"], "the steps are"),
                      (["--format", "coco", "--coordinates", "xyxy_1000"], "for --format sft"),
                      (["--format", "sft", "--for-model", "mystery-vl"], "no profile")):
        result = runner.invoke(app, ["export", out, *bad])
        assert result.exit_code == 2 and says in result.output, (bad, result.output)
