"""The projections `status` reads (outcomes, run_totals, the completions' `found`) say what a
scan of every event says, whether kept as events are appended or filled by the migration from
a ledger written before them."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from support import grounding_spec

from auto_label import generate
from auto_label.ledger.store import Ledger
from auto_label.sim import write_grounding_dataset

_BODY = "IIF(json_valid(body), body, NULL)"
FIXTURES = Path(__file__).parent / "fixtures"


def from_events(conn: sqlite3.Connection) -> dict[str, object]:
    """What the projections must hold, computed by scanning the events."""
    outcomes = sorted(conn.execute(
        f"SELECT image_id, step, seq, type, IIF(type = 'step_failed', "
        f"json_extract({_BODY}, '$.kind'), NULL), at FROM ("
        "  SELECT *, ROW_NUMBER() OVER (PARTITION BY image_id, step ORDER BY seq DESC) AS n "
        "  FROM events WHERE type IN ('step_completed', 'step_selected', 'step_failed')) "
        "WHERE n = 1").fetchall())
    totals = {}
    for run_id, in conn.execute("SELECT run_id FROM runs"):
        requests = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'request_sent' "
                                "AND run_id = ?", (run_id,)).fetchone()[0]
        tokens = conn.execute(
            f"SELECT COALESCE(SUM(json_extract({_BODY}, '$.usage.prompt_tokens')), 0), "
            f"COALESCE(SUM(json_extract({_BODY}, '$.usage.completion_tokens')), 0), "
            f"COALESCE(SUM(json_extract({_BODY}, '$.usage.thinking_tokens')), 0) FROM events "
            "WHERE type = 'response_received' AND run_id = ?", (run_id,)).fetchone()
        new = conn.execute(
            "SELECT COUNT(*) FROM events e JOIN (SELECT MIN(seq) AS seq FROM events "
            "WHERE type = 'image_seeded' GROUP BY image_id) f ON f.seq = e.seq "
            "WHERE e.run_id = ?", (run_id,)).fetchone()[0]
        last = conn.execute("SELECT MAX(at) FROM events WHERE run_id = ?",
                            (run_id,)).fetchone()[0]
        totals[run_id] = (requests, *tokens, new, last)
    found = {table: sorted(conn.execute(
        f"SELECT t.seq, json_extract(IIF(json_valid(e.body), e.body, NULL), '$.found') "
        f"FROM {table} t JOIN events e ON e.seq = t.seq").fetchall())
        for table in ("completions", "current")}
    return {"outcomes": outcomes, "totals": totals, "found": found}


def projected(conn: sqlite3.Connection) -> dict[str, object]:
    return {
        "outcomes": sorted(conn.execute(
            "SELECT image_id, step, seq, type, kind, at FROM outcomes").fetchall()),
        "totals": {row[0]: tuple(row[1:]) for row in conn.execute(
            "SELECT run_id, requests, prompt_tokens, answer_tokens, thinking_tokens, "
            "new_images, last_at FROM run_totals")},
        "found": {table: sorted(conn.execute(f"SELECT seq, found FROM {table}").fetchall())
                  for table in ("completions", "current")},
    }


def test_kept_as_runs_append_with_failures_retries_and_a_changed_setting(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 4, seed=72)
    (data.root / data.records[0]["image_path"]).unlink()  # fails (image_missing)
    sim.script(["rate_limit", "malformed"], task="grounding.ground")
    seen: set[str] = set()
    for extra in ([], ["image_grounding.vlm.openai.temperature=0.1"], []):  # the last selects
        generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url, *extra))
        with Ledger.open(tmp_path / "out") as ledger:
            conn = ledger.connection()
            seen |= {row[0] for row in conn.execute("SELECT type FROM outcomes")}
            assert projected(conn) == from_events(conn)
    assert seen == {"step_completed", "step_selected", "step_failed"}


@pytest.mark.parametrize("pipeline", ["image_grounding", "image_referring_expression"])
def test_filled_by_the_migration_from_ledgers_written_before(tmp_path, pipeline):
    old = FIXTURES / "ledgers_v0_1_0" / pipeline / "results"
    if not old.exists():
        pytest.skip("no fixture ledger")
    shutil.copytree(old, tmp_path / "results")
    with Ledger.open(tmp_path / "results") as ledger:
        conn = ledger.connection()
        assert conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0] > 0
        assert projected(conn) == from_events(conn)
