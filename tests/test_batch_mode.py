"""Batch mode (`workflow.mode: batch`) through the real SDKs against the simulator's batch routes:
the same records as online, failures inside a job retried, expired jobs resubmitted, and a kill at
any point followed by a rerun submits no request twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import grounding_overrides, read_jsonl, referring_overrides

from auto_label import generate, load_spec
from auto_label.sim import write_grounding_dataset, write_referring_dataset

IMAGES = 6
FAST = ["workflow.mode=batch", "workflow.batch.poll_seconds=0.05",
        "workflow.batch.linger_seconds=0.1", "workflow.retries.backoff_base=0.01",
        "workflow.retries.backoff_max=0.02"]


def batch(block: str, *extra: str) -> list[str]:
    return [f"{block}.{item}" for item in (*FAST, *extra)]


def boxes(path: Path) -> dict[str, Any]:
    """image_id -> its expressions' texts and boxes (what a batch run must share with online)."""
    return {r["image_id"]: sorted((e["text"], sorted(tuple(i["bbox"]) for i in e["instances"]))
                                  for e in r["expressions"]) for r in read_jsonl(path)}


def asked_twice(sim: Any) -> dict[tuple[str, str], int]:
    """(image, task) answered more than once, inside jobs or online."""
    counts: dict[tuple[str, str], int] = {}
    for source in (sim.batch_counts(), sim.counts()):
        for key, n in source.items():
            counts[key] = counts.get(key, 0) + n
    return {key: n for key, n in counts.items() if n > 1}


def test_a_batch_run_gives_the_records_of_an_online_run(tmp_path, make_sim):
    data = write_grounding_dataset(tmp_path / "data", IMAGES, seed=101)
    sim = make_sim(seed=3, batch_delay=0.2)
    online = generate(load_spec(None, grounding_overrides(tmp_path / "online", data.root,
                                                          sim.openai_base_url)))
    assert online.complete and sim.batch_job_counts()["openai"] == 0
    summary = generate(load_spec(None, grounding_overrides(
        tmp_path / "batch", data.root, sim.openai_base_url, *batch("image_grounding"))))
    assert summary.complete and summary.requests == 2 * IMAGES
    assert boxes(tmp_path / "batch" / "annotations.jsonl") == \
        boxes(tmp_path / "online" / "annotations.jsonl")
    jobs = sim.batch_jobs("openai")
    # step 0's job, then step 1's (a step's requests can take two jobs when the machine is slow
    # enough for linger_seconds to pass between two of them)
    assert sum(j.requests for j in jobs) == 2 * IMAGES and len(jobs) >= 2
    assert all(j.metadata.get("auto_label_key", "").startswith("auto-label-") for j in jobs)


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "file"])
def test_gemini_jobs_inline_and_as_an_uploaded_file(tmp_path, make_sim, monkeypatch, inline):
    if not inline:  # a tiny inline limit sends the requests through the Files API
        monkeypatch.setattr("auto_label.backends.gemini_batch.INLINE_LIMIT", 1)
    data = write_referring_dataset(tmp_path / "data", 4, seed=102)
    sim = make_sim(seed=3, batch_delay=0.2)
    block = "image_referring_expression"
    summary = generate(load_spec(None, referring_overrides(tmp_path / "out", data.root, sim,
                                                           *batch(block), backend="gemini")))
    assert summary.complete and len(read_jsonl(tmp_path / "out" / "annotations.jsonl")) == 4
    jobs = sim.batch_jobs("gemini")
    assert jobs and all((j.source == "inline") is inline for j in jobs)
    assert sum(j.requests for j in jobs) == 4 * 4 and asked_twice(sim) == {}


def test_failures_inside_a_job_go_into_a_later_job(tmp_path, make_sim):
    data = write_grounding_dataset(tmp_path / "data", IMAGES, seed=103)
    sim = make_sim(seed=3, batch_delay=0.1, batch_errors=0.3)
    summary = generate(load_spec(None, grounding_overrides(
        tmp_path / "out", data.root, sim.openai_base_url, *batch("image_grounding"))))
    assert summary.complete
    jobs = sim.batch_jobs("openai")
    assert sum(j.failed for j in jobs) > 0 and len(jobs) > 2  # retried in later jobs
    assert sum(j.answered for j in jobs) == 2 * IMAGES  # each request answered once


def test_an_expired_jobs_unanswered_requests_are_submitted_again(tmp_path, make_sim):
    data = write_grounding_dataset(tmp_path / "data", IMAGES, seed=104)
    sim = make_sim(seed=3, batch_delay=0.1)
    sim.script_batches(jobs=["expired"])
    summary = generate(load_spec(None, grounding_overrides(
        tmp_path / "out", data.root, sim.openai_base_url, *batch("image_grounding"))))
    assert summary.complete
    first, *later = sim.batch_jobs("openai")
    assert first.state == "expired" and 0 < first.answered < IMAGES  # OpenAI keeps what ran
    assert sum(j.answered for j in [first, *later]) == 2 * IMAGES


