"""The ledger's SQLite schema, as numbered migrations applied on open, each in a transaction.

Never edit a migration once released: add the next one. A ledger holding a migration this version of
the tool does not know was written by a newer tool, and is refused rather than migrated down.

`events` is the source of truth. `images`, `completions`, `current` and `runs` are projections of it
that `projections.append_batch` maintains in the same transaction as the events they follow from;
the unique key of `completions` is what makes a duplicate completion impossible rather than
unlikely. From m002 on, statements run one by one (`executescript` commits the transaction a
migration runs in). From m004 on, views show the events to people (`requests`,
`responses`, `step_completions`, `failures`, `records`): read-only, never used by the tool; m005
and m007 recreate those that read fields events no longer always hold. The migrations are applied
and recorded by `auto_label.ledger.migrating`.
"""

from __future__ import annotations

from auto_label.ledger.migrating import Database, Migrations

MIGRATIONS = Migrations("auto_label.ledger")


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            type TEXT NOT NULL,
            v INTEGER NOT NULL,
            run_id TEXT NOT NULL,
            image_id TEXT,
            step TEXT,
            at REAL NOT NULL,
            body TEXT NOT NULL
        );
        CREATE INDEX events_by_image ON events (image_id, seq);
        CREATE INDEX events_by_type ON events (type, seq);

        CREATE TABLE images (
            image_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            input_hash TEXT NOT NULL
        );

        CREATE TABLE completions (
            step TEXT NOT NULL,
            image_id TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            generation INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            output_hash TEXT NOT NULL,
            PRIMARY KEY (step, image_id, fingerprint, generation)
        );

        CREATE TABLE current (
            image_id TEXT NOT NULL,
            step TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            seq INTEGER NOT NULL,
            output_hash TEXT NOT NULL,
            PRIMARY KEY (image_id, step)
        );

        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            number INTEGER NOT NULL UNIQUE,
            started_at REAL NOT NULL,
            finished_at REAL,
            status TEXT
        );
        """
    )


@MIGRATIONS()
def m002_runs_from_events(db: Database) -> None:
    """`runs` becomes a projection of the run_started / run_finished events; 0.1.0 wrote it
    directly, with its own clock. Rebuilt from the events, numbered in their order."""
    db.execute("DELETE FROM runs")
    db.execute(
        """
        INSERT INTO runs (run_id, number, started_at, finished_at, status)
        SELECT s.run_id, ROW_NUMBER() OVER (ORDER BY s.seq), s.at,
               (SELECT f.at FROM events f WHERE f.type = 'run_finished' AND f.run_id = s.run_id
                ORDER BY f.seq DESC LIMIT 1),
               (SELECT IIF(json_valid(f.body), json_extract(f.body, '$.status'), NULL)
                FROM events f WHERE f.type = 'run_finished' AND f.run_id = s.run_id
                ORDER BY f.seq DESC LIMIT 1)
        FROM events s WHERE s.type = 'run_started'
        """
    )


@MIGRATIONS()
def m003_image_frames(db: Database) -> None:
    """The images projection keeps what planning needs of a seed's ingestion: the key of what the
    model is shown (fingerprints use it), and how it was ingested (a change seeds it again).
    NULL for 0.1.0 seeds: they are seeded again by the next run (their bytes hash the same)."""
    db.execute("ALTER TABLE images ADD COLUMN image_key TEXT")
    db.execute("ALTER TABLE images ADD COLUMN ingest TEXT")


STEP_NAMES: tuple[tuple[str, str, str], ...] = (
    ("image_grounding", "0", "step0_expression_extraction"),
    ("image_grounding", "1", "step1_grounding"),
    ("image_referring_expression", "0", "step0_region_expr"),
    ("image_referring_expression", "1", "step1_image_caption"),
    ("image_referring_expression", "2", "step2_grounding_expr"),
    ("image_referring_expression", "3", "step3_double_check"),
)
"""(pipeline, step, name) as the pipelines name their steps (a test pins them to the registry);
a step added later gets its name in the views through a migration that recreates `step_names`."""

_JSON = "IIF(json_valid(body), body, NULL)"
_COMMON = (
    "e.seq AS seq, strftime('%Y-%m-%dT%H:%M:%fZ', e.at, 'unixepoch') AS time, "
    "run.number AS run, e.image_id AS image_id, e.step AS step, "
    "COALESCE(n.name, e.step) AS step_name"
)


def _event_view(name: str, types: tuple[str, ...], columns: dict[str, str], *,
                version: bool = False) -> str:
    """A view of the events of `types`, one row each: seq, time (ISO 8601, UTC), run (number),
    image_id, step, step_name, then `columns` (alias -> expression over the body `j`, and over
    the version the event was written at, `e.v`, when `version`)."""
    listed = ", ".join(f"'{t}'" for t in types)
    v = "v, " if version else ""
    extra = ", ".join(f"{expression} AS {alias}" for alias, expression in columns.items())
    return (
        f"CREATE VIEW {name} AS "
        "WITH run AS (SELECT r.run_id, r.number, "
        f"  json_extract(IIF(json_valid(s.body), s.body, NULL), '$.pipeline') AS pipeline "
        "  FROM runs r LEFT JOIN events s ON s.type = 'run_started' AND s.run_id = r.run_id), "
        f"e AS (SELECT seq, {v}type, run_id, image_id, step, at, {_JSON} AS j FROM events "
        f"  WHERE type IN ({listed})) "
        f"SELECT {_COMMON}, {extra} FROM e "
        "LEFT JOIN run ON run.run_id = e.run_id "
        "LEFT JOIN step_names n ON n.pipeline = run.pipeline AND n.step = e.step"
    )


def _field(path: str) -> str:
    return f"json_extract(e.j, '$.{path}')"


@MIGRATIONS()
def m004_views(db: Database) -> None:
    """Views for people (sqlite3, sqlite-utils, Datasette): the events as rows with readable
    columns, times as ISO 8601 text (UTC), steps by name. Views only: nothing is stored, so
    they read 0.1.0 events as well (fields a version did not write are NULL); a damaged body
    reads as NULLs."""
    names = ", ".join(f"('{p}', '{s}', '{n}')" for p, s, n in STEP_NAMES)
    db.execute(f"CREATE VIEW step_names (pipeline, step, name) AS VALUES {names}")
    db.execute(_event_view("requests", ("request_sent",), {
        "attempt": _field("attempt"), "request_id": _field("request_id"),
        "backend": _field("backend"), "model": _field("model"), "prompt": _field("prompt"),
        "parameters": _field("parameters"), "fingerprint": _field("fingerprint"),
        "image_sha256": _field("image_sha256"), "sent_width": _field("sent_width"),
        "sent_height": _field("sent_height")}))
    db.execute(_event_view("responses", ("response_received",), {
        "attempt": _field("attempt"), "request_id": _field("request_id"),
        "text": _field("text"), "finish_reason": _field("finish_reason"),
        "prompt_tokens": _field("usage.prompt_tokens"),
        "answer_tokens": _field("usage.completion_tokens"),
        "thinking_tokens": _field("usage.thinking_tokens"), "latency_s": _field("latency_s"),
        "model_version": _field("model_version"), "response_id": _field("response_id"),
        "answer_in": _field("answer_in"), "thinking": _field("thinking")}))
    db.execute(_event_view("step_completions", ("step_completed",), {
        "is_current": "EXISTS (SELECT 1 FROM current c WHERE c.image_id = e.image_id "
                      "AND c.step = e.step AND c.seq = e.seq)",
        "found": _field("found"), "output": _field("output"),
        "output_version": _field("output_version"), "fingerprint": _field("fingerprint"),
        "generation": _field("generation"), "upstream": _field("upstream"),
        "request_id": _field("request_id"), "source": _field("source")}))
    db.execute(_event_view("failures", ("step_failed", "attempt_failed"), {
        "final": "e.type = 'step_failed'", "attempt": _field("attempt"),
        "kind": _field("kind"), "message": _field("message"),
        "status_code": _field("status_code"), "retry_after_s": _field("retry_after_s"),
        "raw_text": _field("raw_text"), "request_id": _field("request_id")}))
    db.execute(
        "CREATE VIEW records AS "
        "SELECT c.image_id AS image_id, c.step AS step, COALESCE(n.name, c.step) AS step_name, "
        "i.path AS image_path, i.width AS width, i.height AS height, "
        f"json_extract({_JSON.replace('body', 'e.body')}, '$.found') AS found, "
        f"json_extract({_JSON.replace('body', 'e.body')}, '$.output') AS output, "
        "c.fingerprint AS fingerprint, "
        "strftime('%Y-%m-%dT%H:%M:%fZ', e.at, 'unixepoch') AS time, r.number AS run, "
        "c.seq AS seq "
        "FROM current c JOIN events e ON e.seq = c.seq "
        "LEFT JOIN images i ON i.image_id = c.image_id "
        "LEFT JOIN runs r ON r.run_id = e.run_id "
        "LEFT JOIN events s ON s.type = 'run_started' AND s.run_id = e.run_id "
        "LEFT JOIN step_names n ON n.step = c.step AND n.pipeline = "
        f"json_extract({_JSON.replace('body', 's.body')}, '$.pipeline')"
    )


def _of_template(path: str) -> str:
    """A field of the request_template the request (`e`) names, from its run."""
    body = _JSON.replace("body", "t.body")
    return (f"(SELECT json_extract({body}, '$.{path}') FROM events t "
            "WHERE t.type = 'request_template' AND t.run_id = e.run_id "
            f"AND json_extract({body}, '$.template') = {_field('prompt_template')} LIMIT 1)")


def _of_seed(path: str) -> str:
    """A field of the latest image_seeded of the event's (`e`) image before it."""
    body = _JSON.replace("body", "s.body")
    return (f"(SELECT json_extract({body}, '$.{path}') FROM events s "
            "WHERE s.image_id = e.image_id AND s.type = 'image_seeded' AND s.seq < e.seq "
            "ORDER BY s.seq DESC LIMIT 1)")


