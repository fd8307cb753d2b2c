"""`auto_label status [--failed] [--json]` against the simulator, on ledgers of real runs: the
input's size against every step (by the names `generate` uses), failed images with their reasons,
a live run found through the lock, runs with what they spent and added; and the SQL views a
person reads the ledger through (also on ledgers 0.1.0 wrote)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from support import grounding_overrides, grounding_spec, referring_spec
from test_costs import budgeted
from test_replay import FAILING_ONCE, _fenced_ellipsis_parser, _with_step
from test_resume import completed_count, write_spec
from typer.testing import CliRunner

from auto_label import generate
from auto_label.backends import prices
from auto_label.cli.main import app
from auto_label.estimate import usd
from auto_label.ledger import Ledger
from auto_label.ledger.events import RequestSent, ResponseReceived, StepCompleted
from auto_label.ledger.lock import LOCK_FILE, RunLock, lock_holder
from auto_label.pipelines.registry import PIPELINES
from auto_label.replay import replay
from auto_label.sim import append_grounding_images, write_grounding_dataset, write_referring_dataset
from auto_label.status import ledger_status

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures" / "ledgers_v0_1_0"
STEP_OF_TASK = {"grounding.extract": "step0_expression_extraction",
                "grounding.ground": "step1_grounding"}


def status_json(results: Path, *args: str) -> dict:
    result = runner.invoke(app, ["status", str(results), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def two_runs(tmp_path, sim):
    """Run 1 on 4 images: the first one's file is missing, the second's step 0 answers are junk
    (asked twice, then failed). Run 2, after 2 images were appended to the input: the 2 new
    ones, the junk one again (answered well now), the missing one again (still missing)."""
    data = write_grounding_dataset(tmp_path / "data", 4, seed=91)
    (data.root / data.records[0]["image_path"]).unlink()
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                          "image_grounding.workflow.max_workers=1")
    sim.script(["malformed", "malformed"], task="grounding.extract")
    generate(spec)
    first = list(sim.requests())
    sim.reset_counts()
    after_one = ledger_status(tmp_path / "out")
    append_grounding_images(data.root, 2, seed=92)
    generate(spec)
    return tmp_path / "out", first, after_one, data


def test_json_counts_the_input_against_every_step_by_name(two_runs):
    results, _, after_one, data = two_runs
    assert after_one.last_run == "completed with 2 failed"
    assert after_one.input.images == 4 and after_one.input.seeded == 3
    # step 1 of the two images that failed step 0 cannot run: blocked, not pending
    assert [(s.name, s.done, s.failed, s.blocked, s.blocked_by, s.pending)
            for s in after_one.steps] == [
        ("step0_expression_extraction", 2, 2, 0, {}, 0), ("step1_grounding", 2, 0, 2, {"0": 2}, 0)]
    report = status_json(results)
    assert report["pipeline"] == "image_grounding"
    assert report["state"] == "completed with 1 failed"  # the missing file, once more
    assert report["input"] == {"images": 6, "seeded": 5, "skipped": 0, "problem": None}
    assert report["images_seeded"] == 5
    assert [(s["number"], s["name"], s["selected"], s["done"], s["failed"], s["blocked"],
             s["blocked_by"], s["pending"]) for s in report["steps"]] == [
        ("0", "step0_expression_extraction", True, 5, 1, 0, {}, 0),
        ("1", "step1_grounding", True, 5, 0, 1, {"0": 1}, 0)]
    missing = data.records[0]["image_id"]
    assert [(f["image_id"], f["step"], f["step_name"], f["kind"]) for f in report["failed"]] == [
        (missing, "0", "step0_expression_extraction", "image_missing")]
    failure = report["failed"][0]
    assert failure["reason"].endswith("image file not found")
    assert not failure["reason"].startswith(missing)  # the engine's prefix is not repeated
    assert failure["source"] == f"{data.root / 'input.jsonl'}:1"
    assert report["failures_by_kind"] == {"image_missing": 1}


def test_json_runs_say_what_each_run_asked_spent_and_added(two_runs, monkeypatch):
    results, first, _, _ = two_runs
    monkeypatch.setitem(prices.PRICES, "sim-vlm", prices.Price(1.0, 4.0))
    report = status_json(results)
    runs = report["runs"]
    assert [(r["number"], r["purpose"], r["status"], r["new_images"], r["failed_images"])
            for r in runs] == [(1, "generate", "completed", 3, 2),
                               (2, "generate", "completed", 2, 1)]
    with Ledger.open(results, create=False) as ledger:
        events = [e for _, e in ledger.events(["request_sent", "response_received"])]
    run_ids = [r["run_id"] for r in runs]
    assert runs[0]["requests"] == len([r for r in first if r.task != "models"])
    for run in runs:
        sent = [e for e in events if isinstance(e, RequestSent) and e.run_id == run["run_id"]]
        answers = [e for e in events
                   if isinstance(e, ResponseReceived) and e.run_id == run["run_id"]]
        assert run["requests"] == len(sent) > 0
        prompt = sum(e.usage.prompt_tokens or 0 for e in answers)
        answer = sum(e.usage.completion_tokens or 0 for e in answers)
        assert run["tokens"] == {"prompt": prompt, "answer": answer, "thinking": 0}
        assert run["cost_usd"] == pytest.approx((prompt * 1.0 + answer * 4.0) / 1e6)
        assert run["finished_at"] >= run["started_at"]
        assert run["duration_s"] == pytest.approx(run["finished_at"] - run["started_at"])
    assert len(set(run_ids)) == 2
    assert report["requests"] == sum(r["requests"] for r in runs)
    assert report["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in runs))
    monkeypatch.delitem(prices.PRICES, "sim-vlm")
    unknown = status_json(results)
    assert unknown["cost_usd"] is None and {r["cost_usd"] for r in unknown["runs"]} == {None}


def test_a_price_set_in_the_spec_prices_its_run(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=96)
    generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                            "image_grounding.vlm.openai.price={input_per_million: 2, "
                            "output_per_million: 8}"))
    (run,) = status_json(tmp_path / "out")["runs"]
    tokens = run["tokens"]
    assert tokens["prompt"] > 0 and tokens["answer"] > 0
    assert run["cost_usd"] == pytest.approx((tokens["prompt"] * 2 + tokens["answer"] * 8) / 1e6)
    shown = runner.invoke(app, ["status", str(tmp_path / "out")]).output
    assert f"cost {usd(run['cost_usd'])}" in shown  # the one way the tool writes dollars


def test_text_names_steps_runs_and_the_failures_and_lists_them_with_failed(two_runs):
    results, _, _, data = two_runs
    missing = data.records[0]["image_id"]
    shown = runner.invoke(app, ["status", str(results)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].endswith("image_grounding, 2 run(s), last completed with 1 failed")
    assert "input: 6 images, 5 of them seeded" in shown.output
    # done, of them nothing found, failed, blocked, pending
    assert re.search(r"step0_expression_extraction\s+5\s+0\s+1\s+0\s+0\n", shown.output)
    assert re.search(r"step1_grounding\s+5\s+0\s+0\s+1\s+0\n", shown.output)
    assert "blocked: step1_grounding 1 (needs step 0, which failed)" in lines
    assert "failed: 1 image(s), 1 step(s): image_missing 1; `--failed` lists them" in lines
    assert missing not in shown.output  # listed only on demand
    run_lines = [line for line in lines if re.match(r"\s+\d+\s+\d{4}-\d\d-\d\d ", line)]
    assert len(run_lines) == 2
    assert re.search(r"\d\d:\d\d:\d\d  completed, 2 failed .* 3 new images", run_lines[0])
    assert "cost         -" in run_lines[0]  # no price known for the simulator's model
    listed = runner.invoke(app, ["status", str(results), "--failed"])
    failed = [line for line in listed.output.splitlines() if missing in line]
    assert failed == [f"  {missing}  step0_expression_extraction  image_missing: "
                      f"{data.root / data.records[0]['image_path']}: image file not found "
                      f"[{data.root / 'input.jsonl'}:1]"]


def test_a_run_where_every_image_failed_is_not_just_completed(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=93)
    for record in data.records:
        (data.root / record["image_path"]).unlink()
    summary = generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url))
    assert not summary.complete
    report = status_json(tmp_path / "out")
    assert report["state"] == "completed with 2 failed"
    assert report["runs"][0]["requests"] == 0 and report["runs"][0]["cost_usd"] == 0.0
    assert report["steps"][0]["failed"] == 2
    assert (report["steps"][1]["blocked"], report["steps"][1]["pending"]) == (2, 0)


def test_an_input_that_cannot_be_read_now_is_one_line_and_the_rest_is_shown(two_runs):
    results, _, _, data = two_runs
    (data.root / "input.jsonl").rename(data.root / "moved.jsonl")
    shown = runner.invoke(app, ["status", str(results)])
    assert shown.exit_code == 0, shown.output
    notes = [line for line in shown.output.splitlines() if line.startswith("input:")]
    assert notes == [f"input: cannot be read now ({data.root / 'input.jsonl'}: input_jsonl "
                     "not found); images seeded: 5"]
    assert "step1_grounding" in shown.output
    report = status_json(results)
    assert report["input"]["images"] is None and "input.jsonl" in report["input"]["problem"]
    assert {s["pending"] for s in report["steps"]} == {None}
    assert report["steps"][0]["done"] == 5


def start_run(tmp_path, sim, images=20):
    data = write_grounding_dataset(tmp_path / "data", images, seed=94)
    out = tmp_path / "out"
    spec_path = write_spec(tmp_path / "spec.yaml", grounding_overrides(
        out, data.root, sim.openai_base_url, "image_grounding.workflow.max_workers=1"))
    child = subprocess.Popen([sys.executable, "-m", "auto_label", "generate", "-e",
                              str(spec_path)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while completed_count(out / "ledger.db") < 2:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)
    return child, out


@pytest.mark.slow
def test_a_live_run_is_found_through_the_lock_and_a_killed_one_is_called_so(tmp_path,
                                                                            make_sim):
    sim = make_sim(latency_mean=0.2)
    started = time.time()
    child, out = start_run(tmp_path, sim)
    try:
        live = ledger_status(out)
        assert live.last_run == "running" and live.history[-1].status == "running"
        assert live.live is not None and live.live.pid == child.pid
        assert live.live.host == socket.gethostname()
        assert started - 1 <= live.live.since <= time.time()
        assert live.live.last_progress >= live.history[-1].started_at
        holder = (out / LOCK_FILE).read_text()
        shown = runner.invoke(app, ["status", str(out)])
        assert f"running now: pid {child.pid} on {socket.gethostname()}, since " in shown.output
        assert "last progress" in shown.output
        assert (out / LOCK_FILE).read_text() == holder  # peeking left the holder's file alone
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        child.stderr.close()
    killed = status_json(out)
    assert killed["state"] == "killed (or crashed)" and killed["live"] is None
    run = killed["runs"][-1]
    assert run["status"] == "killed (or crashed)" and run["finished_at"] is None
    assert run["requests"] >= 2 and run["duration_s"] > 0


def test_the_lock_held_makes_the_unfinished_run_running_with_the_holders_pid(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=95)
    generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url))
    out = tmp_path / "out"
    conn = sqlite3.connect(out / "ledger.db")  # as if killed before its last event
    conn.execute("DELETE FROM events WHERE type = 'run_finished'")
    conn.execute("UPDATE runs SET finished_at = NULL, status = NULL")
    conn.commit()
    conn.close()
    assert lock_holder(out) is None
    assert ledger_status(out).last_run == "killed (or crashed)"
    with RunLock(out):
        holder = lock_holder(out)
        assert holder is not None and holder.pid == os.getpid()
        report = status_json(out)
        assert report["state"] == "running" and report["runs"][-1]["status"] == "running"
        assert report["live"]["pid"] == os.getpid()
        assert report["live"]["host"] == socket.gethostname()
        with Ledger.open(out, create=False) as ledger:
            newest = max(e.at for _, e in ledger.events())
        assert report["live"]["last_progress"] == pytest.approx(newest)
        assert lock_holder(out) == holder  # peeking twice changes nothing
        refused = runner.invoke(app, ["generate", "-e", str(write_spec(
            tmp_path / "spec.yaml", grounding_overrides(out, data.root, sim.openai_base_url)))])
        assert refused.exit_code == 2 and f"pid {os.getpid()} on" in refused.output
    assert lock_holder(out) is None  # released: free again, and status says so
    assert ledger_status(out).live is None


# -- the views ---------------------------------------------------------------------------------

def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_the_views_answer_what_the_simulator_saw(two_runs, sim):
    results, first, _, _ = two_runs
    seen = first + list(sim.requests())
    db = results / "ledger.db"
    answered = Counter(STEP_OF_TASK[r.task] for r in seen if r.task in STEP_OF_TASK
                       and r.status == 200)
    sent = Counter(STEP_OF_TASK[r.task] for r in seen if r.task in STEP_OF_TASK)
    assert dict(rows(db, "SELECT step_name, COUNT(*) FROM responses GROUP BY 1")) == answered
    assert dict(rows(db, "SELECT step_name, COUNT(*) FROM requests GROUP BY 1")) == sent
    assert rows(db, "SELECT COUNT(*) FROM requests WHERE model != 'sim-vlm' OR template IS NULL "
                    "OR (prompt IS NULL AND prompt_vars IS NULL) OR parameters IS NULL "
                    "OR time NOT LIKE '____-__-__T__:__:__.___Z' OR run NOT IN (1, 2)") == [(0,)]
    assert dict(rows(db, "SELECT kind, COUNT(*) FROM failures WHERE final GROUP BY 1")) == {
        "image_missing": 2, "unparseable": 1}
    assert rows(db, "SELECT COUNT(*) FROM failures WHERE NOT final AND kind = 'unparseable'"
                    " AND attempt = 1") == [(1,)]
    with Ledger.open(results, create=False) as ledger:
        current = {(e.image_id, e.step): e for _, e in ledger.events(["step_completed"])}
        shown = {(image, step) for image, step in rows(
            db, "SELECT image_id, step FROM records")}
    records = rows(db, "SELECT image_id, step, step_name, output, run FROM records")
    assert len(records) == len(shown) == 10  # one row per image and step: 5 images, 2 steps
    for image_id, step, step_name, output, _ in records:
        assert step_name == PIPELINES["image_grounding"].step(step).name
        event = current[(image_id, step)]
        assert isinstance(event, StepCompleted) and json.loads(output) == event.output
    assert rows(db, "SELECT COUNT(*) FROM step_completions WHERE is_current") == [(10,)]


def test_step_names_in_the_views_are_the_pipelines_own(tmp_path):
    with Ledger.open(tmp_path / "out") as ledger:
        named = set(ledger.connection().execute("SELECT pipeline, step, name FROM step_names"))
    assert named == {(p.name, s.number, s.name) for p in PIPELINES.values() for s in p.steps}


@pytest.mark.parametrize("pipeline", ["image_grounding", "image_referring_expression"])
def test_the_views_read_a_ledger_0_1_0_wrote(tmp_path, pipeline):
    shutil.copytree(FIXTURES / pipeline, tmp_path / pipeline)
    results = tmp_path / pipeline / "results"
    with Ledger.open(results, create=False) as ledger:  # migrates it
        events = [e for _, e in ledger.events()]
    db = results / "ledger.db"
    names = {s.number: s.name for s in PIPELINES[pipeline].steps}
    answers = Counter(names[e.step] for e in events if isinstance(e, ResponseReceived))
    assert answers and dict(rows(db, "SELECT step_name, COUNT(*) FROM responses GROUP BY 1")) \
        == answers
    assert rows(db, "SELECT COUNT(*) FROM responses WHERE text IS NULL OR answer_tokens IS NULL "
                    "OR model_version IS NOT NULL") == [(0,)]  # 0.1.0 kept no model version
    requests = Counter(names[e.step] for e in events if isinstance(e, RequestSent))
    assert dict(rows(db, "SELECT step_name, COUNT(*) FROM requests GROUP BY 1")) == requests
    completed = {(e.image_id, e.step) for e in events if isinstance(e, StepCompleted)}
    records = rows(db, "SELECT image_id, step, step_name, found FROM records")
    assert {(image, step) for image, step, _, _ in records} == completed
    assert len(records) == len(completed) and {found for *_, found in records} == {None}
    report = ledger_status(results)
    assert [s.name for s in report.steps] == list(names.values())
    assert report.history and all(r.status == "completed" for r in report.history)
    assert sum(r.requests for r in report.history) == sum(requests.values())


# -- what a first user misread -----------------------------------------------------------------

def headline(results: Path) -> str:
    shown = runner.invoke(app, ["status", str(results)])
    assert shown.exit_code == 0, shown.output
    return shown.output.splitlines()[0]


def run_lines(results: Path) -> list[str]:
    shown = runner.invoke(app, ["status", str(results)]).output
    return [line for line in shown.splitlines() if re.match(r"\s+\d+\s+\d{4}-\d\d-\d\d ", line)]


def test_the_headline_is_the_latest_generate_run_and_counts_what_failed_now(tmp_path, sim,
                                                                             monkeypatch):
    data = write_grounding_dataset(tmp_path / "data", 6, seed=21)
    out = tmp_path / "out"
    sim.script(["malformed"] * 6, task="grounding.extract")
    generate(grounding_spec(out, data.root, sim.openai_base_url, *FAILING_ONCE))
    assert status_json(out)["state"] == "completed with 6 failed"
    replay(out)  # today's parser reads none of the answers: nothing changes
    report = status_json(out)
    assert [(r["purpose"], r["status"]) for r in report["runs"]] == [
        ("generate", "completed"), ("replay", "completed")]
    assert report["state"] == "completed with 6 failed"
    assert headline(out).endswith("2 run(s), last completed with 6 failed")
    assert "completed (replay)" in run_lines(out)[1]
    assert [(s["failed"], s["blocked"], s["pending"]) for s in report["steps"]] == [
        (6, 0, 0), (0, 6, 0)]

    step0 = PIPELINES["image_grounding"].step("0")
    _with_step(monkeypatch, "0", parse=_fenced_ellipsis_parser(step0))
    recovered = replay(out).counts["0"]["recovered"]
    assert 0 < recovered < 6
    report = status_json(out)  # the replay completed some: fewer image steps fail now
    assert report["state"] == f"completed with {6 - recovered} failed"
    assert [(s["failed"], s["blocked"], s["pending"]) for s in report["steps"]] == [
        (6 - recovered, 0, 0), (0, 6 - recovered, recovered)]  # pending: step 1 never tried


def test_a_run_its_budget_stopped_is_not_called_interrupted(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 8, seed=53)
    out = tmp_path / "out"
    summary = generate(budgeted(out, data.root, sim, 4.0, 1))
    assert summary.interrupted == "max_cost"
    report = status_json(out)
    assert report["state"] == "stopped by max_cost"
    (run,) = report["runs"]
    assert (run["status"], run["stopped_by"]) == ("interrupted", "max_cost")
    assert headline(out).endswith("1 run(s), last stopped by max_cost")
    assert "  stopped by max_cost  " in run_lines(out)[0]

    stop = threading.Event()
    stop.set()  # as Ctrl-C does: the run stops with no reason recorded
    generate(budgeted(out, data.root, sim, 4.0, 1), stop=stop)
    report = status_json(out)
    assert report["state"] == "interrupted"
    assert [(r["status"], r["stopped_by"]) for r in report["runs"]] == [
        ("interrupted", "max_cost"), ("interrupted", None)]


def test_relative_paths_read_from_the_directory_the_run_started_in(tmp_path, sim, monkeypatch):
    write_grounding_dataset(tmp_path / "data", 3, seed=97)
    monkeypatch.chdir(tmp_path)
    generate(grounding_spec(Path("out"), Path("data"), sim.openai_base_url))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    report = status_json(tmp_path / "out")
    assert report["input"] == {"images": 3, "seeded": 3, "skipped": 0, "problem": None}
    assert [s["pending"] for s in report["steps"]] == [0, 0]
    assert Path.cwd() == elsewhere  # read without changing directory

    conn = sqlite3.connect(tmp_path / "out" / "ledger.db")  # a run that kept no directory
    conn.execute("UPDATE events SET body = json_remove(body, '$.cwd') "
                 "WHERE type = 'run_started'")
    conn.commit()
    conn.close()
    older = status_json(tmp_path / "out")["input"]
    assert older["images"] is None  # as before: against the current directory
    assert older["problem"].startswith(f"data ({elsewhere / 'data'}): image_root")
    monkeypatch.chdir(tmp_path)
    assert status_json(tmp_path / "out")["input"]["images"] == 3


def test_a_run_that_skipped_input_problems_says_so(tmp_path, sim):
    data = write_referring_dataset(tmp_path / "data", 3, seed=98)
    unlabelled = sorted((data.root / "labels").iterdir())[0]
    unlabelled.unlink()
    summary = generate(referring_spec(tmp_path / "out", data.root, sim))
    assert not summary.ok  # generate exits 1 for it
    report = status_json(tmp_path / "out")
    assert report["state"] == "completed with 1 input problem"
    assert report["runs"][0]["input_problems"] == 1
    assert report["input"]["images"] == 2 and report["input"]["skipped"] == 1
    (warning,) = [w for w in report["warnings"] if "input problem" in w]
    assert warning.startswith("run 1: 1 input problem(s) skipped, e.g. ")
    assert unlabelled.stem in warning
    shown = runner.invoke(app, ["status", str(tmp_path / "out")]).output
    assert f"WARNING {warning}" in shown
    assert headline(tmp_path / "out").endswith("last completed with 1 input problem")
    assert "completed, 1 input problem" in run_lines(tmp_path / "out")[0]


def test_numbers_have_thousands_separators_and_dollars_one_format(two_runs, monkeypatch):
    results, *_ = two_runs
    monkeypatch.setitem(prices.PRICES, "sim-vlm", prices.Price(1.0, 4.0))
    report = status_json(results)
    tokens = report["tokens"]
    assert tokens["prompt"] >= 1000  # a separator to show
    shown = runner.invoke(app, ["status", str(results)]).output
    assert (f"tokens: {tokens['prompt']:,} prompt, {tokens['answer']:,} answer, "
            f"{tokens['thinking']:,} thinking; cost {usd(report['cost_usd'])}") in shown
    for line, run in zip(run_lines(results), report["runs"], strict=True):
        assert f" {sum(run['tokens'].values()):,} tokens" in line
        assert f"cost {usd(run['cost_usd']):>9}" in line
