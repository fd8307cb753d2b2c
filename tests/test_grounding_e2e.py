"""image_grounding end to end: the real openai SDK against the simulator, on generated scenes."""

from __future__ import annotations

import sqlite3

from support import SIM_KEY, asked, grounding_spec, read_jsonl, sha_of

from auto_label import generate
from auto_label import records as api_records
from auto_label.evaluate import match_ground_truth
from auto_label.ledger import Ledger
from auto_label.sim import append_grounding_images, write_grounding_dataset


def completions_per_image_step(results):
    with Ledger.open(results, create=False) as ledger:
        rows = ledger.connection().execute(
            "SELECT image_id, step, COUNT(*) FROM events WHERE type = 'step_completed' "
            "GROUP BY image_id, step").fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def test_annotations_match_the_ground_truth_and_the_unified_schema(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 8, seed=11, image_format="mixed")
    summary = generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url))
    assert summary.complete
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    assert list(api_records(tmp_path / "out")) == records  # the API folds the same records
    assert [r["image_id"] for r in records] == sorted(data.by_id())
    report = match_ground_truth(records, data.records)
    assert report.truth > 0 and report.matched == report.truth
    assert report.predicted == report.truth
    truth = data.by_id()
    for record in records:
        assert record["source"] == "image_grounding"
        assert record["pipeline_steps"] == ["step0_expression_extraction", "step1_grounding"]
        assert (record["width"], record["height"]) == (truth[record["image_id"]]["width"],
                                                       truth[record["image_id"]]["height"])
        assert record["caption"] == truth[record["image_id"]]["caption"]
        assert record["regions"] == []
        box_ids = []
        for index, expression in enumerate(record["expressions"]):
            assert expression["expression_id"] == f"expr_{index:05d}"
            start, end = expression["char_span"]
            assert record["cleaned_caption"][start:end] == expression["text"]
            assert expression["verified"] is None
            for instance in expression["instances"]:
                x1, y1, x2, y2 = instance["bbox"]
                assert all(isinstance(v, int) for v in instance["bbox"])
                assert 0 <= x1 < x2 <= record["width"] and 0 <= y1 < y2 <= record["height"]
                assert 0 <= instance["bbox_score"] <= 1
                box_ids.append(instance["bbox_id"])
        assert box_ids == [f"box_{i:05d}" for i in range(len(box_ids))]


def test_a_rerun_asks_nothing_and_an_added_image_is_the_only_one_asked(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 5, seed=2)
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url)
    generate(spec)
    first = (tmp_path / "out" / "annotations.jsonl").read_text()
    before = sim.counts()
    again = generate(spec)
    assert sim.counts() == before
    assert again.requests == 0
    assert again.counts["0"]["cached"] == 5 and again.counts["1"]["cached"] == 5
    assert (tmp_path / "out" / "annotations.jsonl").read_text() == first

    grown = append_grounding_images(data.root, 2, seed=2)
    sim.reset_counts()
    summary = generate(spec)
    new_shas = {sha_of(data.root / grown.by_id()[i]["image_path"]) for i in grown.added}
    assert {sha for sha, _ in sim.counts()} == new_shas
    assert all(n == 1 for n in sim.counts().values())
    assert summary.counts["0"]["completed"] == 2 and summary.counts["0"]["cached"] == 5
    assert len(read_jsonl(tmp_path / "out" / "annotations.jsonl")) == 7
    assert set(completions_per_image_step(tmp_path / "out").values()) == {1}


def test_force_reprocess_asks_again_and_the_newest_completion_wins(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=5)
    generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url))
    first = (tmp_path / "out" / "annotations.jsonl").read_text()
    sim.reset_counts()
    summary = generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                                      "image_grounding.workflow.force_reprocess=true"))
    assert summary.counts["0"]["completed"] == 3 and summary.counts["1"]["completed"] == 3
    assert sorted(sim.counts().values()) == [1] * 6
    assert set(completions_per_image_step(tmp_path / "out").values()) == {2}
    assert (tmp_path / "out" / "annotations.jsonl").read_text() == first
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        newest = {e.image_id: e.run_id for _, e in ledger.events(["step_completed"])}
        assert set(newest.values()) == {summary.run_id}