@MIGRATIONS()
def m005_compact_events(db: Database) -> None:
    """A request records its prompt as a template key and the values that fill it (its run's
    `request_template` event holds the template's text, backend, model and parameters, once),
    and leaves out the sha256 of a file that is its image's own; an image's events leave out
    fields at their default. The views read both shapes. `requests` adds prompt_template,
    prompt_vars and template (the text), takes backend, model and parameters from the template
    and image_sha256 from the latest seed when the request does not hold them; its `prompt` is
    the full text when the request holds it (recorded before templates), when the template has
    no placeholder or is `text` (the whole prompt is its value); `auto_label show` renders every
    prompt. `responses` and `step_completions` show a left-out default as its value."""
    for view in ("requests", "responses", "step_completions"):
        db.execute(f"DROP VIEW {view}")
    db.execute(_event_view("requests", ("request_sent",), {
        "attempt": f"COALESCE({_field('attempt')}, IIF(e.j IS NULL, NULL, 1))",
        "request_id": _field("request_id"),
        "backend": f"COALESCE({_field('backend')}, {_of_template('backend')})",
        "model": f"COALESCE({_field('model')}, {_of_template('model')})",
        "prompt": f"COALESCE({_field('prompt')}, CASE WHEN {_field('prompt_template')} = "
                  f"'text' THEN {_field('prompt_vars.prompt')} WHEN {_field('prompt_vars')} "
                  f"IS NULL THEN {_of_template('text')} END)",
        "prompt_template": _field("prompt_template"), "prompt_vars": _field("prompt_vars"),
        "template": _of_template("text"),
        "parameters": f"COALESCE({_field('parameters')}, {_of_template('parameters')})",
        "fingerprint": _field("fingerprint"),
        "image_sha256": f"COALESCE({_field('image_sha256')}, {_of_seed('sha256')})",
        "sent_width": _field("sent_width"), "sent_height": _field("sent_height")}))
    db.execute(_event_view("responses", ("response_received",), {
        "attempt": _field("attempt"), "request_id": _field("request_id"),
        "text": _field("text"), "finish_reason": _field("finish_reason"),
        "prompt_tokens": _field("usage.prompt_tokens"),
        "answer_tokens": _field("usage.completion_tokens"),
        "thinking_tokens": _field("usage.thinking_tokens"), "latency_s": _field("latency_s"),
        "model_version": _field("model_version"), "response_id": _field("response_id"),
        "answer_in": f"COALESCE({_field('answer_in')}, IIF(e.j IS NULL, NULL, 'content'))",
        "thinking": _field("thinking")}))
    db.execute(_event_view("step_completions", ("step_completed",), {
        "is_current": "EXISTS (SELECT 1 FROM current c WHERE c.image_id = e.image_id "
                      "AND c.step = e.step AND c.seq = e.seq)",
        "found": _field("found"), "output": _field("output"),
        "output_version": f"COALESCE({_field('output_version')}, IIF(e.j IS NULL, NULL, 1))",
        "fingerprint": _field("fingerprint"),
        "generation": f"COALESCE({_field('generation')}, IIF(e.j IS NULL, NULL, 0))",
        "upstream": f"COALESCE({_field('upstream')}, IIF(e.j IS NULL, NULL, '{{}}'))",
        "request_id": _field("request_id"),
        "source": f"COALESCE({_field('source')}, IIF(e.j IS NULL, NULL, ''))"}))


