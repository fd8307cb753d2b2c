"""Small traps a first user fell into, each fixed: commands as typed, --version and -h, "did you
mean", relative paths, the hints of exit 1, input problems that exit 1, the demo's exit code, an
unused block, and where a JSON line is broken."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import typer
from support import SIM_KEY, grounding_overrides, read_jsonl, referring_overrides
from test_resume import completed_count, write_spec
from typer.testing import CliRunner

import auto_label.sim
from auto_label.cli.invocation import command_name
from auto_label.cli.main import app
from auto_label.errors import SpecError
from auto_label.sim import write_grounding_dataset, write_referring_dataset
from auto_label.spec_loader import load_spec
from auto_label.version import __version__

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
"""the venv's bin folder: auto_label and python, as `pip install -e .` put them"""
runner = CliRunner()


def typed(path: Path) -> str:
    """`path` as someone in ROOT types it."""
    return os.path.relpath(path, ROOT) if path.is_relative_to(ROOT) else str(path)


def bare_env() -> dict[str, str]:
    """The environment of a shell where the venv is not activated."""
    return {**os.environ, "PATH": "/usr/bin:/bin"}


# -- already fixed: a BOM is not data -------------------------------------------------------------

def test_a_bom_in_the_spec_and_in_a_kitti_label_file_is_not_data(tmp_path, sim):
    data = write_referring_dataset(tmp_path / "data", 2, seed=91)
    label = sorted((data.root / "labels").glob("*.txt"))[0]
    label.write_bytes(b"\xef\xbb\xbf" + label.read_bytes())
    spec = write_spec(tmp_path / "spec.yaml", referring_overrides(tmp_path / "out", data.root, sim))
    spec.write_bytes(b"\xef\xbb\xbf" + spec.read_bytes())
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 0, result.output
    for record in read_jsonl(tmp_path / "out" / "annotations.jsonl"):
        assert len(record["regions"]) == len(data.by_id()[record["image_id"]]["objects"])


# -- 1. commands as they were typed ---------------------------------------------------------------

def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(("argv0", "executable", "path", "expected"), [
    ("{cwd}/.venv/bin/auto_label", None, "/usr/bin", ".venv/bin/auto_label"),
    (".venv/bin/auto_label", None, "/usr/bin", ".venv/bin/auto_label"),
    ("{cwd}/.venv/bin/auto_label", None, "{cwd}/.venv/bin:/usr/bin", "auto_label"),
    ("{cwd}/tool", None, "/usr/bin", "./tool"),
    ("/opt/tool/bin/auto_label", None, "/usr/bin", "/opt/tool/bin/auto_label"),
    ("auto_label", None, "/usr/bin", "auto_label"),
    ("{cwd}/auto_label/__main__.py", "{cwd}/.venv/bin/python", "/usr/bin",
     ".venv/bin/python -m auto_label"),
    ("{cwd}/auto_label/__main__.py", "{cwd}/.venv/bin/python", "{cwd}/.venv/bin:/usr/bin",
     "python -m auto_label"),
])
def test_hints_name_the_command_as_it_was_invoked(tmp_path, monkeypatch, argv0, executable,
                                                  path, expected):
    cwd = tmp_path / "project"
    for name in ("auto_label", "python"):
        _executable(cwd / ".venv" / "bin" / name)
    _executable(cwd / "auto_label" / "__main__.py")
    _executable(cwd / "tool")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("PATH", path.format(cwd=cwd))
    found = command_name(argv0.format(cwd=cwd),
                         executable.format(cwd=cwd) if executable else "/usr/bin/python3")
    assert found == expected


def test_the_readme_commands_work_without_an_active_venv():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    assert any(line.startswith(".venv/bin/auto_label generate") for line in lines)
    bare = [line for line in lines if re.match(r"(auto_label|python -m auto_label)\b", line)]
    assert bare == []


