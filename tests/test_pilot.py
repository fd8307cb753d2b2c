"""A pilot on the first N images (`generate --limit N`), then the whole run goes on from it."""

from __future__ import annotations

from support import asked, grounding_overrides, read_jsonl
from typer.testing import CliRunner

from auto_label import generate, load_spec
from auto_label.cli.main import app
from auto_label.estimate import dry_run
from auto_label.sim import write_grounding_dataset

IMAGES = 9
PILOT = 4


def test_a_pilot_asks_only_for_its_images_and_the_full_run_reuses_them(tmp_path, sim):
    data = tmp_path / "data"
    write_grounding_dataset(data, IMAGES, seed=5)
    first_ids = [line["image_path"] for line in read_jsonl(data / "input.jsonl")][:PILOT]
    overrides = grounding_overrides(tmp_path / "out", data, sim.openai_base_url)

    planned = dry_run(load_spec(None, overrides), limit=PILOT)
    assert planned.images == PILOT and planned.input_images == IMAGES

    pilot = generate(load_spec(None, overrides), limit=PILOT)
    assert pilot.images == PILOT and pilot.complete
    assert pilot.counts["0"]["completed"] == PILOT
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    assert sorted(r["image_path"] for r in records) == sorted(str(data / p) for p in first_ids)
    pilot_requests = len(asked(sim))
    assert pilot_requests == 2 * PILOT  # two steps each, nothing for the others

    sim.reset_counts()
    whole = generate(load_spec(None, overrides))
    assert whole.counts["0"]["cached"] == PILOT
    assert whole.counts["0"]["completed"] == IMAGES - PILOT
    assert len(asked(sim)) == 2 * (IMAGES - PILOT)
    assert len(read_jsonl(tmp_path / "out" / "annotations.jsonl")) == IMAGES


def test_limit_on_the_command_line(tmp_path, sim):
    data = tmp_path / "data"
    write_grounding_dataset(data, IMAGES, seed=6)
    overrides = grounding_overrides(tmp_path / "out", data, sim.openai_base_url)
    spec = tmp_path / "spec.yaml"
    spec.write_text("{}\n")
    runner = CliRunner()
    done = runner.invoke(app, ["generate", "-e", str(spec), "--limit", "2", "--plain",
                               *overrides])
    assert done.exit_code == 0, done.output
    assert len(read_jsonl(tmp_path / "out" / "annotations.jsonl")) == 2
    bad = runner.invoke(app, ["generate", "-e", str(spec), "--limit", "0", *overrides])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