def test_finish_online_retries_failures_online(tmp_path, make_sim):
    data = write_grounding_dataset(tmp_path / "data", IMAGES, seed=105)
    sim = make_sim(seed=3, batch_delay=0.1, batch_errors=0.4)
    summary = generate(load_spec(None, grounding_overrides(
        tmp_path / "out", data.root, sim.openai_base_url,
        *batch("image_grounding", "workflow.batch.finish_online=true"))))
    assert summary.complete
    online = sum(n for (_, task), n in sim.counts().items() if task != "models")
    assert online > 0  # the failures went online
    jobs = sim.batch_jobs("openai")
    # each step of each image went into a batch once: the failed ones were not batched again
    # (how many jobs they took depends on timing: linger_seconds)
    assert sum(j.answered + j.failed for j in jobs) == 2 * IMAGES
    assert sum(j.failed for j in jobs) > 0


KILLER = """
import importlib, json, os, signal, sys
from auto_label import generate, load_spec
point, overrides = sys.argv[1], json.loads(sys.argv[2])
module, name = (sys.argv[3] if len(sys.argv) > 3 else "openai_batch.OpenAIBatch").split(".")
API = getattr(importlib.import_module(f"auto_label.backends.{module}"), name)
real = {name: getattr(API, name) for name in ("submit", "poll", "results")}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def submit(self, entries, key):
    if point == "before_submit":
        die()
    job = real["submit"](self, entries, key)
    if point == "after_submit":
        die()
    return job

def poll(self, job_id):
    state = real["poll"](self, job_id)
    if point == "polling":
        die()
    return state

def results(self, job_id):
    found = real["results"](self, job_id)
    if point == "download":
        die()
    return found

API.submit = submit
API.poll = poll
API.results = results
generate(load_spec(None, overrides))
"""