@pytest.mark.parametrize("command", [["auto_label"], ["python", "-m", "auto_label"]])
def test_the_resume_hint_after_ctrl_c_is_the_command_as_typed(tmp_path, make_sim, command):
    sim = make_sim(latency_mean=0.15)
    data = write_grounding_dataset(tmp_path / "data", 12, seed=92)
    out = tmp_path / "out"
    spec = write_spec(tmp_path / "spec.yaml", grounding_overrides(
        out, data.root, sim.openai_base_url, "image_grounding.workflow.max_workers=2"))
    argv = [typed(BIN / command[0]), *command[1:], "generate", "-e", str(spec)]
    child = subprocess.Popen(argv, cwd=ROOT, env=bare_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while completed_count(out / "ledger.db") < 2:
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    assert f"Resume with the same command:\n  {' '.join(argv)}\n" in stdout


def test_the_demo_names_the_command_as_typed(tmp_path):
    script = typed(BIN / "auto_label")
    done = subprocess.run([script, "demo", str(tmp_path / "demo"), "-n", "1"], cwd=ROOT,
                          env=bare_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"What a ledger holds: {script} status {tmp_path / 'demo'}" in done.stdout


# -- 2. --version and -h --------------------------------------------------------------------------

def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"auto_label {__version__}\n"


@pytest.mark.parametrize("command", [[], *([c] for c in sorted(
    typer.main.get_command(app).commands))])  # type: ignore[attr-defined]
def test_h_is_help_on_every_command(command):
    short, long = runner.invoke(app, [*command, "-h"]), runner.invoke(app, [*command, "--help"])
    assert short.exit_code == long.exit_code == 0
    assert "Usage" in short.output and short.output == long.output


# -- 3. "did you mean", in plain words ------------------------------------------------------------

SPEC = textwrap.dedent("""\
    results_dir: /tmp/out
    autolabel_type: image_grounding
    image_grounding:
      vlm:
        backend: openai
        openai:
          model_name: m
          base_url: http://127.0.0.1:9/v1   # never reached: every case stops before a request
      workflow:
        max_workers: 4
      data:
        input_jsonl: /data/in.jsonl
""")


def spec_error(tmp_path: Path, text: str, overrides: list[str] | None = None) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as raised:
        load_spec(path, overrides or [])
    message = str(raised.value)
    assert "\n" not in message
    for pydantic_words in ("Input should", "Input is", "<class", "more problem", "Extra inputs",
                           "dictionary or instance", "Field required"):
        assert pydantic_words not in message
    return message


@pytest.mark.parametrize(("edit", "overrides", "expected"), [
    (("max_workers: 4", "max_worker: 4"), [],
     "spec.yaml:10: image_grounding.workflow.max_worker: unknown key, did you mean max_workers?"),
    (("model_name: m", "modelname: m"), [],
     "spec.yaml:7: image_grounding.vlm.openai.modelname: unknown key, did you mean model_name?"),
    (None, ["image_grounding.workflow.retries.parse_retry=2"],
     "override 'image_grounding.workflow.retries.parse_retry=2': "
     "image_grounding.workflow.retries.parse_retry: unknown key, did you mean parse_retries?"),
    (None, ["image_grounding.max_workers=8"],
     "override 'image_grounding.max_workers=8': image_grounding.max_workers: unknown key, did "
     "you mean workflow.max_workers?"),
    (None, ["image_grounding.vlm.openai.smart_resize.max=3"],
     "smart_resize.max: unknown key (the keys here: factor, min_pixels, max_pixels)"),
    (("input_jsonl: /data/in.jsonl", "input_jsonl: 5"), [],
     "spec.yaml:12: image_grounding.data.input_jsonl: expected a path (a string)"),
    (("max_workers: 4", "max_workers: many"), [],
     "image_grounding.workflow.max_workers: expected a whole number"),
    (("max_workers: 4", "max_workers: 0"), [],
     "image_grounding.workflow.max_workers: must be at least 1"),
    (("backend: openai", "backend: claude"), [],
     "image_grounding.vlm.backend: expected 'gemini' or 'openai'"),
    (("max_workers: 4", "retries: 3"), [],
     "image_grounding.workflow.retries: expected a block of keys, not a single value"),
    (None, ["image_grounding.workflow.rpm=1.5"],
     "image_grounding.workflow.rpm: expected a whole number, not a fraction"),
    (None, ["image_grounding.workflow.force_reprocess=maybe"],
     "image_grounding.workflow.force_reprocess: expected true or false"),
    (("input_jsonl: /data/in.jsonl", "input_jsonl: 5\n    image_rot: /x"), [],
     "spec.yaml:13: image_grounding.data.image_rot: unknown key, did you mean image_root? (also "
     "wrong: image_grounding.data.input_jsonl)"),
])
def test_spec_errors_say_what_is_expected_in_one_plain_line(tmp_path, edit, overrides, expected):
    text = SPEC.replace(*edit) if edit else SPEC
    assert expected in spec_error(tmp_path, text, overrides)


# -- 4. relative paths: against the current directory, shown absolute too -----------------------

def test_a_relative_path_that_is_not_there_shows_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("/data/in.jsonl", "./in.jsonl"))
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 2
    assert f"in.jsonl ({tmp_path / 'in.jsonl'}): input_jsonl not found" in result.output
    result = runner.invoke(app, ["generate", "-e", str(spec), "image_grounding.data.input_jsonl=",
                                 "image_grounding.data.image_root=imgs"])
    assert f"imgs ({tmp_path / 'imgs'}): image_root is not a directory" in result.output
    result = runner.invoke(app, ["generate", "-e", "nope.yaml"])
    assert f"nope.yaml ({tmp_path / 'nope.yaml'}): spec file not found" in result.output


def test_a_relative_referring_folder_that_is_not_there_shows_where_it_was_looked_for(
        tmp_path, monkeypatch, sim):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path / "spec.yaml", referring_overrides(
        Path("out"), Path("data"), sim))
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 2
    assert f"data/images ({tmp_path / 'data' / 'images'}): image_dir is not a directory" in (
        result.output)


