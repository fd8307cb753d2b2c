"""Read queries for audit and replay: the answers stored for a request, and an image's events.

Functions of a connection returning rows (event bodies as JSON text); `Ledger` parses them.
"""

from __future__ import annotations

import sqlite3

from auto_label.ledger.queries import STORED, StoredRow

PARSE_KINDS = ("unparseable", "truncated", "no_answer")
"""Attempt failures that are a reading of the answer (today's parser may read it otherwise);
any other failed attempt with a response (a blocked answer) is never re-read as an answer."""

_BODY = "IIF(json_valid({0}.body), {0}.body, NULL)"


def stored_answers(conn: sqlite3.Connection, image_id: str, step: str,
                   request_fingerprint: str) -> list[tuple[int, str, int, str]]:
    """(request seq, request_sent body, response seq, response_received body) of every answer
    stored for this request of this image and step, newest first; answers whose attempt failed
    for another reason than their reading (a blocked answer) are left out."""
    q, r, f = _BODY.format("q"), _BODY.format("r"), _BODY.format("f")
    # `+x.type`: no index on the type, so that SQLite reads the image's own events through
    # events_by_image rather than every request of the ledger through events_by_type
    return [(int(a), str(request), int(b), str(response))
            for a, request, b, response in conn.execute(
        f"SELECT q.seq, q.body, r.seq, r.body FROM events q JOIN events r "
        f"  ON r.image_id = q.image_id AND +r.type = 'response_received' "
        f"  AND json_extract({r}, '$.request_id') = json_extract({q}, '$.request_id') "
        f"WHERE q.image_id = ? AND q.step = ? AND +q.type = 'request_sent' "
        f"  AND json_extract({q}, '$.fingerprint') = ? "
        f"  AND NOT EXISTS (SELECT 1 FROM events f WHERE f.image_id = q.image_id "
        f"    AND +f.type = 'attempt_failed' "
        f"    AND json_extract({f}, '$.request_id') = json_extract({q}, '$.request_id') "
        f"    AND json_extract({f}, '$.kind') NOT IN ({','.join('?' * len(PARSE_KINDS))})) "
        f"ORDER BY r.seq DESC",
        (image_id, step, request_fingerprint, *PARSE_KINDS))]


def image_ids(conn: sqlite3.Connection, *, except_step: str | None = None) -> list[str]:
    """Every image the ledger has an event of, in id order; with `except_step`, leaving out the
    images whose only events are of that step (probe's generated images)."""
    if except_step is None:
        return [str(row[0]) for row in conn.execute(
            "SELECT DISTINCT image_id FROM events WHERE image_id IS NOT NULL ORDER BY image_id")]
    return [str(row[0]) for row in conn.execute(
        "SELECT DISTINCT image_id FROM events WHERE image_id IS NOT NULL "
        "AND (step IS NULL OR step != ?) ORDER BY image_id", (except_step,))]


def run_numbers(conn: sqlite3.Connection) -> dict[str, int]:
    """run_id -> its number (1 for the first run of the ledger)."""
    return {str(run_id): int(number)
            for run_id, number in conn.execute("SELECT run_id, number FROM runs")}


def token_sums(conn: sqlite3.Connection, backend: str,
               model: str) -> list[tuple[str, bool, int, float, float, float]]:
    """(step, answered by this backend and model, responses, prompt, answer and thinking token
    sums) of the ledger's answers with a usage, grouped by step and by whether the model matches
    (what `generate --dry-run` estimates the tokens of a request from)."""
    q, r, tpl = _BODY.format("q"), _BODY.format("r"), _BODY.format("t")
    # a request names its backend and model itself (recorded before templates) or through the
    # request_template its run recorded
    run_side = (f"(SELECT json_extract({tpl}, '$.{{0}}') FROM events t WHERE "
                f"t.type = 'request_template' AND t.run_id = q.run_id LIMIT 1)")
    backend_of, model_of = (f"COALESCE(json_extract({q}, '$.{field}'), "
                            f"{run_side.format(field)})" for field in ("backend", "model"))
    rows = conn.execute(
        f"SELECT r.step, {backend_of} = ? AND {model_of} = ?,"
        f" COUNT(*), SUM(json_extract({r}, '$.usage.prompt_tokens')),"
        f" SUM(json_extract({r}, '$.usage.completion_tokens')),"
        f" SUM(json_extract({r}, '$.usage.thinking_tokens')) "
        "FROM events r JOIN events q ON q.image_id = r.image_id AND q.type = 'request_sent'"
        f" AND json_extract({q}, '$.request_id') = json_extract({r}, '$.request_id') "
        f"WHERE r.type = 'response_received' AND json_extract({r}, '$.usage.prompt_tokens') "
        "IS NOT NULL GROUP BY 1, 2", (backend, model)).fetchall()
    return [(str(step), bool(match), int(n), float(p or 0), float(a or 0), float(t or 0))
            for step, match, n, p, a, t in rows]


def request_templates(conn: sqlite3.Connection, run_id: str) -> list[StoredRow]:
    """The request_template events run `run_id` recorded, in order."""
    return conn.execute(
        f"SELECT {STORED} FROM events e WHERE type = 'request_template' AND run_id = ? "
        "ORDER BY seq", (run_id,)).fetchall()
