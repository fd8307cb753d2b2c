"""Bad input, one row each: a clear line naming the file and line (or the image and step), the
right exit code, no traceback, and nothing already in the ledger lost."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import grounding_overrides, read_jsonl, referring_overrides
from test_resume import write_spec
from typer.testing import CliRunner

from auto_label.cli.main import app
from auto_label.sim import write_grounding_dataset, write_referring_dataset

runner = CliRunner()


@dataclass
class Case:
    name: str
    damage: Any  # (tmp_path, data_root, spec_path) -> extra CLI args
    message: str  # must appear in the output
    code: int = 2


def line(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


GROUNDING_CASES = [
    Case("spec file missing", lambda t, d, s: (s.unlink(), [])[1], "spec file not found"),
    Case("spec not YAML", lambda t, d, s: (s.write_text("a: [1,\n"), [])[1], "not valid YAML"),
    Case("unknown key", lambda t, d, s: (line(s, "colour: red\n"), [])[1], "colour: unknown key"),
    Case("wrong type", lambda t, d, s: ["image_grounding.workflow.max_workers=many"],
         "max_workers: expected a whole number"),
    Case("bad override syntax", lambda t, d, s: ["max_workers"],
         "expected key.sub=value"),
    Case("input_jsonl missing", lambda t, d, s: ((d / "input.jsonl").unlink(), [])[1],
         "input.jsonl: input_jsonl not found"),
    Case("input_jsonl empty", lambda t, d, s: ((d / "input.jsonl").write_text(""), [])[1],
         "input.jsonl: no images listed"),
    Case("line not JSON", lambda t, d, s: (line(d / "input.jsonl", "{nope\n"), [])[1],
         "input.jsonl:4: not valid JSON"),
    Case("line without image_path", lambda t, d, s: (line(d / "input.jsonl",
                                                          '{"caption": "x"}\n'), [])[1],
         "input.jsonl:4: image_path is missing"),
    Case("line without caption", lambda t, d, s: (line(d / "input.jsonl",
                                                       '{"image_path": "images/a.png"}\n'), [])[1],
         "input.jsonl:4: caption is missing"),
    Case("duplicate image_id", lambda t, d, s: (line(d / "input.jsonl", json.dumps(
        {"image_path": "images/scene_0000.png", "caption": "x"}) + "\n"), [])[1],
         "input.jsonl:4: duplicate image_id 'scene_0000' (first at line 1)"),
    Case("image_root not a directory", lambda t, d, s: [f"image_grounding.data.image_root={d}/x"],
         "image_root is not a directory"),
    Case("results_dir not writable", lambda t, d, s: ["results_dir=/sys/auto_label_results"],
         "results_dir is not writable"),
    Case("results_dir is a file", lambda t, d, s: [f"results_dir={d / 'input.jsonl'}"],
         "results_dir is not a directory"),
    Case("ledger from a newer tool", lambda t, d, s: (_newer(t / "out"), [])[1],
         "written by a newer auto-label"),
    Case("ledger that is not a database", lambda t, d, s: (_garbage(t / "out"), [])[1],
         "not an auto-label ledger"),
]


def _newer(out: Path) -> None:
    conn = sqlite3.connect(out / "ledger.db")
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                 "VALUES ('auto_label.ledger', 'm042_from_the_future', 'later')")
    conn.commit()
    conn.close()


def _garbage(out: Path) -> None:
    for path in out.glob("ledger.db*"):
        path.unlink()
    (out / "ledger.db").write_bytes(b"not a database " * 100)


def ledger_snapshot(out: Path) -> tuple[bytes, str] | None:
    db = out / "ledger.db"
    if not db.exists():
        return None
    return db.read_bytes(), (out / "annotations.jsonl").read_text()


@pytest.mark.parametrize("case", GROUNDING_CASES, ids=[c.name for c in GROUNDING_CASES])
def test_bad_grounding_input(tmp_path, sim, case):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=91)
    spec = write_spec(tmp_path / "spec.yaml",
                      grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url))
    first = runner.invoke(app, ["generate", "-e", str(spec)])
    assert first.exit_code == 0
    # closed at once: Python's sqlite3 connections sit in a reference cycle (their statement
    # cache), so an unclosed one lives until a GC pass and holds the WAL back from checkpointing
    with contextlib.closing(sqlite3.connect(tmp_path / "out" / "ledger.db")) as conn:
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    annotations = (tmp_path / "out" / "annotations.jsonl").read_text()
    extra = case.damage(tmp_path, data.root, spec)
    before = ledger_snapshot(tmp_path / "out")
    result = runner.invoke(app, ["generate", "-e", str(spec), *extra])
    assert result.exit_code == case.code, result.output
    assert case.message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output
    assert ledger_snapshot(tmp_path / "out") == before  # nothing touched, nothing lost
    if case.name != "ledger that is not a database":
        conn = sqlite3.connect(tmp_path / "out" / "ledger.db")
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == events
        conn.close()
        assert (tmp_path / "out" / "annotations.jsonl").read_text() == annotations


IMAGE_CASES = [
    ("image missing", lambda p: p.unlink(), "image_missing", "image file not found"),
    ("image unreadable", lambda p: (p.unlink(), p.mkdir()), "image_unreadable",
     "is a directory"),
    ("image truncated", lambda p: p.write_bytes(p.read_bytes()[:300]), "image_corrupt",
     "corrupt or truncated"),
    ("image zero-size", lambda p: p.write_bytes(b""), "image_empty", "is empty"),
    ("not an image", lambda p: p.write_text("hello"), "image_invalid", "not an image"),
]


@pytest.mark.parametrize(("name", "damage", "kind", "message"), IMAGE_CASES,
                         ids=[c[0] for c in IMAGE_CASES])
def test_a_bad_image_fails_its_steps_alone(tmp_path, sim, name, damage, kind, message):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=92)
    bad = data.records[1]
    damage(data.root / bad["image_path"])
    spec = write_spec(tmp_path / "spec.yaml",
                      grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url))
    result = runner.invoke(app, ["generate", "-e", str(spec)])
    assert result.exit_code == 1
    assert f"{kind} 1" in result.output
    failure = next(x for x in result.output.splitlines() if bad["image_id"] in x)
    assert f"{bad['image_id']} step 0 (step0_expression_extraction):" in failure
    assert message in failure and str(data.root / bad["image_path"]) in failure
    assert "Traceback" not in result.output
    ids = [r["image_id"] for r in read_jsonl(tmp_path / "out" / "annotations.jsonl")]
    assert ids == [r["image_id"] for r in data.records if r is not bad]


REFERRING_CASES = [
    Case("image_dir missing", lambda t, d, s: [f"image_referring_expression.data.image_dir={d}/no"],
         "image_dir is not a directory"),
    Case("kitti_label_dir missing",
         lambda t, d, s: [f"image_referring_expression.data.kitti_label_dir={d}/no"],
         "kitti_label_dir is not a directory"),
    Case("no image has labels", lambda t, d, s: ([p.unlink() for p in (d / "labels").iterdir()],
                                                 [])[1],
         "no image has a matching label file"),
    Case("row with too few columns",
         lambda t, d, s: (line(d / "labels" / "scene_0000.txt", "car 0 0\n"), [])[1],
         "expected at least 8 columns", 1),
    Case("non-numeric coordinates",
         lambda t, d, s: (line(d / "labels" / "scene_0000.txt", "car 0 0 0 a b c d\n"), [])[1],
         "box columns 4-7 are not numbers", 1),
    Case("inverted box",
         lambda t, d, s: (line(d / "labels" / "scene_0000.txt", "car 0 0 0 9 9 1 1\n"), [])[1],
         "inverted or empty box", 1),
    Case("box outside the image",
         lambda t, d, s: (line(d / "labels" / "scene_0000.txt",
                               "car 0 0 0 9000 9000 9500 9500\n"), [])[1],
         "lies outside the", 1),
    Case("annotations file with a bad line",
         lambda t, d, s: ((t / "a.jsonl").write_text("{}\n[\n"),
                          ["image_referring_expression.data.image_dir=",
                           "image_referring_expression.data.kitti_label_dir=",
                           f"image_referring_expression.data.input_annotations_jsonl={t}/a.jsonl"]
                          )[1],
         "a.jsonl:1: image_path is missing"),
]


@pytest.mark.parametrize("case", REFERRING_CASES, ids=[c.name for c in REFERRING_CASES])
def test_bad_referring_input(tmp_path, sim, case):
    data = write_referring_dataset(tmp_path / "data", 2, seed=93)
    spec = write_spec(tmp_path / "spec.yaml",
                      referring_overrides(tmp_path / "out", data.root, sim))
    extra = case.damage(tmp_path, data.root, spec)
    result = runner.invoke(app, ["generate", "-e", str(spec), *extra])
    assert result.exit_code == case.code, result.output
    assert "Traceback" not in result.output
    lines = [x for x in result.output.splitlines() if case.message in x]
    assert lines, result.output
    if case.code == 1:  # a row skipped: the run goes on, and exits 1 for it
        assert f"{data.root / 'labels' / 'scene_0000.txt'}:" in lines[0]
    else:
        assert len(result.output.strip().splitlines()) == 1
