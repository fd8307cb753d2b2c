"""image_referring_expression end to end through the real SDKs against the simulator."""

from __future__ import annotations

import json
import re

import pytest
from support import SIM_KEY, asked, read_jsonl, referring_spec, sha_of

from auto_label import export, generate
from auto_label.boxes import iou
from auto_label.ledger import Ledger
from auto_label.sim import write_referring_dataset

LEGACY_LINE = re.compile(r"^(?P<phrase>.+?):\s*(?P<bboxes>\[\[.*?\]\])\s*$")
STEP_DIRS = ["step_0_region_expr", "step_1_image_caption", "step_2_grounding_expr",
             "step_3_double_check"]


def truth_matches(record, truth):
    """Each region's colour and type are those of the true object under its box."""
    for region in record["regions"]:
        best = max(truth["objects"], key=lambda o: iou(o["bbox"], region["bbox"]))
        if (region["color"], region["type"]) != (best["color"], best["shape"]):
            return False
    return True


@pytest.mark.parametrize("backend", ["openai", "gemini"])
def test_records_carry_regions_caption_and_verified_expressions(tmp_path, sim, backend):
    data = write_referring_dataset(tmp_path / "data", 5, seed=51, image_format="mixed")
    summary = generate(referring_spec(tmp_path / "out", data.root, sim, backend=backend))
    assert summary.complete
    assert [r.protocol for r in asked(sim)] == [backend] * 20
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    truth = data.by_id()
    assert [r["image_id"] for r in records] == sorted(truth)
    for record in records:
        row = truth[record["image_id"]]
        assert record["source"] == "image_referring_expression"
        assert record["pipeline_steps"] == ["step0_region_expr", "step1_image_caption",
                                            "step2_grounding_expr", "step3_double_check"]
        assert [k[:4] for k in record["kitti_bboxes"]] == [o["bbox"] for o in row["objects"]]
        assert [r["bbox"] for r in record["regions"]] == [o["bbox"] for o in row["objects"]]
        assert truth_matches(record, row)
        assert all(len(r["description"].split()) < 15 for r in record["regions"])
        assert record["caption"] and record["expressions"]
        seeded = [k[:4] for k in record["kitti_bboxes"]]
        ids = []
        for index, expression in enumerate(record["expressions"]):
            assert expression["expression_id"] == f"expr_{index:05d}"
            assert expression["verified"] is True
            for instance in expression["instances"]:
                assert instance["bbox"] in seeded
                ids.append(instance["bbox_id"])
        assert ids == [f"box_{i:05d}" for i in range(len(ids))]
    assert all(SIM_KEY.encode() not in p.read_bytes()
               for p in (tmp_path / "out").rglob("*") if p.is_file())


@pytest.mark.parametrize("output_format", ["jsonl", "legacy", "both"])
def test_output_formats_and_the_legacy_layout(tmp_path, sim, output_format):
    data = write_referring_dataset(tmp_path / "data", 3, seed=52)
    out = tmp_path / "out"
    generate(referring_spec(out, data.root, sim,
                            f"image_referring_expression.workflow.output_format={output_format}"))
    assert (out / "annotations.jsonl").exists() == (output_format != "legacy")
    legacy = output_format != "jsonl"
    assert all((out / d / "labels").is_dir() == legacy for d in STEP_DIRS)
    if not legacy:
        return
    for row in data.records:
        stem = row["image_id"]
        regions = json.loads((out / STEP_DIRS[0] / "labels" / f"{stem}.txt.step0").read_text())
        assert [r["bbox_2d"] for r in regions] == [o["bbox"] for o in row["objects"]]
        assert {"type", "color", "description"} <= set(regions[0])
        caption = (out / STEP_DIRS[1] / "labels" / f"{stem}.txt.step1").read_text()
        assert caption.strip() and "\n" not in caption.strip()
        for step in (2, 3):
            text = (out / STEP_DIRS[step] / "labels" / f"{stem}.txt.step{step}").read_text()
            lines = text.splitlines()
            assert lines
            for line in lines:
                match = LEGACY_LINE.match(line)
                assert match, line
                boxes = json.loads(match["bboxes"])
                assert all(b in [o["bbox"] for o in row["objects"]] for b in boxes)
    # the legacy files are projections: export regenerates them
    target = out / STEP_DIRS[3] / "labels" / f"{data.records[0]['image_id']}.txt.step3"
    before = target.read_text()
    target.unlink()
    export(out)
    assert target.read_text() == before