@MIGRATIONS()
def m006_status_projections(db: Database) -> None:
    """Projections that `status`, `--retry-failed` and the planner read instead of scanning every
    event: `outcomes`, the latest outcome of each (image, step) (completed, selected again, or
    failed with its kind; the event's seq and time); `run_totals`, per run the requests it sent,
    the tokens of its answers, the images it seeded first and its newest event's time; and the
    `found` of each completion in `completions` and `current`. Filled from the events here, then
    kept by `projections.append_batch` (a damaged body counts as NULL, as the queries read it)."""
    body = _JSON
    db.execute(
        "CREATE TABLE outcomes (image_id TEXT NOT NULL, step TEXT NOT NULL, seq INTEGER NOT NULL, "
        "type TEXT NOT NULL, kind TEXT, at REAL NOT NULL, PRIMARY KEY (image_id, step))")
    db.execute("CREATE INDEX outcomes_failed ON outcomes (image_id, step) "
               "WHERE type = 'step_failed'")
    db.execute(
        f"INSERT INTO outcomes (image_id, step, seq, type, kind, at) "
        f"SELECT image_id, step, seq, type, IIF(type = 'step_failed', "
        f"json_extract({body}, '$.kind'), NULL), at FROM ("
        "  SELECT image_id, step, seq, type, body, at, ROW_NUMBER() OVER ("
        "    PARTITION BY image_id, step ORDER BY seq DESC) AS newest FROM events "
        "  WHERE image_id IS NOT NULL AND step IS NOT NULL "
        "  AND type IN ('step_completed', 'step_selected', 'step_failed')) WHERE newest = 1")
    db.execute(
        "CREATE TABLE run_totals (run_id TEXT PRIMARY KEY, requests INTEGER NOT NULL DEFAULT 0, "
        "prompt_tokens INTEGER NOT NULL DEFAULT 0, answer_tokens INTEGER NOT NULL DEFAULT 0, "
        "thinking_tokens INTEGER NOT NULL DEFAULT 0, new_images INTEGER NOT NULL DEFAULT 0, "
        "last_at REAL)")
    db.execute(
        "INSERT INTO run_totals (run_id, last_at) SELECT run_id, MAX(at) FROM events "
        "GROUP BY run_id")
    for columns, grouped in (
        ("requests = g.a", "SELECT run_id, COUNT(*) AS a FROM events WHERE type = 'request_sent' "
                           "GROUP BY run_id"),
        ("prompt_tokens = g.a, answer_tokens = g.b, thinking_tokens = g.c",
         f"SELECT run_id, COALESCE(SUM(json_extract({body}, '$.usage.prompt_tokens')), 0) AS a, "
         f"COALESCE(SUM(json_extract({body}, '$.usage.completion_tokens')), 0) AS b, "
         f"COALESCE(SUM(json_extract({body}, '$.usage.thinking_tokens')), 0) AS c FROM events "
         "WHERE type = 'response_received' GROUP BY run_id"),
        ("new_images = g.a", "SELECT e.run_id, COUNT(*) AS a FROM events e JOIN ("
                             "SELECT MIN(seq) AS seq FROM events WHERE type = 'image_seeded' "
                             "GROUP BY image_id) f ON f.seq = e.seq GROUP BY e.run_id")):
        db.execute(f"UPDATE run_totals SET {columns} FROM ({grouped}) g "
                   "WHERE g.run_id = run_totals.run_id")
    for table in ("completions", "current"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN found INTEGER")
        db.execute(f"UPDATE {table} SET found = (SELECT json_extract({body}, '$.found') "
                   f"FROM events e WHERE e.seq = {table}.seq)")


@MIGRATIONS()
def m007_bodies_without_columns(db: Database) -> None:
    """An image's events no longer repeat in their body what their row's columns hold (type, v,
    run_id, image_id, step, at; the views read those from the columns already), a completion
    leaves out the hash of its output, and an answer leaves out attempt 1 and the finish reason
    `stop` (its defaults from response_received v4 on). `responses` shows them again: attempt 1
    when a body has none, finish_reason `stop` when a v4 body has none (NULL before v4: the
    endpoint said none)."""
    db.execute("DROP VIEW responses")
    stated = "json_type(e.j, '$.finish_reason') IS NOT NULL"
    db.execute(_event_view("responses", ("response_received",), {
        "attempt": f"COALESCE({_field('attempt')}, IIF(e.j IS NULL, NULL, 1))",
        "request_id": _field("request_id"),
        "text": _field("text"),
        "finish_reason": f"CASE WHEN e.j IS NULL THEN NULL WHEN {stated} THEN "
                         f"{_field('finish_reason')} WHEN e.v >= 4 THEN 'stop' END",
        "prompt_tokens": _field("usage.prompt_tokens"),
        "answer_tokens": _field("usage.completion_tokens"),
        "thinking_tokens": _field("usage.thinking_tokens"), "latency_s": _field("latency_s"),
        "model_version": _field("model_version"), "response_id": _field("response_id"),
        "answer_in": f"COALESCE({_field('answer_in')}, IIF(e.j IS NULL, NULL, 'content'))",
        "thinking": _field("thinking")}, version=True))


@MIGRATIONS()
def m008_leaner_bodies(db: Database) -> None:
    """A request may leave out its template key (the first template its run recorded for its
    step: request_template v3 names its step) and its size (its image's upright size); a
    completion that reads its request's answer under the request's fingerprint leaves the
    fingerprint to its `completions` row (now indexed by seq). `requests` and `step_completions`
    show them again."""
    db.execute("CREATE INDEX completions_by_seq ON completions (seq)")
    for view in ("requests", "step_completions"):
        db.execute(f"DROP VIEW {view}")
    tpl = _JSON.replace("body", "t.body")
    key = (f"CASE WHEN {_field('prompt_template')} IS NOT NULL THEN {_field('prompt_template')} "
           f"WHEN e.v >= 4 THEN (SELECT json_extract({tpl}, '$.template') FROM events t "
           "WHERE t.type = 'request_template' AND t.run_id = e.run_id AND t.step = e.step "
           "ORDER BY t.seq LIMIT 1) END")

    def of_template(path: str) -> str:
        return _of_template(path).replace(_field("prompt_template"), f"({key})")

    db.execute(_event_view("requests", ("request_sent",), {
        "attempt": f"COALESCE({_field('attempt')}, IIF(e.j IS NULL, NULL, 1))",
        "request_id": _field("request_id"),
        "backend": f"COALESCE({_field('backend')}, {of_template('backend')})",
        "model": f"COALESCE({_field('model')}, {of_template('model')})",
        "prompt": f"COALESCE({_field('prompt')}, CASE WHEN ({key}) = 'text' THEN "
                  f"{_field('prompt_vars.prompt')} WHEN {_field('prompt_vars')} IS NULL "
                  f"THEN {of_template('text')} END)",
        "prompt_template": key, "prompt_vars": _field("prompt_vars"),
        "template": of_template("text"),
        "parameters": f"COALESCE({_field('parameters')}, {of_template('parameters')})",
        "fingerprint": _field("fingerprint"),
        "image_sha256": f"COALESCE({_field('image_sha256')}, {_of_seed('sha256')})",
        "sent_width": f"COALESCE({_field('sent_width')}, {_of_seed('width')})",
        "sent_height": f"COALESCE({_field('sent_height')}, {_of_seed('height')})"},
        version=True))
    db.execute(_event_view("step_completions", ("step_completed",), {
        "is_current": "EXISTS (SELECT 1 FROM current c WHERE c.image_id = e.image_id "
                      "AND c.step = e.step AND c.seq = e.seq)",
        "found": _field("found"), "output": _field("output"),
        "output_version": f"COALESCE({_field('output_version')}, IIF(e.j IS NULL, NULL, 1))",
        "fingerprint": f"COALESCE({_field('fingerprint')}, "
                       "(SELECT c.fingerprint FROM completions c WHERE c.seq = e.seq))",
        "generation": f"COALESCE({_field('generation')}, IIF(e.j IS NULL, NULL, 0))",
        "upstream": f"COALESCE({_field('upstream')}, IIF(e.j IS NULL, NULL, '{{}}'))",
        "request_id": _field("request_id"),
        "source": f"COALESCE({_field('source')}, IIF(e.j IS NULL, NULL, ''))"}))


def known_migrations() -> list[str]:
    """The names of the migrations this version of the tool knows, in order."""
    return MIGRATIONS.names()
