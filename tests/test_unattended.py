"""Long unattended runs: SIGINT/SIGTERM stop cleanly, repeated SIGKILLs lose nothing, one run at
a time per results_dir, and no API key anywhere in what a run writes or prints."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest
from support import SIM_KEY, grounding_overrides
from test_resume import completed_count, kill_after, write_spec
from typer.testing import CliRunner

from auto_label import generate
from auto_label.cli.main import app
from auto_label.sim import write_grounding_dataset
from auto_label.spec_loader import load_spec

runner = CliRunner()


def start(spec_path, env=None):
    return subprocess.Popen([sys.executable, "-m", "auto_label", "generate", "-e", str(spec_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(db, completions, child, timeout=60):
    deadline = time.monotonic() + timeout
    while completed_count(db) < completions:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_finishes_the_requests_in_flight_and_says_how_to_resume(tmp_path, make_sim,
                                                                         sig, code):
    sim = make_sim(latency_mean=0.15)
    data = write_grounding_dataset(tmp_path / "data", 16, seed=81)
    out = tmp_path / "out"
    spec_path = write_spec(tmp_path / "spec.yaml", grounding_overrides(
        out, data.root, sim.openai_base_url, "image_grounding.workflow.max_workers=3"))
    child = start(spec_path)
    wait_for(out / "ledger.db", 3, child)
    child.send_signal(sig)
    stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == code, stderr
    assert "Resume with the same command" in stdout and str(spec_path) in stdout
    assert "Traceback" not in stdout + stderr
    conn = sqlite3.connect(out / "ledger.db")
    (status,) = conn.execute("SELECT json_extract(body, '$.status') FROM events "
                             "WHERE type = 'run_finished'").fetchone()
    sent = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'request_sent'").fetchone()[0]
    answered = conn.execute("SELECT COUNT(*) FROM events WHERE type IN "
                            "('response_received', 'attempt_failed')").fetchone()[0]
    conn.close()
    assert status == "interrupted"
    assert sent == answered  # every request in flight was answered and recorded
    summary = generate(load_spec(spec_path))
    assert summary.complete
    assert max(sim.counts().values()) == 1  # so nothing is ever asked twice


def test_a_hung_request_does_not_hold_up_a_stop_beyond_its_timeout(tmp_path, make_sim):
    sim = make_sim(hang_seconds=60)
    data = write_grounding_dataset(tmp_path / "data", 2, seed=82)
    out = tmp_path / "out"
    spec_path = write_spec(tmp_path / "spec.yaml", grounding_overrides(
        out, data.root, sim.openai_base_url, "image_grounding.vlm.openai.timeout=1.5",
        "image_grounding.workflow.max_workers=1"))
    sim.script(["hang"] * 10)
    child = start(spec_path)
    deadline = time.monotonic() + 30
    while not any(r.outcome == "hang" for r in sim.requests()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    stopped = time.monotonic()
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=30)
    assert child.returncode == 143
    assert time.monotonic() - stopped < 6
    conn = sqlite3.connect(out / "ledger.db")
    failed = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'step_failed'").fetchone()[0]
    conn.close()
    assert failed == 0  # an interrupted request is left for the next run, not failed


def test_a_second_run_on_the_same_results_dir_is_refused_while_the_first_lives(tmp_path,
                                                                               make_sim):
    sim = make_sim(latency_mean=0.2)
    data = write_grounding_dataset(tmp_path / "data", 20, seed=83)
    out = tmp_path / "out"
    spec_path = write_spec(tmp_path / "spec.yaml", grounding_overrides(
        out, data.root, sim.openai_base_url, "image_grounding.workflow.max_workers=1"))
    child = start(spec_path)
    try:
        wait_for(out / "ledger.db", 1, child)
        result = runner.invoke(app, ["generate", "-e", str(spec_path)])
        assert result.exit_code == 2
        assert f"another auto_label run (pid {child.pid} on " in result.output
        assert len(result.output.strip().splitlines()) == 1
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.stderr.close()
    sim.config.latency_mean = 0.0
    assert generate(load_spec(spec_path)).complete  # the lock died with its holder


def test_one_run_killed_five_times_at_random_points_ends_as_if_never_killed(tmp_path, make_sim):
    images = 32
    data = write_grounding_dataset(tmp_path / "data", images, seed=84)
    clean = tmp_path / "clean"
    quiet = make_sim(seed=9)
    generate(load_spec(None, grounding_overrides(clean, data.root, quiet.openai_base_url)))
    sim = make_sim(seed=9, latency_mean=0.02, latency_jitter=0.02)
    out = tmp_path / "out"
    spec_path = write_spec(tmp_path / "spec.yaml", grounding_overrides(
        out, data.root, sim.openai_base_url, "image_grounding.workflow.max_workers=4"))
    rng = random.Random(84)
    # A kill lands up to ~12 completions after its target (the writer commits every 50 ms), so
    # each target is ahead of what the ledger holds (the run must start and record itself before
    # it dies) and leaves room before the end (else the run could finish before the kill).
    room = 2 * images - 14
    kills = 0
    for _ in range(5):
        current = completed_count(out / "ledger.db")
        if current >= room:
            break
        kill_after(spec_path, out / "ledger.db", min(current + rng.randint(1, 6), room))
        kills += 1
    assert kills >= 3  # killed several times, or the test means little
    summary = generate(load_spec(spec_path))
    assert summary.complete
    conn = sqlite3.connect(out / "ledger.db")
    per_step = Counter(conn.execute(
        "SELECT image_id, step FROM events WHERE type = 'step_completed'").fetchall())
    runs = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    conn.close()
    assert runs == kills + 1
    assert len(per_step) == 2 * images and set(per_step.values()) == {1}
    assert (out / "annotations.jsonl").read_text() == (clean / "annotations.jsonl").read_text()
    assert max(sim.counts().values()) <= 1 + kills


@pytest.mark.parametrize("where", ["spec", "environment"])
def test_the_api_key_appears_in_nothing_a_run_writes_or_prints(tmp_path, make_sim, where):
    sim = make_sim(api_key=SIM_KEY)
    data = write_grounding_dataset(tmp_path / "data", 2, seed=85)
    (data.root / data.records[0]["image_path"]).unlink()  # a failure message too
    overrides = [o for o in grounding_overrides(tmp_path / "out", data.root,
                                                sim.openai_base_url)
                 if not o.startswith("image_grounding.vlm.openai.api_key=")]
    env = dict(os.environ)
    if where == "spec":
        overrides.append(f"image_grounding.vlm.openai.api_key={SIM_KEY}")
    else:
        env["OPENAI_API_KEY"] = SIM_KEY
    spec_path = write_spec(tmp_path / "spec.yaml", overrides)
    child = start(spec_path, env=env)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 1, stderr
    assert all(r.key_ok for r in sim.requests())
    assert SIM_KEY not in stdout + stderr
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.name == "ledger.db" for p in written)
    for path in written:
        assert SIM_KEY.encode() not in path.read_bytes(), path
    # and a wrong key stops the run at once, with one line that does not echo it
    sim.config.api_key = "another-key"
    done = subprocess.run([sys.executable, "-m", "auto_label", "generate", "-e", str(spec_path),
                           "image_grounding.workflow.force_reprocess=true"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: the endpoint rejected the API key")
    assert sim.openai_base_url in done.stderr and "api_key" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert SIM_KEY not in done.stdout + done.stderr
    assert sum(1 for r in sim.requests() if r.status == 401) <= 4  # stopped, not every image
