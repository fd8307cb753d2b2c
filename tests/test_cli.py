"""The command line: exit codes, one-line errors without tracebacks, export, demo, help."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from support import grounding_overrides, read_jsonl
from test_resume import write_spec
from typer.testing import CliRunner

from auto_label.cli.main import app
from auto_label.sim import write_grounding_dataset

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def spec_file(tmp_path, base_url, data, *extra):
    return write_spec(tmp_path / "spec.yaml",
                      grounding_overrides(tmp_path / "out", data, base_url, *extra))


def test_generate_exits_0_when_every_image_completed_and_export_rewrites(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=1)
    spec = spec_file(tmp_path, sim.openai_base_url, data.root)
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 0, result.output
    assert "annotations.jsonl (3 records)" in result.output
    annotations = tmp_path / "out" / "annotations.jsonl"
    before = annotations.read_text()
    annotations.unlink()
    result = runner.invoke(app, ["export", str(tmp_path / "out")])
    assert result.exit_code == 0
    assert annotations.read_text() == before


def test_generate_exits_1_when_an_image_failed(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=1)
    (data.root / data.records[0]["image_path"]).unlink()
    spec = spec_file(tmp_path, sim.openai_base_url, data.root)
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 1
    assert "image_missing 1" in result.output


def test_overrides_on_the_command_line_win(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 1, seed=1)
    spec = spec_file(tmp_path, sim.openai_base_url, data.root)
    other = tmp_path / "elsewhere"
    result = runner.invoke(app, ["generate", "-e", str(spec), f"results_dir={other}"])
    assert result.exit_code == 0
    assert len(read_jsonl(other / "annotations.jsonl")) == 1
    assert not (tmp_path / "out").exists()


BAD_INPUTS = [
    ("not json",
     lambda d: (d / "input.jsonl").write_text('{"image_path": "a.png", "caption": "x"}\n{oops\n'),
     r"input.jsonl:2: not valid JSON"),
    ("no caption", lambda d: (d / "input.jsonl").write_text('{"image_path": "a.png"}\n'),
     r"input.jsonl:1: caption is missing"),
    ("no image_path", lambda d: (d / "input.jsonl").write_text('{"caption": "a dog"}\n'),
     r"input.jsonl:1: image_path is missing"),
    ("duplicate ids", lambda d: (d / "input.jsonl").write_text(
        '{"image_path": "a.png", "caption": "x"}\n{"image_path": "b/a.png", "caption": "y"}\n'),
     r"input.jsonl:2: duplicate image_id 'a' \(first at line 1\)"),
    ("empty", lambda d: (d / "input.jsonl").write_text("\n"), r"input.jsonl: no images listed"),
    ("missing", lambda d: (d / "input.jsonl").unlink(), r"input.jsonl: input_jsonl not found"),
    ("not an object", lambda d: (d / "input.jsonl").write_text("[1, 2]\n"),
     r"input.jsonl:1: expected a JSON object"),
]


@pytest.mark.parametrize(("name", "damage", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_jsonl_is_one_line_and_exit_2(tmp_path, sim, name, damage, message):
    data = write_grounding_dataset(tmp_path / "data", 1, seed=1)
    damage(data.root)
    spec = spec_file(tmp_path, sim.openai_base_url, data.root)
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 2
    assert re.search(message, result.output), result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bad_configuration_in_a_real_process_has_no_traceback(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("results_dir: /tmp/x\nautolabel_type: image_grounding\n"
                    "image_grounding:\n  workflow:\n    max_workers: many\n"
                    "  data:\n    input_jsonl: /nope.jsonl\n")
    done = subprocess.run([sys.executable, "-m", "auto_label", "generate", "-e", str(spec)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: {spec}:5: image_grounding.workflow.max_workers: expected a whole number")
    assert "Traceback" not in done.stdout + done.stderr


def test_results_dir_that_cannot_be_created(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 1, seed=1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    spec = spec_file(tmp_path, sim.openai_base_url, data.root, f"results_dir={blocker}/out")
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 2
    assert "results_dir is not a directory" in result.output


def test_export_without_a_ledger_is_one_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path)])
    assert result.exit_code == 2
    assert "no ledger here" in result.output


def test_the_demo_runs_both_pipelines_and_says_where_the_results_are(tmp_path):
    result = runner.invoke(app, ["demo", str(tmp_path / "demo"), "-n", "3"])
    assert result.exit_code == 0, result.output
    for pipeline in ("image_grounding", "image_referring_expression"):
        annotations = tmp_path / "demo" / "results" / pipeline / "annotations.jsonl"
        assert str(annotations) in result.output
        assert len(read_jsonl(annotations)) == 3
    found = re.search(r"(\d+) of (\d+) ground-truth phrases grounded", result.output)
    assert found and found.group(1) == found.group(2) != "0"
    assert "Acc@0.5 1.000" in result.output and " eval " in result.output
    described = re.search(r"(\d+) of (\d+) regions described with the right colour", result.output)
    assert described and described.group(1) == described.group(2)
    legacy = tmp_path / "demo" / "results" / "image_referring_expression" / "step_3_double_check"
    assert len(list((legacy / "labels").iterdir())) == 3


COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_app_has_the_commands_it_is_known_for():
    assert {"generate", "export", "status", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_is_in_the_readme(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
    readme = (ROOT / "README.md").read_text()
    assert f"auto_label {command}" in readme


def test_json_lines_written_are_valid_json(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=1)
    spec = spec_file(tmp_path, sim.openai_base_url, data.root)
    runner.invoke(app, ["generate", "-e", str(spec)])
    for line in (tmp_path / "out" / "annotations.jsonl").read_text().splitlines():
        assert isinstance(json.loads(line), dict)


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (ROOT / "README.md").read_text()
    assert f"```sh\n{ci}\n```" in readme
