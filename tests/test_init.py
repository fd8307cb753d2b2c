"""`auto_label init`: the spec it writes loads as written for every pipeline and backend, shows
every key, holds no key, and runs end to end against the simulator once pointed at it."""

from __future__ import annotations

import itertools

import pytest
import yaml
from support import SIM_KEY
from typer.testing import CliRunner

from auto_label.api import generate
from auto_label.backends.registry import vlm_config_model
from auto_label.cli.main import app
from auto_label.pipelines.registry import PIPELINES
from auto_label.sim import write_grounding_dataset, write_referring_dataset
from auto_label.spec_loader import load_spec

runner = CliRunner()
CASES = list(itertools.product(sorted(PIPELINES), ("gemini", "openai")))


def _keys(tree: object, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return set()
    found = set()
    for key, value in tree.items():
        found.add(prefix + key)
        found |= _keys(value, prefix + key + ".")
    return found


@pytest.mark.parametrize(("pipeline", "backend"), CASES)
def test_the_spec_loads_as_written_and_shows_every_key(tmp_path, pipeline, backend):
    path = tmp_path / "spec.yaml"
    done = runner.invoke(app, ["init", pipeline, "--backend", backend, "--model", "some-model",
                               "--out", str(path)])
    assert done.exit_code == 0, done.output
    spec = load_spec(path)  # as written
    assert spec.autolabel_type == pipeline and spec.block.vlm.backend == backend
    written = _keys(yaml.safe_load(path.read_text()))
    block = spec.block
    for section, model in (("workflow", type(block.workflow)), ("data", type(block.data)),
                           (f"vlm.{backend}", type(getattr(block.vlm, backend)))):
        for name in model.model_fields:
            assert f"{pipeline}.{section}.{name}" in written, (section, name)
    text = path.read_text()
    assert text.count("#") > 20  # commented
    assert "API_KEY" in text and 'api_key: ""' in text  # a key is never written
    again = runner.invoke(app, ["init", pipeline, "--out", str(path)])
    assert again.exit_code == 2 and "exists" in again.output


def test_every_backend_of_the_registry_is_offered():
    backends = [n for n in vlm_config_model().model_fields if n != "backend"]
    assert sorted(backends) == ["gemini", "openai"]
    bad = runner.invoke(app, ["init", "image_grounding", "--backend", "nope"])
    assert bad.exit_code == 2 and "gemini" in bad.output
    typo = runner.invoke(app, ["init", "image_grunding"])
    assert typo.exit_code == 2 and "image_grounding" in typo.output


@pytest.mark.parametrize(("pipeline", "backend"), CASES)
def test_the_written_spec_runs_against_the_simulator(tmp_path, sim, monkeypatch, pipeline,
                                                     backend):
    if pipeline == "image_grounding":
        data = write_grounding_dataset(tmp_path / "data", 2, seed=61)
        values = [f"input_jsonl={data.root / 'input.jsonl'}", f"image_root={data.root}"]
    else:
        data = write_referring_dataset(tmp_path / "data", 2, seed=62)
        values = [f"image_dir={data.root / 'images'}", f"kitti_label_dir={data.root / 'labels'}"]
    url = sim.gemini_base_url if backend == "gemini" else sim.openai_base_url
    path = tmp_path / "spec.yaml"
    args = ["init", pipeline, "--backend", backend, "--base-url", url, "--model", "sim-model",
            "--results-dir", str(tmp_path / "out"), "--out", str(path)]
    for value in values:
        args += ["--data", value]
    assert runner.invoke(app, args).exit_code == 0
    monkeypatch.setenv("OPENAI_API_KEY" if backend == "openai" else "GOOGLE_API_KEY", SIM_KEY)
    summary = generate(load_spec(path))
    assert summary.complete and summary.records == 2


def test_the_written_spec_keeps_the_model_profiles_frame(tmp_path):
    """init writes `coordinates: null` and `smart_resize: null`: both mean the profile's, so a
    Qwen2.5-VL spec still sends images at its processor's frame (a spec that switched it off
    would read every box in the wrong frame)."""
    from auto_label.backends.profiles import model_frame

    path = tmp_path / "spec.yaml"
    args = ["init", "image_grounding", "--backend", "openai", "--model", "Qwen/Qwen2.5-VL-7B",
            "--out", str(path)]
    assert runner.invoke(app, args).exit_code == 0
    config = load_spec(path).block.vlm.openai
    frame = model_frame(config, config.model_name)
    assert frame.profile == "Qwen2.5-VL" and frame.smart_resize is not None
    off = load_spec(path, ["image_grounding.vlm.openai.smart_resize=false"]).block.vlm.openai
    assert model_frame(off, off.model_name).smart_resize is None