@pytest.mark.parametrize("point", ["before_submit", "after_submit", "polling", "download"])
def test_a_kill_at_any_point_then_a_rerun_submits_nothing_twice(tmp_path, make_sim, point):
    data = write_grounding_dataset(tmp_path / "data", IMAGES, seed=106)
    sim = make_sim(seed=3, batch_delay=0.3)
    overrides = grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url,
                                    *batch("image_grounding"))
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    killed = subprocess.run([sys.executable, str(script), point, json.dumps(overrides)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert killed.returncode == -9, killed.stderr
    submitted = len(sim.batch_jobs("openai"))
    assert submitted == (0 if point == "before_submit" else 1)
    summary = generate(load_spec(None, overrides))
    assert summary.complete
    assert len(read_jsonl(tmp_path / "out" / "annotations.jsonl")) == IMAGES
    jobs = sim.batch_jobs("openai")
    assert sum(j.requests for j in jobs) == 2 * IMAGES  # each request in one job (see above)
    assert asked_twice(sim) == {}
    db = tmp_path / "out" / "ledger.db"
    import sqlite3
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT type, COUNT(*) FROM events WHERE type LIKE 'batch_%' "
                            "GROUP BY type").fetchall()
    finally:
        conn.close()
    kinds = dict(rows)
    assert kinds["batch_finished"] == kinds["batch_created"]  # every job closed
    assert kinds["batch_submitted"] == len(jobs)


@pytest.mark.parametrize("point", ["after_submit", "download"])
def test_gemini_jobs_are_found_again_by_their_display_name(tmp_path, make_sim, point):
    data = write_referring_dataset(tmp_path / "data", 3, seed=111)
    sim = make_sim(seed=3, batch_delay=0.3)
    overrides = referring_overrides(tmp_path / "out", data.root, sim,
                                    *batch("image_referring_expression"), backend="gemini")
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    killed = subprocess.run([sys.executable, str(script), point, json.dumps(overrides),
                             "gemini_batch.GeminiBatch"], capture_output=True, text=True,
                            timeout=120,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert killed.returncode == -9, killed.stderr
    assert len(sim.batch_jobs("gemini")) == 1
    summary = generate(load_spec(None, overrides))
    assert summary.complete
    jobs = sim.batch_jobs("gemini")
    assert jobs[0].requests == 2 * 3  # steps 0 and 1 of every image, in the job the kill left
    assert asked_twice(sim) == {}


def test_the_dry_run_prices_a_batch_run_at_the_batch_price(tmp_path):
    from auto_label.estimate import dry_run

    data = write_grounding_dataset(tmp_path / "data", 3, seed=112)
    base = grounding_overrides(tmp_path / "out", data.root, "http://127.0.0.1:9/v1", *PRICE)
    online = dry_run(load_spec(None, base)).cost
    batched = dry_run(load_spec(None, [*base, "image_grounding.workflow.mode=batch"])).cost
    assert online is not None and batched == pytest.approx(online / 2)


PRICE = ("image_grounding.vlm.openai.price.input_per_million=1000",
         "image_grounding.vlm.openai.price.output_per_million=4000")


def test_batch_answers_cost_the_batch_price(tmp_path, make_sim):
    from auto_label import ledger_status

    data = write_grounding_dataset(tmp_path / "data", 3, seed=107)
    sim = make_sim(seed=3, batch_delay=0.1)
    generate(load_spec(None, grounding_overrides(tmp_path / "out", data.root,
                                                 sim.openai_base_url, *PRICE,
                                                 *batch("image_grounding"))))
    run = ledger_status(tmp_path / "out").history[-1]
    tokens = run.tokens
    online = (tokens["prompt"] * 1000 + (tokens["answer"] + tokens["thinking"]) * 4000) / 1e6
    assert run.cost_usd is not None and online > 0
    assert run.cost_usd == pytest.approx(online / 2)  # OpenAI's batch discount: half


def test_status_batches_and_cancel_on_a_run_left_open(tmp_path, make_sim, monkeypatch):
    from typer.testing import CliRunner

    from auto_label.cli.main import app

    data = write_grounding_dataset(tmp_path / "data", IMAGES, seed=108)
    sim = make_sim(seed=3, batch_delay=30)  # the job stays pending while we look
    overrides = grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url,
                                    *batch("image_grounding"))
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    killed = subprocess.run([sys.executable, str(script), "polling", json.dumps(overrides)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert killed.returncode == -9, killed.stderr
    job = sim.batch_jobs("openai")[0]
    runner = CliRunner()
    status = runner.invoke(app, ["status", str(tmp_path / "out")])
    assert "batch jobs: 1, 1 open" in status.output and job.name in status.output
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sim-test-key-0123456789")
    listed = runner.invoke(app, ["batches", str(tmp_path / "out")], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert job.name in listed.output and "validating" in listed.output, listed.output
    cancelled = runner.invoke(app, ["batches", str(tmp_path / "out"), "--cancel"],
                              env={"COLUMNS": "200"})
    assert cancelled.exit_code == 0 and f"cancel {job.name}" in cancelled.output
    assert sim.batch_jobs("openai")[0].state in ("cancelling", "cancelled")
    sim.config.batch_delay = 0.1  # the jobs of the rerun end quickly (read at job creation)
    summary = generate(load_spec(None, overrides))  # adopts the cancelled job, asks again
    assert summary.complete
    first, *later = sim.batch_jobs("openai")
    assert first.state == "cancelled" and first.answered == 0
    assert sum(j.requests for j in later) == 2 * IMAGES  # resubmitted once, then step 1
    assert asked_twice(sim) == {}


def test_generate_batch_on_the_command_line(tmp_path, make_sim):
    from typer.testing import CliRunner

    from auto_label.cli.main import app

    data = write_grounding_dataset(tmp_path / "data", 2, seed=109)
    sim = make_sim(seed=3, batch_delay=0.1)
    spec = tmp_path / "spec.yaml"
    spec.write_text("{}\n")
    overrides = [o for o in grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url,
                                                *batch("image_grounding"))
                 if "workflow.mode" not in o]
    done = CliRunner().invoke(app, ["generate", "-e", str(spec), "--batch", "--plain",
                                    *overrides])
    assert done.exit_code == 0, done.output
    assert "requests submitted" in done.output  # the progress says what the jobs do
    assert "batch jobs of up to 200 requests" in done.output.replace("\n", " ")
    assert sim.batch_job_counts()["openai"] == 2


def test_an_internal_error_in_the_job_thread_fails_the_steps_instead_of_hanging(
        tmp_path, make_sim, monkeypatch):
    def broken(self, entries, key):
        raise RuntimeError("a bug")

    monkeypatch.setattr("auto_label.backends.openai_batch.OpenAIBatch.submit", broken)
    data = write_grounding_dataset(tmp_path / "data", 3, seed=110)
    sim = make_sim(seed=3, batch_delay=0.1)
    summary = generate(load_spec(None, grounding_overrides(
        tmp_path / "out", data.root, sim.openai_base_url, *batch("image_grounding"))))
    assert not summary.complete
    assert summary.failures["internal_error"] == 3
    assert any("a bug" in example for example in summary.examples)


def test_a_server_without_a_batch_api_stops_the_run_with_one_line(tmp_path):
    """vLLM serves no /v1/files: the run stops at the first job, saying so (a real HTTP server
    on 127.0.0.1 that knows only GET /v1/models, as such a server answers)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from typer.testing import CliRunner

    from auto_label.cli.main import app

    class OnlyModels(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": "sim-vlm",
                                                             "object": "model"}]})
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._send(404, {"detail": "Not Found"})  # vLLM's FastAPI answer to a route it lacks

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), OnlyModels)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        data = write_grounding_dataset(tmp_path / "data", 2, seed=113)
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        spec = tmp_path / "spec.yaml"
        spec.write_text("{}\n")
        overrides = grounding_overrides(tmp_path / "out", data.root, url,
                                        *batch("image_grounding"))
        done = CliRunner().invoke(app, ["generate", "-e", str(spec), "--plain", *overrides])
    finally:
        server.shutdown()
        server.server_close()
    assert done.exit_code == 3, done.output
    assert "has no batch API" in done.output and "Traceback" not in done.output
