"""Exports as modules: the formats, their pure and save halves, and the errors for a format that
does not exist or does not fit the ledger's pipeline (one line, exit code 2, nothing written)."""

from __future__ import annotations

import re

import pytest
from support import grounding_spec, referring_spec
from typer.testing import CliRunner

from auto_label import export, generate
from auto_label.cli.main import app
from auto_label.errors import ExportError
from auto_label.exports import FORMATS, formats_for
from auto_label.exports.jsonl import record_to_json_line
from auto_label.exports.legacy import FAILED_MARK, record_to_legacy_files
from auto_label.ledger.events import ImageSeeded
from auto_label.pipelines.records import ImageRecord
from auto_label.pipelines.referring.outputs import CaptionOutput
from auto_label.sim import write_grounding_dataset, write_referring_dataset

runner = CliRunner()


@pytest.fixture
def grounding_out(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=81)
    generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url))
    return tmp_path / "out"


@pytest.mark.parametrize(("fmt", "message"), [
    ("xml", "unknown export format 'xml'; the formats are jsonl, legacy, coco, odvg, sft, both"),
    ("legacy", "the legacy format is for image_referring_expression results, and this "
               "results_dir holds image_grounding results (use jsonl)"),
    ("both", "the legacy format is for image_referring_expression results"),
])
def test_a_format_that_does_not_exist_or_fit_is_one_line_and_exit_2(grounding_out, fmt, message):
    before = (grounding_out / "annotations.jsonl").read_bytes()
    with pytest.raises(ExportError, match=re.escape(message)):
        export(grounding_out, output_format=fmt)
    result = runner.invoke(app, ["export", str(grounding_out), "--format", fmt])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {result.output.strip()[7:]}"]
    assert message in result.output
    assert not list(grounding_out.glob("step_*"))
    assert (grounding_out / "annotations.jsonl").read_bytes() == before


def test_both_writes_annotations_and_legacy_files_in_one_pass(tmp_path, sim):
    data = write_referring_dataset(tmp_path / "data", 2, seed=82)
    generate(referring_spec(tmp_path / "out", data.root, sim))  # output_format jsonl
    out = tmp_path / "out"
    assert not list(out.glob("step_*"))
    result = export(out, output_format="both")
    assert result.records == 2 and result.legacy_files == 8
    assert out / "annotations.jsonl" in result.files
    assert sorted(p.name for p in result.files if p.is_dir()) == [
        "step_0_region_expr", "step_1_image_caption", "step_2_grounding_expr",
        "step_3_double_check"]


def test_every_format_says_which_pipelines_it_fits():
    assert formats_for(["jsonl"], "image_grounding") == [FORMATS["jsonl"]]
    assert formats_for(["both"], "image_referring_expression") == [FORMATS["jsonl"],
                                                                   FORMATS["legacy"]]


def seed() -> ImageSeeded:
    return ImageSeeded(image_id="scene_7", path="/d/scene_7.png", sha256="a" * 64, width=64,
                       height=48, size=1, mtime_ns=1, extra={"image_path": "/d/scene_7.png"})


def test_the_pure_halves():
    empty = ImageRecord("scene_7", seed(), {}, frozenset({"0"}), None)
    assert record_to_json_line(empty) is None
    files = record_to_legacy_files(ImageRecord(
        "scene_7", seed(), {"1": CaptionOutput(caption="Two cars.")}, frozenset({"0"}),
        {"image_id": "scene_7"}))
    assert files == {
        "step_0_region_expr/labels/scene_7.txt.step0": FAILED_MARK,
        "step_1_image_caption/labels/scene_7.txt.step1": "Two cars.",
        "step_2_grounding_expr/labels/scene_7.txt.step2": None,
        "step_3_double_check/labels/scene_7.txt.step3": None,
    }
    assert record_to_json_line(ImageRecord("x", seed(), {}, frozenset(), {"a": "é"})) == \
        '{"a": "é"}\n'
