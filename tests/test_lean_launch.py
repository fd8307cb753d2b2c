"""A run imports what it needs before its first request, and nothing more (issue 12, launch ->
first request): a ledger opens without sqlite-utils (and numpy), `generate` registers only its own
command module and leaves the exports, the other commands and the Gemini SDK alone, and the help
still lists every command. The migrations keep sqlite-utils' record of them, so either reads a
ledger the other migrated. Checked in fresh interpreters (`sys.modules`), never by time."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations as SqliteUtilsMigrations
from support import SIM_KEY

from auto_label.cli.main import COMMAND_MODULES, MODULES, app
from auto_label.ledger import Ledger
from auto_label.ledger.migrating import Migrations
from auto_label.ledger.migrations import known_migrations
from auto_label.sim import write_grounding_dataset

ROOT = Path(__file__).resolve().parent.parent


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running `code`."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_opening_new_and_current_ledgers_imports_neither_sqlite_utils_nor_numpy(tmp_path):
    opened = _modules_after(
        "from auto_label.ledger import Ledger\n"
        f"Ledger.open({str(tmp_path)!r}).close()\n"  # created: every migration applied
        f"Ledger.open({str(tmp_path)!r}).close()\n")  # current: none to apply
    assert "auto_label.ledger.store" in opened
    assert not {"sqlite_utils", "numpy"} & opened


def test_generate_imports_only_its_command_and_leaves_the_exports_until_it_exports():
    loaded = _modules_after("from auto_label.cli.main import commands\n"
                            "commands(['generate', '-e', 'spec.yaml'])")
    assert {"auto_label.cli.run_cmds", "auto_label.api"} <= loaded
    others = {f"auto_label.cli.{m}" for m in MODULES if m != "run_cmds"}
    assert not others & loaded
    assert not {m for m in loaded if m.startswith(("auto_label.exports", "google", "numpy",
                                                   "sqlite_utils", "openai"))}


def test_an_openai_run_never_imports_the_gemini_sdk(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=4)
    overrides = [f"results_dir={tmp_path / 'out'}", "autolabel_type=image_grounding",
                 "image_grounding.vlm.backend=openai",
                 f"image_grounding.vlm.openai.base_url={sim.openai_base_url}",
                 f"image_grounding.vlm.openai.api_key={SIM_KEY}",
                 "image_grounding.vlm.openai.model_name=sim-vlm",
                 f"image_grounding.data.input_jsonl={data.root / 'input.jsonl'}",
                 f"image_grounding.data.image_root={data.root}"]
    loaded = _modules_after("from auto_label import generate, load_spec\n"
                            f"assert generate(load_spec(None, {overrides!r})).complete")
    assert "openai" in loaded and "auto_label.exports" in loaded  # it ran, and exported
    assert not {m for m in loaded if m.startswith(("google", "sqlite_utils", "numpy"))}


def test_every_command_is_registered_by_the_module_main_imports_for_it():
    registered = {(c.name or c.callback.__name__): c.callback.__module__  # type: ignore
                  for c in app.registered_commands}
    assert registered == {name: f"auto_label.cli.{module}"
                          for name, module in COMMAND_MODULES.items()}
    assert set(COMMAND_MODULES.values()) == set(MODULES)


def test_the_help_still_lists_every_command():
    shown = subprocess.run([sys.executable, "-m", "auto_label", "--help"], capture_output=True,
                           text=True, cwd=ROOT, timeout=120, check=True).stdout
    listed = [line.split()[1] for line in shown.splitlines()
              if line.startswith("│ ") and len(line.split()) > 2 and line.split()[1].isalpha()]
    assert set(COMMAND_MODULES) <= set(listed)


def test_a_ledger_we_migrate_is_fully_migrated_for_sqlite_utils(tmp_path):
    Ledger.open(tmp_path).close()
    theirs = SqliteUtilsMigrations("auto_label.ledger")
    for name in known_migrations():  # the same set, as sqlite-utils would register it
        theirs(name=name)(lambda db: None)
    db = Database(tmp_path / "ledger.db")
    try:
        assert [m.name for m in theirs.applied(db)] == known_migrations()
        assert theirs.pending(db) == []
        theirs.apply(db)  # nothing to do, and no complaint about the record table
        assert [m.name for m in theirs.applied(db)] == known_migrations()
    finally:
        db.close()


def test_a_migration_that_fails_leaves_nothing_and_stays_pending(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    ours = Migrations("test.set")

    @ours()
    def m001_table(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE t (x)")

    @ours()
    def m002_broken(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("half done")

    with pytest.raises(RuntimeError, match="half done"):
        ours.apply(conn)
    assert ours.applied(conn) == ["m001_table"]
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
    with pytest.raises(ValueError, match="registered twice"):
        ours()(m001_table)
    conn.close()
