"""The ledger's SQLite schema, as numbered migrations applied on open, each in a transaction.

Never edit a migration once released: add the next one. A ledger holding a migration this version of
the tool does not know was written by a newer tool, and is refused rather than migrated down.

`events` is the source of truth. `images`, `completions`, `current` and `runs` are projections of it
that `projections.append_batch` maintains in the same transaction as the events they follow from;
the unique key of `completions` is what makes a duplicate completion impossible rather than
unlikely. From m002 on, statements run one by one (`executescript` commits the transaction that
sqlite-utils wraps a migration in).
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

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


def known_migrations() -> list[str]:
    """The names of the migrations this version of the tool knows, in order."""
    return [m.name for m in MIGRATIONS._migrations]