def test_step_3_removes_wrong_boxes_and_the_removals_are_recorded(tmp_path, make_sim):
    server = make_sim(group_noise=1.0, extra_box=1.0)
    data = write_referring_dataset(tmp_path / "data", 4, seed=53)
    generate(referring_spec(tmp_path / "out", data.root, server))
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        outputs = {(e.image_id, e.step): e.output for _, e in ledger.events(["step_completed"])}
    grouped = [o for (_, step), o in outputs.items() if step == "2"]
    checked = [o for (_, step), o in outputs.items() if step == "3"]
    assert sum(o["dropped_boxes"] for o in grouped) >= 4  # invented boxes never get in
    assert sum(len(o["removed"]) for o in checked) >= 4  # noise boxes found and removed
    for record in read_jsonl(tmp_path / "out" / "annotations.jsonl"):
        truth = data.by_id()[record["image_id"]]
        for expression in record["expressions"]:
            words = expression["text"].lower()
            for instance in expression["instances"]:
                obj = next(o for o in truth["objects"] if o["bbox"] == instance["bbox"])
                assert obj["color"] in words or obj["shape"].rstrip("e") in words or \
                    len(expression["instances"]) == 1


def test_a_changed_label_file_reruns_the_steps_that_depend_on_it_for_that_image_only(
        tmp_path, sim):
    data = write_referring_dataset(tmp_path / "data", 3, seed=54)
    spec = referring_spec(tmp_path / "out", data.root, sim)
    generate(spec)
    changed = data.records[1]
    label = data.root / "labels" / f"{changed['image_id']}.txt"
    label.write_text("".join(label.read_text().splitlines(keepends=True)[:-1]))
    sim.reset_counts()
    summary = generate(spec)
    asked = {task for _, task in sim.counts()}
    assert asked == {"referring.region", "referring.group", "referring.verify"}
    assert {sha for sha, _ in sim.counts()} == {sha_of(data.root / changed["image_path"])}
    assert summary.counts["1"] == {"cached": 3}
    assert summary.counts["0"] == {"cached": 2, "completed": 1}
    record = next(r for r in read_jsonl(tmp_path / "out" / "annotations.jsonl")
                  if r["image_id"] == changed["image_id"])
    assert len(record["regions"]) == len(changed["objects"]) - 1


def test_malformed_kitti_rows_and_unmatched_files_are_reported_and_skipped(tmp_path, sim):
    data = write_referring_dataset(tmp_path / "data", 4, seed=55)
    labels = data.root / "labels"
    first = labels / f"{data.records[0]['image_id']}.txt"
    first.write_text(first.read_text() + "car 0 0\nvan 0.0 0 0.0 a b c d 0 0 0\n"
                     "bus 0 0 0 50 50 10 10\ntruck 0 0 0 5000 5000 6000 6000\n")
    (labels / f"{data.records[1]['image_id']}.txt").unlink()
    (labels / "orphan.txt").write_text("car 0 0 0 1 1 5 5\n")
    summary = generate(referring_spec(tmp_path / "out", data.root, sim))
    assert summary.complete and summary.images == 3
    text = "\n".join(summary.warnings)
    assert f"{first}:{len(data.records[0]['objects']) + 1}: expected at least 8 columns" in text
    assert f"{first}:{len(data.records[0]['objects']) + 2}: box columns 4-7 are not numbers" in text
    assert f"{first}:{len(data.records[0]['objects']) + 3}: inverted or empty box" in text
    assert f"{first}:{len(data.records[0]['objects']) + 4}: box" in text and "outside" in text
    assert f"1 image(s) in {data.root / 'images'} have no label file" in text
    assert data.records[1]["image_id"] in text
    assert "1 label file(s)" in text and "orphan" in text
    record = next(r for r in read_jsonl(tmp_path / "out" / "annotations.jsonl")
                  if r["image_id"] == data.records[0]["image_id"])
    assert len(record["kitti_bboxes"]) == len(data.records[0]["objects"])


