"""`probe --write` and the spec editing under it: the measured lines go into the spec file, its
comments and other lines kept; a file it cannot edit is left as it was, with one line."""

from __future__ import annotations

import pytest
import yaml
from support import SIM_KEY, read_jsonl
from typer.testing import CliRunner

from auto_label import generate, load_spec
from auto_label.cli.main import app
from auto_label.errors import SpecError
from auto_label.evaluate import match_ground_truth
from auto_label.sim import write_grounding_dataset
from auto_label.spec_edit import set_block_keys

BLOCK = ("image_grounding", "vlm", "openai")
RESIZE = {"factor": 28, "min_pixels": 3136, "max_pixels": 1003520}
HAND_WRITTEN = """\
# my spec
results_dir: out   # where it goes
autolabel_type: image_grounding
image_grounding:
  vlm:
    backend: openai
    openai:
      model_name: qwen2.5-vl-7b   # served name
      smart_resize:
        factor: 28
        max_pixels: 12845056

      timeout: 30
  data:
    input_jsonl: in.jsonl
"""


def test_keys_are_replaced_or_added_and_everything_else_kept(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(HAND_WRITTEN)
    set_block_keys(path, BLOCK, {"coordinates": "xyxy_pixel", "smart_resize": RESIZE})
    text = path.read_text()
    tree = yaml.safe_load(text)
    openai = tree["image_grounding"]["vlm"]["openai"]
    assert openai == {"model_name": "qwen2.5-vl-7b", "coordinates": "xyxy_pixel",
                      "smart_resize": RESIZE, "timeout": 30}
    assert "# my spec" in text and "# served name" in text and "# where it goes" in text
    assert "max_pixels: 12845056" not in text  # the nested value went with its key
    assert "      coordinates: xyxy_pixel" in text.splitlines()  # added, at the block's indent
    set_block_keys(path, BLOCK, {"smart_resize": False})
    assert yaml.safe_load(path.read_text())["image_grounding"]["vlm"]["openai"][
        "smart_resize"] is False


def test_a_file_it_cannot_edit_is_left_unchanged(tmp_path):
    odd = tmp_path / "odd.yaml"
    odd.write_text("results_dir: out\nautolabel_type: image_grounding\n"
                   "image_grounding: {vlm: gemini}\n")
    before = odd.read_text()
    with pytest.raises(SpecError, match=r"odd\.yaml: image_grounding\.vlm is not a mapping"):
        set_block_keys(odd, BLOCK, {"coordinates": "xyxy_1000"})
    assert odd.read_text() == before
    bad = tmp_path / "spec.yaml"
    bad.write_text(HAND_WRITTEN)
    with pytest.raises(SpecError, match=r"spec\.yaml: the edited spec would not load"):
        set_block_keys(bad, BLOCK, {"coordinates": "xyxy_999"})  # not a convention
    assert bad.read_text() == HAND_WRITTEN
    assert list(tmp_path.glob(".*.tmp")) == []


def test_probe_write_puts_the_measured_frame_in_the_spec_and_the_run_uses_it(
        tmp_path, make_sim, monkeypatch):
    sim = make_sim(model_frame="qwen2.5_smart_resize", max_pixels=1003520)
    data = write_grounding_dataset(tmp_path / "data", 4, seed=71, sizes=[(1280, 960)])
    spec = tmp_path / "spec.yaml"
    runner = CliRunner()
    made = runner.invoke(app, [
        "init", "image_grounding", "--backend", "openai", "--model", "qwen2.5-vl-7b",
        "--base-url", sim.openai_base_url, "--results-dir", str(tmp_path / "out"),
        "--data", f"input_jsonl={data.root / 'input.jsonl'}", "--data",
        f"image_root={data.root}", "--out", str(spec)])
    assert made.exit_code == 0, made.output
    before = spec.read_text().splitlines()
    monkeypatch.setenv("OPENAI_API_KEY", SIM_KEY)
    probed = runner.invoke(app, ["probe", "-e", str(spec), "--write"])
    assert probed.exit_code == 0, probed.output
    assert f"wrote them into {spec}" in probed.output.replace("\n", "")
    after = spec.read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert changed == [("      coordinates: null", "      coordinates: xyxy_pixel"),
                       ("      smart_resize: null", "      smart_resize: {factor: 28, "
                        "min_pixels: 3136, max_pixels: 1003520}")]  # every other line kept
    openai = load_spec(spec).block.vlm.openai
    assert openai.coordinates == "xyxy_pixel"
    assert openai.smart_resize is not False and openai.smart_resize is not None
    assert openai.smart_resize.max_pixels == 1003520
    summary = generate(load_spec(spec))
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    assert summary.complete and summary.alarms == []
    assert match_ground_truth(records, data.records, threshold=0.9).recall == 1.0