def test_relative_paths_resolve_against_the_current_directory_not_the_spec_folder(
        tmp_path, monkeypatch, sim):
    write_grounding_dataset(tmp_path / "data", 1, seed=93)
    (tmp_path / "specs").mkdir()
    write_spec(tmp_path / "specs" / "spec.yaml", grounding_overrides(
        Path("out"), Path("data"), sim.openai_base_url))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["generate", "-e", "specs/spec.yaml"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "annotations.jsonl").is_file()
    assert not (tmp_path / "specs" / "out").exists()


# -- 5. exit 1 says how to retry ------------------------------------------------------------------

def test_exit_1_for_failed_images_says_how_to_retry_them(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=94)
    (data.root / data.records[0]["image_path"]).unlink()
    spec = write_spec(tmp_path / "spec.yaml",
                      grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url))
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 1
    hint = ("1 image step failed (step0_expression_extraction 1): rerun the same command to "
            "retry them")
    assert result.output.rstrip().splitlines()[-1] == (
        f"{hint}, or add --retry-failed to retry only those")
    result = runner.invoke(app, ["generate", "-e", str(spec), "--retry-failed"])
    assert result.exit_code == 1
    assert result.output.rstrip().splitlines()[-1] == hint


# -- 6. input problems skipped exit 1 (DontCare rows are not problems) ----------------------------

def test_an_image_without_labels_exits_1_and_says_so(tmp_path, sim):
    data = write_referring_dataset(tmp_path / "data", 3, seed=95)
    label = sorted((data.root / "labels").glob("*.txt"))[0]
    label.unlink()
    spec = write_spec(tmp_path / "spec.yaml", referring_overrides(tmp_path / "out", data.root, sim))
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 1, result.output
    assert f"have no label file in {data.root / 'labels'}, skipped: {label.stem}" in (
        result.output)
    assert result.output.rstrip().splitlines()[-1].startswith(
        "1 input problem skipped (listed above): fix the input and rerun")


def test_dontcare_rows_alone_still_exit_0(tmp_path, sim):
    data = write_referring_dataset(tmp_path / "data", 2, seed=96)
    for label in (data.root / "labels").glob("*.txt"):
        with label.open("a") as handle:
            handle.write("DontCare -1 -1 -10 5.00 5.00 60.00 40.00 -1 -1 -1 -1000 -1000 -1000 "
                         "-10\n")
    spec = write_spec(tmp_path / "spec.yaml", referring_overrides(tmp_path / "out", data.root, sim))
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 0, result.output
    assert "2 DontCare row(s)" in result.output


