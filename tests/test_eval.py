"""`auto_label eval`: scores against the simulator's ground truth, a planted miss counted, truth
read from our JSONL, COCO and ODVG alike, two results dirs side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import grounding_spec, read_jsonl, referring_spec
from typer.testing import CliRunner

from auto_label.api import generate
from auto_label.cli.main import app
from auto_label.evaluate import evaluate, referents, score_referring
from auto_label.exports.coco import CocoFile
from auto_label.exports.odvg import OdvgFiles
from auto_label.ledger.store import Ledger
from auto_label.pipelines.records import image_records
from auto_label.pipelines.registry import get_pipeline
from auto_label.sim import SimConfig, Simulator, write_grounding_dataset, write_referring_dataset
from auto_label.truth import read_truth

KEY = "sk-sim-test-key-0123456789"


@pytest.fixture(scope="module")
def grounded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    data = write_grounding_dataset(root / "data", 8, seed=81)
    with Simulator(SimConfig(seed=3, api_key=KEY)) as sim:
        assert generate(grounding_spec(root / "out", data.root, sim.openai_base_url)).complete
    return root / "out", data.ground_truth_path


def test_the_simulator_grounds_every_phrase_and_a_planted_miss_is_counted(grounded, tmp_path):
    out, truth = grounded
    report = evaluate(out, truth)
    rows = read_jsonl(truth)
    phrases = sum(len(r["expressions"]) for r in rows)
    assert report.grounding is not None and report.grounding.phrases == phrases
    assert report.grounding.accuracy(0.5) == 1.0 and report.misses() == []
    # plant a miss: one truth box moved away from its object
    rows[0]["expressions"][0]["instances"] = [{"bbox": [0, 0, 5, 5]}]
    planted = tmp_path / "truth.jsonl"
    planted.write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = evaluate(out, planted)
    assert again.grounding is not None
    assert again.grounding.accuracy(0.5) == pytest.approx((phrases - 1) / phrases)
    [miss] = again.misses()
    assert rows[0]["image_id"] in miss and rows[0]["expressions"][0]["text"] in miss
    assert again.grounding.recall_at(10) == pytest.approx((phrases - 1) / phrases)


def test_truth_from_coco_and_odvg_scores_alike(grounded):
    out, _ = grounded
    with Ledger.open(out, create=False) as ledger:
        records = list(image_records(ledger, get_pipeline("image_grounding")))
    for sink in (CocoFile(out), OdvgFiles(out)):
        for record in records:
            sink.add(record)
        written = sink.close()
        report = evaluate(out, written.paths[0])  # our own export as truth: all correct
        assert report.grounding is not None and report.grounding.phrases > 0
        assert report.grounding.accuracy(0.5) == 1.0


def test_referring_coverage_and_expressions(tmp_path):
    data = write_referring_dataset(tmp_path / "data", 5, seed=82)
    with Simulator(SimConfig(seed=3, api_key=KEY)) as sim:
        assert generate(referring_spec(tmp_path / "out", data.root, sim)).complete
    report = evaluate(tmp_path / "out", data.ground_truth_path)
    assert report.referring is not None
    objects = sum(len(r["regions"]) for r in read_jsonl(data.ground_truth_path))
    assert report.referring.objects == objects and report.referring.coverage == 1.0
    assert report.referring.described == objects  # the simulator names colour and type right
    ref = report.referring
    assert ref.expressions > 0 and ref.judged == ref.expressions  # sim expressions name shapes
    assert ref.expression_accuracy > 0.9
    # a planted wrong box: one expression moved onto another object of the image
    rows = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    truth = {r["image_id"]: r for r in read_jsonl(data.ground_truth_path)}
    row = next(r for r in rows if len(truth[r["image_id"]]["regions"]) > 1
               and r["expressions"])
    expression = row["expressions"][0]
    held = [i["bbox"] for i in expression["instances"]]
    elsewhere = next(g["bbox"] for g in truth[row["image_id"]]["regions"]
                     if g["bbox"] not in held)
    expression["instances"] = [{"bbox": elsewhere}]
    planted = score_referring(rows, read_truth(data.ground_truth_path))
    assert planted.correct == ref.correct - 1
    assert any(row["image_id"] in m and expression["text"] in m for m in planted.misses)


def test_referents_follow_the_words_of_an_expression():
    objects = [((0, 0, 10, 10), "car", "red"), ((20, 0, 30, 10), "car", "red"),
               ((40, 0, 50, 10), "car", "blue"), ((60, 0, 70, 10), "traffic light", None)]
    red, blue, light = [objects[0][0], objects[1][0]], [objects[2][0]], [objects[3][0]]
    assert referents("the red cars", objects) == (red, False)
    assert referents("Both red cars.", objects) == (red, False)
    assert referents("the red car on the left", objects) == (red, True)  # a subset may do
    assert referents("a blue car", objects) == (blue, False)
    assert referents("the traffic lights", objects) == (light, False)
    assert referents("a bicycle", objects) is None  # names nothing the truth has: not judged
    assert referents("cars", objects) == ([o[0] for o in objects[:3]], False)


def test_a_pilot_is_scored_on_its_own_images(grounded):
    out, truth = grounded
    rows = read_jsonl(truth)
    partial = out.parent / "more_truth.jsonl"  # truth for images the results never saw
    extra = dict(rows[0], image_id="never_seen")
    partial.write_text("".join(json.dumps(r) + "\n" for r in [*rows, extra]))
    whole = evaluate(out, partial)
    pilot = evaluate(out, partial, only_recorded=True)
    assert whole.grounding is not None and pilot.grounding is not None
    assert whole.grounding.accuracy(0.5) < 1.0 and pilot.grounding.accuracy(0.5) == 1.0
    assert pilot.truth_images == whole.truth_images - 1


def test_cli_compares_two_results_dirs_and_says_why_a_truth_file_is_useless(grounded, tmp_path):
    out, truth = grounded
    runner = CliRunner()
    shown = runner.invoke(app, ["eval", str(out), "--truth", str(truth), "--compare", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "Acc@0.5" in shown.output and shown.output.count("1.000") >= 2
    as_json = json.loads(runner.invoke(app, ["eval", str(out), "--truth", str(truth),
                                             "--json"]).output)
    assert as_json["figures"]["Acc@0.5"] == 1.0
    bare = tmp_path / "objects_only.jsonl"
    bare.write_text(json.dumps({"image_id": "x", "objects": []}) + "\n")
    useless = runner.invoke(app, ["eval", str(out), "--truth", str(bare)])
    assert useless.exit_code == 2 and "nothing to score" in useless.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"image_id": "x",\n')
    bad = runner.invoke(app, ["eval", str(out), "--truth", str(broken)])
    assert bad.exit_code == 2 and f"{broken}:1" in bad.output and "Traceback" not in bad.output
