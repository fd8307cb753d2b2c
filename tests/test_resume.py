"""A run killed with SIGKILL at any point resumes: nothing completed is asked again or lost."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from support import SIM_KEY, grounding_overrides, referring_overrides

from auto_label import generate
from auto_label.sim import (
    SimConfig,
    Simulator,
    write_grounding_dataset,
    write_referring_dataset,
)
from auto_label.spec_loader import load_spec

IMAGES = 24
WORKERS = 4


def write_spec(path: Path, overrides: list[str]) -> Path:
    spec: dict = {}
    for item in overrides:
        key, _, value = item.partition("=")
        node = spec
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(spec))
    return path


def completed_count(db: Path, steps: tuple[str, ...] | None = None) -> int:
    if not db.exists():
        return 0
    sql = "SELECT COUNT(*) FROM events WHERE type = 'step_completed'"
    if steps is not None:
        sql += f" AND step IN ({','.join(repr(s) for s in steps)})"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def kill_after(spec_path: Path, db: Path, completions: int,
               steps: tuple[str, ...] | None = None) -> int:
    """Start `generate` in a child process and SIGKILL it once `completions` of `steps` are
    committed; returns how many completions (of any step) the ledger then holds."""
    child = subprocess.Popen(
        [sys.executable, "-m", "auto_label", "generate", "-e", str(spec_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    try:
        while completed_count(db, steps) < completions:
            if child.poll() is not None:
                pytest.fail(f"the run ended before it was killed: {child.stderr.read()!r}")
            if time.monotonic() > deadline:
                pytest.fail("the run made no progress")
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        child.stderr.close()
    return completed_count(db)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_grounding_dataset(tmp_path_factory.mktemp("data"), IMAGES, seed=21)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, dataset):
    out = tmp_path_factory.mktemp("clean")
    with Simulator(SimConfig(seed=5, api_key=SIM_KEY)) as server:
        generate(load_spec(None, grounding_overrides(out, dataset.root, server.openai_base_url)))
    return (out / "annotations.jsonl").read_text()


@pytest.mark.parametrize("kill_at", [1, 9, 24, 34])
def test_sigkill_then_rerun_completes_each_step_once_with_the_same_output(
        tmp_path, make_sim, dataset, uninterrupted, kill_at):
    server = make_sim(seed=5, latency_mean=0.03, latency_jitter=0.02)
    out = tmp_path / "out"
    overrides = grounding_overrides(out, dataset.root, server.openai_base_url,
                                    f"image_grounding.workflow.max_workers={WORKERS}")
    spec_path = write_spec(tmp_path / "spec.yaml", overrides)
    committed = kill_after(spec_path, out / "ledger.db", kill_at)
    assert kill_at <= committed < 2 * IMAGES
    asked_before = dict(server.counts())

    summary = generate(load_spec(spec_path))
    assert summary.complete
    assert summary.counts["0"]["cached"] + summary.counts["1"]["cached"] == committed

    conn = sqlite3.connect(out / "ledger.db")
    per_step = Counter(conn.execute(
        "SELECT image_id, step FROM events WHERE type = 'step_completed'").fetchall())
    conn.close()
    assert len(per_step) == 2 * IMAGES and set(per_step.values()) == {1}
    assert (out / "annotations.jsonl").read_text() == uninterrupted
    # asked again: exactly the requests whose answers were not committed when the process died
    # (in flight, or answered within the writer's last 50 ms)
    counts = server.counts()
    assert max(counts.values()) <= 2
    repeated = [key for key, n in counts.items() if n == 2]
    assert len(repeated) == len(asked_before) - committed
    assert set(repeated) <= set(asked_before)
    assert len(counts) == 2 * IMAGES


REFERRING_IMAGES = 10


@pytest.fixture(scope="module")
def referring_dataset(tmp_path_factory):
    return write_referring_dataset(tmp_path_factory.mktemp("refdata"), REFERRING_IMAGES, seed=22)


@pytest.fixture(scope="module")
def referring_uninterrupted(tmp_path_factory, referring_dataset):
    out = tmp_path_factory.mktemp("refclean")
    with Simulator(SimConfig(seed=5, api_key=SIM_KEY, group_noise=0.5)) as server:
        generate(load_spec(None, referring_overrides(out, referring_dataset.root, server)))
    return (out / "annotations.jsonl").read_text()


@pytest.mark.parametrize(("steps", "kill_at"), [(("0", "1"), 3), (("3",), 2)],
                         ids=["during-steps-0-and-1", "during-step-3"])
def test_referring_sigkill_then_rerun_completes_each_step_once(
        tmp_path, make_sim, referring_dataset, referring_uninterrupted, steps, kill_at):
    server = make_sim(seed=5, latency_mean=0.03, latency_jitter=0.02, group_noise=0.5)
    out = tmp_path / "out"
    spec_path = write_spec(tmp_path / "spec.yaml", referring_overrides(
        out, referring_dataset.root, server,
        f"image_referring_expression.workflow.max_workers={WORKERS}"))
    committed = kill_after(spec_path, out / "ledger.db", kill_at, steps)
    assert committed < 4 * REFERRING_IMAGES
    asked_before = dict(server.counts())
    summary = generate(load_spec(spec_path))
    assert summary.complete
    conn = sqlite3.connect(out / "ledger.db")
    per_step = Counter(conn.execute(
        "SELECT image_id, step FROM events WHERE type = 'step_completed'").fetchall())
    conn.close()
    assert len(per_step) == 4 * REFERRING_IMAGES and set(per_step.values()) == {1}
    assert (out / "annotations.jsonl").read_text() == referring_uninterrupted
    counts = server.counts()
    assert max(counts.values()) <= 2
    assert len([k for k, n in counts.items() if n == 2]) == len(asked_before) - committed
