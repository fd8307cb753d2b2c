"""`generate` without typer (issue 12, launch -> first request): its plain command lines are read
by `cli.quick` exactly as typer reads them (the same keywords, compared with click's own parse of
the same line), anything else goes through typer with typer's messages, an error says the same
line with the same exit code either way, and a run reaches its first request without typer, the
batch-mode modules or json-repair (checked in a fresh interpreter's `sys.modules`, never by
time)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from support import grounding_overrides
from test_lazy_launch import FIRST_REQUEST
from typer.testing import CliRunner

from auto_label.cli.generating import generate
from auto_label.cli.main import app
from auto_label.cli.quick import parse_generate
from auto_label.sim import write_grounding_dataset

ROOT = Path(__file__).resolve().parent.parent

READ = [
    ["-e", "s.yaml"],
    ["--experiment-spec", "s.yaml", "a=b", "c.d=1"],
    ["a=b", "-e", "x.yaml", "--plain", "c=1"],
    ["--experiment-spec=x.yaml", "--no-plain"],
    ["-e", "s", "--limit", "3", "--dry-run", "--batch", "--finish-online", "--retry-failed"],
    ["-e", "s", "--limit=07", "-", ""],
    ["-e", "s", "x.y=-1", "--plain"],
]
"""command lines after `generate` that `quick` reads"""

LEFT_TO_TYPER = [
    [], ["-e"], ["--plain"], ["-h"], ["-e", "s", "--help"], ["-e", "s", "--limit", "0"],
    ["-e", "s", "--limit", "x"], ["-e", "s", "--limit", "-1"], ["-e", "s", "-e", "t"],
    ["-e", "s", "--", "a=b"], ["-e", "--plain"], ["-e=s"], ["-es"], ["-e", "s", "--plain=1"],
    ["-e", "s", "--bogus"], ["-e", ""], ["-e", "s", "--plain", "--no-plain"], ["-e", "s", "-x"],
    ["--experiment-spec="], ["-e", "s", "--limit"],
]
"""command lines that `quick` leaves to typer"""


def _typer_keywords(args: list[str]) -> dict[str, Any]:
    """The keywords typer passes to the `generate` command for `args` (click's parse)."""
    group = typer.main.get_command(app)
    parent = group.make_context("auto_label", ["generate", *args])
    command = group.get_command(parent, "generate")  # type: ignore[attr-defined]
    params = dict(command.make_context("generate", list(args), parent=parent).params)
    params["overrides"] = list(params["overrides"]) or None
    return params


@pytest.mark.parametrize("args", READ, ids=" ".join)
def test_quick_reads_a_plain_command_line_as_typer_does(args):
    defaults = {name: p.default for name, p in inspect.signature(generate).parameters.items()
                if p.default is not inspect.Parameter.empty}
    quick = parse_generate(args)
    assert quick is not None
    assert {**defaults, **quick} == _typer_keywords(args)


@pytest.mark.parametrize("args", LEFT_TO_TYPER, ids=" ".join)
def test_anything_else_is_left_to_typer(args):
    assert parse_generate(args) is None


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auto_label", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_an_error_is_the_same_line_and_exit_code_without_typer_as_with_it(tmp_path):
    missing = str(tmp_path / "missing.yaml")
    quick = _cli("generate", "-e", missing, "--plain")
    typed = CliRunner().invoke(app, ["generate", "-e", missing, "--plain"])
    assert quick.returncode == typed.exit_code == 2
    assert quick.stderr.splitlines() == typed.output.splitlines() == [
        f"error: {missing}: spec file not found"]


def test_typer_still_says_what_is_wrong_with_a_line_quick_leaves_to_it(tmp_path):
    done = _cli("generate", "-e", str(tmp_path / "s.yaml"), "--limit", "0")
    assert done.returncode == 2
    assert "Invalid value for '--limit'" in done.stderr


def test_a_run_reaches_its_first_request_without_typer_batch_mode_or_json_repair(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 1, seed=6)
    spec = tmp_path / "spec.yaml"
    spec.write_text("{}\n")
    seen = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", FIRST_REQUEST, str(seen), "generate", "-e", str(spec), "--plain",
         *grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url)],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "step1_grounding" in done.stdout  # it ran to the end and summed up
    loaded = set(json.loads(seen.read_text()))
    assert "auto_label.pipelines.engine.execute" in loaded
    later = ("typer", "click", "json_repair", "auto_label.cli.typer_app",
             "auto_label.cli.run_cmds", "auto_label.pipelines.engine.batch_jobs",
             "auto_label.backends.batching", "auto_label.ledger.batch_view")
    assert not {m for m in loaded if m.startswith(later)}


GC_AT_FIRST_REQUEST = FIRST_REQUEST.replace(
    "json.dump(sorted(sys.modules), handle)",
    "import gc; json.dump([gc.isenabled(), gc.get_freeze_count()], handle)")
"""`auto_label ARGS` that writes, when its first request is sent, whether the garbage collector
runs and how many objects it has frozen"""


def test_the_collector_paused_for_the_launch_runs_again_once_the_run_begins(tmp_path, sim):
    assert GC_AT_FIRST_REQUEST != FIRST_REQUEST
    data = write_grounding_dataset(tmp_path / "data", 1, seed=7)
    spec = tmp_path / "spec.yaml"
    spec.write_text("{}\n")
    seen = tmp_path / "gc.json"
    done = subprocess.run(
        [sys.executable, "-c", GC_AT_FIRST_REQUEST, str(seen), "generate", "-e", str(spec),
         "--plain", *grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url)],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    enabled, frozen = json.loads(seen.read_text())
    assert enabled  # collecting again for the run
    assert frozen > 10_000  # what the launch made is frozen, not scanned again
