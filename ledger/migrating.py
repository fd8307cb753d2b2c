"""Applying a set of numbered migrations to an SQLite file, and recording them.

The record is sqlite-utils' (`sqlite_utils.migrations.Migrations`: the `_sqlite_migrations` table,
its index and rows), kept with plain sqlite3: a ledger that either migrated reads as migrated to
the other, and opening a ledger imports nothing more (sqlite-utils pulls numpy: about 0.1 s of a
run's launch, issue 12). The ledger's own migrations are in `auto_label.ledger.migrations`.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Callable

Database = sqlite3.Connection
"""What a migration is given: the ledger's connection, outside any transaction."""
Migration = Callable[[Database], None]


class Migrations:
    """A numbered set of migrations, and the record of those applied: the `_sqlite_migrations`
    table exactly as sqlite-utils' `Migrations` keeps it (same table, index and rows), so that
    either reads a ledger the other migrated; plain sqlite3, so that opening a ledger imports
    nothing more (sqlite-utils pulls numpy, about 0.1 s at launch)."""

    table = "_sqlite_migrations"

    def __init__(self, name: str) -> None:
        self.name = name
        self._migrations: list[tuple[str, Migration]] = []

    def __call__(self) -> Callable[[Migration], Migration]:
        """Register the decorated function as the next migration (named by the function)."""
        def register(function: Migration) -> Migration:
            if function.__name__ in self.names():
                raise ValueError(f"migration {function.__name__} is registered twice")
            self._migrations.append((function.__name__, function))
            return function
        return register

    def names(self) -> list[str]:
        """The migrations of the set, in order."""
        return [name for name, _ in self._migrations]

    def applied(self, conn: sqlite3.Connection) -> list[str]:
        """The names of the set's migrations the database records as applied, in the order
        they were applied ([] when it has no record table). Raises sqlite3.DatabaseError when
        the file is not a database."""
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (self.table,)).fetchone() is None:
            return []
        return [str(row[0]) for row in conn.execute(
            f"SELECT name FROM {self.table} WHERE migration_set = ? ORDER BY rowid",
            (self.name,))]

    def apply(self, conn: sqlite3.Connection) -> None:
        """Apply the pending migrations in order, each in a transaction with its record (a
        migration that fails leaves nothing behind and stays pending). `conn` is in autocommit
        mode (isolation_level None), as the ledger's connections are."""
        done = set(self.applied(conn))
        pending = [(name, function) for name, function in self._migrations if name not in done]
        if not pending:
            return
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{self.table}" (\n   "id" INTEGER PRIMARY '
                     'KEY,\n   "migration_set" TEXT,\n   "name" TEXT,\n   "applied_at" TEXT\n)')
        conn.execute(f'CREATE UNIQUE INDEX IF NOT EXISTS "idx_{self.table}_migration_set_name"'
                     f'\n    ON "{self.table}" ("migration_set", "name")')
        for name, function in pending:
            conn.execute("BEGIN")
            try:
                function(conn)
                if not conn.in_transaction:  # executescript commits what came before it
                    conn.execute("BEGIN")
                conn.execute(f"INSERT INTO {self.table} (migration_set, name, applied_at) "
                             "VALUES (?, ?, ?)", (self.name, name,
                                                  str(datetime.datetime.now(datetime.UTC))))
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