def test_seeding_from_annotations_runs_only_the_later_steps(tmp_path, sim):
    data = write_referring_dataset(tmp_path / "data", 3, seed=56)
    generate(referring_spec(tmp_path / "first", data.root, sim,
                            "image_referring_expression.workflow.steps=['0','1']"))
    full = tmp_path / "full"
    generate(referring_spec(full, data.root, sim))
    sim.reset_counts()
    summary = generate(referring_spec(
        tmp_path / "second", data.root, sim,
        "image_referring_expression.data.image_dir=",
        "image_referring_expression.data.kitti_label_dir=",
        f"image_referring_expression.data.input_annotations_jsonl="
        f"{tmp_path / 'first' / 'annotations.jsonl'}",
        "image_referring_expression.workflow.steps=['2','3']"))
    assert summary.complete
    assert {task for _, task in sim.counts()} == {"referring.group", "referring.verify"}
    second = read_jsonl(tmp_path / "second" / "annotations.jsonl")
    assert second == read_jsonl(full / "annotations.jsonl")
    with Ledger.open(tmp_path / "second", create=False) as ledger:
        imported = [e for _, e in ledger.events(["step_completed"]) if e.source]
    assert {e.step for e in imported} == {"0", "1"} and len(imported) == 6
    assert all("annotations.jsonl:" in e.source for e in imported)


def test_the_reference_style_annotations_import_boxes_and_run_every_step(tmp_path, sim):
    data = write_referring_dataset(tmp_path / "data", 2, seed=57)
    lines = []
    for row in data.records:
        lines.append(json.dumps({
            "image_id": row["image_id"], "image_path": str(data.root / row["image_path"]),
            "width": row["width"], "height": row["height"], "caption": None,
            "cleaned_caption": None, "regions": [], "expressions": [],
            "kitti_bboxes": [[*o["bbox"], o["shape"]] for o in row["objects"]],
            "source": "image_referring_expression", "pipeline_steps": []}))
    (tmp_path / "ref.jsonl").write_text("\n".join(lines) + "\n")
    summary = generate(referring_spec(
        tmp_path / "out", data.root, sim, "image_referring_expression.data.image_dir=",
        "image_referring_expression.data.kitti_label_dir=",
        f"image_referring_expression.data.input_annotations_jsonl={tmp_path / 'ref.jsonl'}"))
    assert summary.complete and summary.records == 2


def test_kitti_dontcare_rows_are_skipped_and_counted(tmp_path, sim):
    data = write_referring_dataset(tmp_path / "data", 3, seed=57)
    labels = sorted((data.root / "labels").glob("*.txt"))
    for label in labels[:2]:  # as in KITTI: unlabelled areas beside the real objects
        with label.open("a") as handle:
            handle.write("DontCare -1 -1 -10 5.00 5.00 60.00 40.00 -1 -1 -1 -1000 -1000 -1000 -10\n"
                         "DontCare -1 -1 -10 70.00 8.00 90.00 30.00 -1 -1 -1 -1000 -1000 -1000 "
                         "-10\n")
    summary = generate(referring_spec(tmp_path / "out", data.root, sim))
    assert summary.complete
    assert any("4 DontCare row(s)" in w and "in 2 label file(s)" in w for w in summary.warnings)
    for record in read_jsonl(tmp_path / "out" / "annotations.jsonl"):
        truth = data.by_id()[record["image_id"]]
        assert len(record["regions"]) == len(truth["objects"])
        assert all(k[4] != "DontCare" for k in record["kitti_bboxes"])