def test_ids_and_output_do_not_depend_on_thread_timing(tmp_path, make_sim):
    data = write_grounding_dataset(tmp_path / "data", 6, seed=8)
    outputs = []
    for workers, jitter in ((1, 0.0), (6, 0.03)):
        server = make_sim(seed=1, latency_mean=0.01, latency_jitter=jitter)
        results = tmp_path / f"out{workers}"
        generate(grounding_spec(results, data.root, server.openai_base_url,
                                f"image_grounding.workflow.max_workers={workers}"))
        outputs.append((results / "annotations.jsonl").read_text())
    assert outputs[0] == outputs[1]


def test_missing_and_corrupt_images_fail_alone_and_the_run_goes_on(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 4, seed=9)
    rows = data.records
    (data.root / rows[0]["image_path"]).unlink()
    corrupt = data.root / rows[1]["image_path"]
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    (data.root / rows[2]["image_path"]).write_bytes(b"")
    summary = generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url))
    assert not summary.complete
    assert summary.counts["0"] == {"completed": 1, "failed": 3}
    assert summary.counts["1"] == {"completed": 1, "skipped": 3}
    assert summary.failures == {"image_missing": 1, "image_corrupt": 1, "image_empty": 1}
    assert any(rows[0]["image_id"] in m and "image file not found" in m
               for m in summary.examples)
    assert all("\n" not in m for m in summary.examples)
    # no request is ever made without its image
    assert len(sim.counts()) == 2
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    assert [r["image_id"] for r in records] == [rows[3]["image_id"]]


def test_an_unparseable_answer_is_retried_then_a_failed_step_with_the_raw_text(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=4)
    sim.script(["malformed", "malformed"], task="grounding.extract")
    summary = generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                                      "image_grounding.workflow.max_workers=1"))
    assert summary.counts["0"] == {"failed": 1, "completed": 1}
    assert summary.failures == {"unparseable": 1}
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        failed = [e for _, e in ledger.events(["step_failed"])]
        received = [e for _, e in ledger.events(["response_received"])]
    assert len(failed) == 1 and failed[0].raw_text
    assert failed[0].raw_text in {r.text for r in received}
    assert "step 0 (step0_expression_extraction)" in failed[0].message
    # a plain rerun retries the failed image only
    sim.reset_counts()
    again = generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url))
    assert again.complete and again.counts["0"]["completed"] == 1
    assert sum(sim.counts().values()) == 2


def test_boxes_come_back_exactly_from_a_downscaled_image(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=6, sizes=[(2400, 1600)])
    generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                            "image_grounding.vlm.openai.max_image_side=600"))
    sizes = {r.image_size for r in asked(sim)}
    assert sizes == {(600, 400)}
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    assert match_ground_truth(records, data.records, threshold=0.9).recall == 1.0


def test_each_coordinate_convention_round_trips(tmp_path, make_sim):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=12, image_format="png")
    for convention in ("xyxy_pixel", "xyxy_1000", "yxyx_1000"):
        server = make_sim(convention_openai=convention)
        results = tmp_path / convention
        generate(grounding_spec(results, data.root, server.openai_base_url,
                                f"image_grounding.vlm.openai.coordinates={convention}"))
        records = read_jsonl(results / "annotations.jsonl")
        assert match_ground_truth(records, data.records, threshold=0.9).recall == 1.0


def test_a_model_change_asks_again_and_changing_back_asks_nothing(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=13)
    base = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url)
    generate(base)
    first = (tmp_path / "out" / "annotations.jsonl").read_text()
    other = generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                                    "image_grounding.vlm.openai.temperature=0.1"))
    assert other.counts["0"]["completed"] == 2
    sim.reset_counts()
    back = generate(base)
    assert back.requests == 0 and sim.counts() == {}
    assert back.counts["0"]["cached"] == 2
    assert (tmp_path / "out" / "annotations.jsonl").read_text() == first
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        assert ledger.count("step_selected") == 4


def test_steps_can_run_one_at_a_time(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=14)
    only0 = generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                                    "image_grounding.workflow.steps=[0]"))
    assert only0.complete and list(only0.counts) == ["0"]
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    assert all(r["pipeline_steps"] == ["step0_expression_extraction"] for r in records)
    assert all(not e["instances"] for r in records for e in r["expressions"])
    only1 = generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                                    "image_grounding.workflow.steps=['1']"))
    assert only1.complete and only1.counts["1"]["completed"] == 3
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    assert match_ground_truth(records, data.records).recall == 1.0


