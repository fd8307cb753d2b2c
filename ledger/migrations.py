"""The ledger's SQLite schema, as numbered migrations applied on open, each in a transaction.

Never edit a migration once released: add the next one. A ledger holding a migration this version of
the tool does not know was written by a newer tool, and is refused rather than migrated down.

`events` is the source of truth. `images`, `completions` and `current` are projections of it that
the single writer maintains in the same transaction as the events they follow from; the unique key
of `completions` is what makes a duplicate completion impossible rather than unlikely.
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


def known_migrations() -> list[str]:
    """The names of the migrations this version of the tool knows, in order."""
    return [m.name for m in MIGRATIONS._migrations]