# -- 7. the demo exits 1 and names what failed ----------------------------------------------------

class _JunkGrounding(auto_label.sim.Simulator):
    """The demo's simulator, with junk planted for every answer step 1 of grounding gets."""

    def __enter__(self) -> _JunkGrounding:
        super().__enter__()
        self.script(["malformed"] * 10, task="grounding.ground")
        return self


def test_the_demo_exits_1_and_names_the_failed_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(auto_label.sim, "Simulator", _JunkGrounding)
    result = runner.invoke(app, ["demo", str(tmp_path / "demo"), "-n", "1"])
    assert result.exit_code == 1, result.output
    assert "NOT OK: 1 image step failed (step1_grounding 1; unparseable 1)" in result.output
    assert "The demo did not complete every step" in result.output


# -- 8. an unused block, and where a JSON line is broken ------------------------------------------

def test_the_block_of_the_other_pipeline_may_be_there_and_incomplete(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC + "image_referring_expression:\n  vlm:\n    backend: openai\n"
                           "  workflow:\n    max_workers: lots\n")
    spec = load_spec(path)
    assert spec.block.workflow.max_workers == 4
    assert spec.dump().get("image_referring_expression") is None
    message = spec_error(tmp_path, SPEC.replace("    input_jsonl: /data/in.jsonl\n",
                                                "    image_root: /x\n"))
    assert "image_grounding.data.input_jsonl: required key is missing" in message


@pytest.mark.parametrize(("line", "expected"), [
    ('{"image_path": "a.png", "caption": "x"',
     "not valid JSON: the line ends (column 39) before the object that starts at column 1 is "
     "closed (a missing '}')"),
    ('{"image_path": "a.png", "caption": "x}',
     "not valid JSON: the string that starts at column 36 is never closed (a missing '\"')"),
    ('{"image_path": "a.png" "caption": "x"}',
     "not valid JSON at column 24: expected ',' between two items"),
    ('{"image_path": "a.png", "caption": "x",}',
     "not valid JSON at column 40: a ',' before '}' (JSON takes no trailing comma)"),
])
def test_a_broken_json_line_names_file_line_column_and_the_slip(tmp_path, line, expected):
    data = write_grounding_dataset(tmp_path / "data", 1, seed=97)
    with data.input_path.open("a") as handle:
        handle.write(line + "\n")
    spec = write_spec(tmp_path / "spec.yaml", [
        *grounding_overrides(tmp_path / "out", data.root, "http://127.0.0.1:9/v1"),
        f"image_grounding.vlm.openai.api_key={SIM_KEY}"])
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {data.input_path}:2: {expected}"


def test_the_resume_hint_never_prints_an_api_key():
    from auto_label.cli.invocation import command_line

    line = command_line(["generate", "-e", "s.yaml",
                         "image_grounding.vlm.openai.api_key=sk-secret-123",
                         "image_grounding.vlm.gemini.api_key=AIzaSecret",
                         "results_dir=/out"])
    assert "sk-secret-123" not in line and "AIzaSecret" not in line
    assert "image_grounding.vlm.openai.api_key='***'" in line or \
        "image_grounding.vlm.openai.api_key=***" in line
    assert "results_dir=/out" in line and "give it again" in line
    plain = command_line(["generate", "-e", "s.yaml", "results_dir=/out"])
    assert "give it again" not in plain


def test_a_misspelt_api_key_override_is_not_echoed(tmp_path):
    from auto_label.errors import SpecError
    from auto_label.spec_loader import load_spec

    with pytest.raises(SpecError) as raised:
        load_spec(None, [f"results_dir={tmp_path}", "autolabel_type=image_grounding",
                         "image_grounding.vlm.openai.api_kye=sk-SECRET9"])
    assert "sk-SECRET9" not in str(raised.value)
    assert "did you mean api_key" in str(raised.value)