def test_step_1_alone_skips_images_that_never_had_step_0(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=15)
    summary = generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                                      "image_grounding.workflow.steps=['1']"))
    assert summary.counts["1"] == {"skipped": 2}
    assert not summary.complete and summary.requests == 0


def test_the_api_key_never_reaches_the_ledger_or_exports(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=16)
    generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url))
    assert all(r.key_ok for r in asked(sim))
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert SIM_KEY.encode() not in path.read_bytes(), path
    conn = sqlite3.connect(tmp_path / "out" / "ledger.db")
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert SIM_KEY not in dump


def test_the_documented_example_spec_runs_with_only_overrides(tmp_path, sim):
    from test_spec import EXAMPLE

    from auto_label.spec_loader import load_spec

    data = write_grounding_dataset(tmp_path / "data", 2, seed=17)
    spec_path = tmp_path / "image_grounding.yaml"
    spec_path.write_text(EXAMPLE)
    summary = generate(load_spec(spec_path, [
        f"results_dir={tmp_path / 'out'}",
        "image_grounding.vlm.backend=openai",
        f"image_grounding.vlm.openai.base_url={sim.openai_base_url}",
        f"image_grounding.vlm.openai.api_key={SIM_KEY}",
        "image_grounding.vlm.openai.model_name=sim-vlm",
        f"image_grounding.data.input_jsonl={data.input_path}",
        f"image_grounding.data.image_root={data.root}",
    ]))
    assert summary.complete and summary.records == 2


def test_unchanged_images_are_not_read_again_and_a_touched_one_is(tmp_path, sim, monkeypatch):
    import os

    from auto_label.pipelines.engine import runner

    data = write_grounding_dataset(tmp_path / "data", 4, seed=18)
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url)
    generate(spec)
    reads = []
    original = runner.seed_image
    monkeypatch.setattr(runner, "seed_image",
                        lambda item, *rest: reads.append(item.image_id) or original(item, *rest))
    generate(spec)
    assert reads == []
    touched = data.records[2]
    path = data.root / touched["image_path"]
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    sim.reset_counts()
    again = generate(spec)
    assert reads == [touched["image_id"]]
    assert again.requests == 0  # same bytes, same fingerprints: nothing to ask
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        assert ledger.count("image_seeded") == 5


def test_plain_progress_lines_count_outcomes_per_step():
    import io

    from auto_label.api import RunInfo, Snapshot, StepFigures
    from auto_label.cli.progress import PlainProgress

    stream = io.StringIO()
    progress = PlainProgress(every=60, stream=stream)
    steps = (("0", "step0_expression_extraction"), ("1", "step1_grounding"))
    final = Snapshot(images=3, steps=(
        StepFigures("0", steps[0][1], completed=1, cached=1, failed=1),
        StepFigures("1", steps[1][1], skipped=1)))
    progress.begin(RunInfo("image_grounding", steps=steps, images=3), lambda: final)
    progress.end(final)
    line = stream.getvalue().strip().splitlines()[-1]
    assert "step0_expression_extraction 2/3 (1 failed)" in line
    assert "step1_grounding 0/3 (1 skipped)" in line


def test_retry_failed_runs_only_the_images_whose_last_attempt_failed(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=19)
    broken = data.root / data.records[0]["image_path"]
    saved = broken.read_bytes()
    broken.unlink()
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url)
    first = generate(spec)
    assert first.failures == {"image_missing": 1}
    broken.write_bytes(saved)
    grown = append_grounding_images(data.root, 1, seed=19)
    sim.reset_counts()
    retried = generate(spec, retry_failed=True)
    assert retried.images == 1 and retried.complete
    assert {sha for sha, _ in sim.counts()} == {sha_of(broken)}
    rest = generate(spec)  # a plain run then picks up the new image
    assert rest.counts["0"]["completed"] == 1
    assert {r["image_id"] for r in read_jsonl(tmp_path / "out" / "annotations.jsonl")} == {
        *data.by_id(), *grown.added}
