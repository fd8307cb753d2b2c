"""`auto_label status [--check]`: what the ledger holds, and whether its invariants hold."""

from __future__ import annotations

import sqlite3

import pytest
from support import grounding_spec
from typer.testing import CliRunner

from auto_label import generate
from auto_label.cli.main import app
from auto_label.sim import write_grounding_dataset
from auto_label.status import ledger_status

runner = CliRunner()


@pytest.fixture
def results(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=71)
    (data.root / data.records[0]["image_path"]).unlink()
    sim.script(["rate_limit"], task="grounding.ground")
    generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url))
    return tmp_path / "out"


def test_status_reports_outcomes_failures_requests_and_tokens(results):
    report = ledger_status(results, check=True)
    assert report.pipeline == "image_grounding" and report.runs == 1
    assert report.last_run == "completed with 1 failed"  # the missing image
    assert report.images == 2  # the missing image was never seeded
    assert report.completed == {"0": 2, "1": 2}
    assert report.failed == {"0": 1}
    assert report.failures == {"image_missing": 1}
    assert report.requests == 5 and report.attempt_failures == {"rate_limited": 1}
    assert report.tokens["prompt"] > 0 and report.tokens["answer"] > 0
    assert report.problems == []
    result = runner.invoke(app, ["status", str(results), "--check"])
    assert result.exit_code == 0 and "the ledger is sound" in result.output


@pytest.mark.parametrize(("tamper", "problem"), [
    ("DELETE FROM completions WHERE rowid = (SELECT MIN(rowid) FROM completions)",
     "no completion row"),
    ("UPDATE current SET fingerprint = 'sha256:nope' WHERE rowid = 1",
     "disagrees with the events"),
    ("UPDATE events SET body = '{\"type\": \"step_completed\"' WHERE seq = "
     "(SELECT MIN(seq) FROM events WHERE type = 'step_completed')",
     "does not parse"),
    ("UPDATE events SET body = json_set(body, '$.request_id', 'ghost') WHERE seq = "
     "(SELECT MIN(seq) FROM events WHERE type = 'response_received')",
     "never sent"),
    ("UPDATE events SET image_id = 'other' WHERE seq = "  # its body leaves image_id to the row
     "(SELECT MIN(seq) FROM events WHERE type = 'image_seeded')",
     "is not its latest image_seeded event"),
    ("UPDATE runs SET status = 'aborted'", "run_started / run_finished events say"),
    ("DELETE FROM runs", "run_started / run_finished events say"),
])
def test_check_finds_broken_invariants(results, tamper, problem):
    conn = sqlite3.connect(results / "ledger.db")
    conn.execute(tamper)
    conn.commit()
    conn.close()
    report = ledger_status(results, check=True)
    assert any(problem in p for p in report.problems), report.problems
    result = runner.invoke(app, ["status", str(results), "--check"])
    assert result.exit_code == 1 and problem in result.output


def test_export_of_a_damaged_ledger_is_one_line_pointing_at_the_check(results):
    conn = sqlite3.connect(results / "ledger.db")
    conn.execute("UPDATE events SET body = '{' WHERE seq = (SELECT MIN(seq) FROM events "
                 "WHERE type = 'step_completed')")
    conn.commit()
    conn.close()
    result = runner.invoke(app, ["export", str(results)])
    assert result.exit_code == 2
    assert "is damaged" in result.output and "status --check" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_runs_table_is_a_projection_of_the_run_events(results, sim, tmp_path):
    from auto_label.ledger import Ledger, queries
    from auto_label.ledger.events import RunFinished, RunStarted

    with Ledger.open(results, create=False) as ledger:
        events = [e for _, e in ledger.events(["run_started", "run_finished"])]
        runs = queries.runs(ledger.connection())
    started = [e for e in events if isinstance(e, RunStarted)]
    finished = {e.run_id: e for e in events if isinstance(e, RunFinished)}
    assert [(r.run_id, r.number, r.started_at, r.finished_at, r.status) for r in runs] == [
        (e.run_id, i + 1, e.at, finished[e.run_id].at, finished[e.run_id].status)
        for i, e in enumerate(started)]
