"""The ledger: file safety, migrations, the unique completion key, the writer, and the pure fold."""

from __future__ import annotations

import itertools
import json
import sqlite3
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auto_label.errors import LedgerError, LedgerLockedError
from auto_label.ledger import Ledger, LedgerWriter, fold, queries
from auto_label.ledger.events import (
    EVENT_CLASSES,
    ImageRejected,
    ImageSeeded,
    RequestSent,
    ResponseReceived,
    StepCompleted,
    StepFailed,
    StepSelected,
    parse_event,
)
from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.lock import RunLock
from auto_label.ledger.migrations import known_migrations
from auto_label.ledger.versioning import NewerVersionError


def seeded(image_id="img", sha="a" * 64, caption="a red circle"):
    return ImageSeeded(image_id=image_id, path=f"/d/{image_id}.png", sha256=sha, width=64,
                       height=48, size=10, mtime_ns=1, caption=caption)


def completed(step="0", fp="sha256:f1", output=None, generation=0, image_id="img"):
    output = output if output is not None else {"n": fp}
    return StepCompleted(image_id=image_id, step=step, fingerprint=fp, generation=generation,
                         output=output, output_version=1, output_hash=content_hash(output))


def test_the_ledger_file_is_owner_only_and_in_wal_mode(tmp_path):
    with Ledger.open(tmp_path / "out") as ledger:
        mode = stat.S_IMODE(ledger.path.stat().st_mode)
        assert mode == 0o600
        assert ledger.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrations_apply_once_and_reopening_keeps_events(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        ledger.append([seeded()])
    with Ledger.open(tmp_path) as ledger:
        names = [r[0] for r in ledger.connection().execute(
            "SELECT name FROM _sqlite_migrations ORDER BY rowid")]
        assert names == known_migrations() == [
            "m001_initial", "m002_runs_from_events", "m003_image_frames", "m004_views",
            "m005_compact_events", "m006_status_projections", "m007_bodies_without_columns",
            "m008_leaner_bodies"]
        assert ledger.count("image_seeded") == 1


def test_a_ledger_from_a_newer_tool_is_refused_not_migrated(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        ledger.connection().execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('auto_label.ledger', 'm999_future', '2030-01-01')")
    with pytest.raises(LedgerError, match="written by a newer auto-label"):
        Ledger.open(tmp_path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    (tmp_path / "ledger.db").write_bytes(b"this is not sqlite, just some text" * 40)
    with pytest.raises(LedgerError, match="not an auto-label ledger"):
        Ledger.open(tmp_path)
    assert (tmp_path / "ledger.db").read_bytes().startswith(b"this is not sqlite")


def test_another_apps_database_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "ledger.db")
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="not an auto-label ledger"):
        Ledger.open(tmp_path)


def test_export_of_a_directory_without_ledger_does_not_create_one(tmp_path):
    with pytest.raises(LedgerError, match="no ledger here"):
        Ledger.open(tmp_path, create=False)
    assert not (tmp_path / "ledger.db").exists()


def test_a_duplicate_completion_is_impossible(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        assert ledger.append([seeded(), completed()]) == []
        duplicate = completed()
        assert ledger.append([duplicate]) == [duplicate]
        assert ledger.count("step_completed") == 1
        # a forced run completes the same fingerprint again under its own generation
        assert ledger.append([completed(generation=3, output={"n": "again"})]) == []
        assert ledger.count("step_completed") == 2
        with pytest.raises(sqlite3.IntegrityError):
            ledger.connection().execute(
                "INSERT INTO completions VALUES ('0', 'img', 'sha256:f1', 3, 99, 'x', 1)")


def test_current_follows_the_newest_completion_and_selection(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        ledger.append([seeded(), completed(fp="sha256:A"), completed(fp="sha256:B")])
        conn = ledger.connection()
        assert queries.current(conn)[("img", "0")].fingerprint == "sha256:B"
        ledger.append([StepSelected(image_id="img", step="0", fingerprint="sha256:A")])
        current = queries.current(conn)[("img", "0")]
        assert current.fingerprint == "sha256:A"
        assert current.output_hash == content_hash({"n": "sha256:A"})
        assert queries.completions(conn)[("img", "0", "sha256:B")][1] == content_hash(
            {"n": "sha256:B"})


def test_events_round_trip_through_the_database(tmp_path):
    events = [seeded(), completed(), StepFailed(image_id="img", step="1", fingerprint="f",
                                                kind="unparseable", message="img step 1: x")]
    with Ledger.open(tmp_path) as ledger:
        ledger.append(events)
        stored = [e for _, e in ledger.events()]
    assert stored == events


def test_the_writer_commits_groups_in_order_and_flushes(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        writer = LedgerWriter(ledger.path, interval=0.01)
        for i in range(50):
            writer.put(seeded(image_id=f"i{i}"), completed(image_id=f"i{i}"))
        writer.flush(timeout=10)
        assert ledger.count("step_completed") == 50
        duplicate = completed(image_id="i0")
        writer.put(duplicate)
        writer.close()
        assert writer.refused == [duplicate]
        order = [e.image_id for _, e in ledger.events(["image_seeded"])]
        assert order == [f"i{i}" for i in range(50)]


def test_a_second_run_on_the_same_results_dir_is_refused(tmp_path):
    with RunLock(tmp_path), pytest.raises(LedgerLockedError, match=r"another auto_label run \(pid"):
        RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released: free again
        pass


def test_parse_event_upcasts_each_version_with_the_upcasters_beside_its_class():
    v1 = json.loads(completed().model_dump_json())
    v1["v"] = 1
    del v1["output_version"], v1["found"]
    assert parse_event(v1) == completed().model_copy(update={"at": v1["at"]})
    response = {"type": "response_received", "v": 1, "at": 1.0, "run_id": "r",
                "request_id": "q", "image_id": "img", "step": "0", "attempt": 1, "text": "{}",
                "latency_s": 0.5}
    upcast = parse_event(response)
    assert isinstance(upcast, ResponseReceived) and upcast.v == 4  # v1 -> v2 -> v3 -> v4
    assert (upcast.model_version, upcast.response_id) == (None, None)
    assert (upcast.thinking, upcast.answer_in) == (None, "content")
    assert upcast.finish_reason is None  # left out before v4: None, not v4's default "stop"


def test_every_event_class_has_a_complete_upcaster_chain():
    assert [cls.missing_upcasters() for cls in EVENT_CLASSES] == [[]] * len(EVENT_CLASSES)
    assert {cls.model_fields["type"].default for cls in EVENT_CLASSES} == {
        "run_started", "run_warning", "run_finished", "image_seeded", "image_rejected",
        "request_template", "request_sent",
        "response_received", "attempt_failed", "step_completed", "step_selected", "step_failed",
        "batch_created", "batch_submitted", "batch_updated", "batch_finished"}


def test_an_event_from_a_newer_tool_is_refused_with_a_clear_reason():
    newer = json.loads(seeded().model_dump_json())
    newer["v"] = 9
    with pytest.raises(NewerVersionError, match="newer auto-label"):
        parse_event(newer)
    with pytest.raises(ValueError, match="parse stored events with parse_event"):
        ImageSeeded(v=0, image_id="i", path="p", sha256="s", width=1, height=1, size=1,
                    mtime_ns=1)


# -- the fold ----------------------------------------------------------------------------------

FPS = st.sampled_from(["sha256:A", "sha256:B", "sha256:C"])
STEPS = st.sampled_from(["0", "1"])
image_events = st.one_of(
    st.builds(lambda sha, cap: seeded(sha=sha, caption=cap),
              st.sampled_from(["a" * 64, "b" * 64]), st.sampled_from(["x", "y"])),
    st.builds(lambda: ImageRejected(image_id="img", path="/d/img.png", kind="image_missing",
                                    message="gone")),
    st.builds(lambda step, fp, n: completed(step, fp, {"n": n}), STEPS, FPS,
              st.integers(0, 3)),
    st.builds(lambda step, fp: StepSelected(image_id="img", step=step, fingerprint=fp),
              STEPS, FPS),
    st.builds(lambda step, kind: StepFailed(image_id="img", step=step, fingerprint="f",
                                            kind=kind, message="m"),
              STEPS, st.sampled_from(["timeout", "unparseable"])),
    st.builds(lambda: RequestSent(request_id="r", image_id="img", step="0", attempt=1,
                                  fingerprint="f", backend="openai", model="m", parameters={},
                                  prompt="p", image_sha256="a", sent_width=1, sent_height=1)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(image_events, max_size=25), st.lists(st.integers(0, 25), max_size=6))
def test_folding_in_any_chunking_gives_the_same_state(events, cuts):
    whole = fold(events, image_id="img")
    state = None
    bounds = sorted({0, len(events), *(c for c in cuts if c <= len(events))})
    for start, end in itertools.pairwise(bounds):
        state = fold(events[start:end], state, image_id="img")
    if state is None:
        state = fold([], image_id="img")
    assert state == whole


@settings(max_examples=200, deadline=None)
@given(st.lists(image_events, max_size=25))
def test_the_fold_shows_the_newest_completion_or_selection(events):
    state = fold(events, image_id="img")
    for step in ("0", "1"):
        expected = None
        seen = set()
        for event in events:
            if isinstance(event, StepCompleted) and event.step == step:
                expected = event
                seen.add(event.fingerprint)
            elif isinstance(event, StepSelected) and event.step == step and \
                    event.fingerprint in seen:
                expected = [e for e in events[: events.index(event)]
                            if isinstance(e, StepCompleted) and e.step == step
                            and e.fingerprint == event.fingerprint][-1]
        assert state.completion(step) == expected


def test_a_foreign_database_is_refused_without_being_switched_to_wal(tmp_path):
    conn = sqlite3.connect(tmp_path / "ledger.db")
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="not an auto-label ledger"):
        Ledger.open(tmp_path)
    conn = sqlite3.connect(tmp_path / "ledger.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]
    conn.close()


def test_flush_returns_once_the_callers_own_events_are_committed(tmp_path):
    """Many threads put; each flushes its own ticket and must then find its event stored."""
    import threading

    with Ledger.open(tmp_path) as ledger:
        writer = LedgerWriter(ledger.path, interval=0.5)  # slow ticks: flush must wake it
        missing: list[str] = []

        def worker(n: int) -> None:
            reader = Ledger(ledger.path)
            for i in range(20):
                image_id = f"w{n}-{i}"
                writer.flush(writer.put(seeded(image_id=image_id)), timeout=10)
                found = [e for _, e in reader.events(["image_seeded"], image_id=image_id)]
                if not found:
                    missing.append(image_id)
            reader.close()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        writer.close()
        assert missing == []
        assert ledger.count("image_seeded") == 120


def test_the_writer_reports_what_it_stored_and_what_it_refused(tmp_path):
    stored: list[str] = []
    refused: list[StepCompleted] = []

    def on_commit(events, duplicates):
        stored.extend(e.type for e in events)
        refused.extend(duplicates)

    with Ledger.open(tmp_path) as ledger:
        writer = LedgerWriter(ledger.path, on_commit=on_commit)
        writer.put(seeded(), completed())
        writer.flush()
        duplicate = completed()
        writer.put(duplicate)
        writer.close()
    assert stored == ["image_seeded", "step_completed"]
    assert refused == [duplicate]


def test_reading_a_completion_that_is_another_event_fails_loudly(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        ledger.append([seeded()])
        seq = next(seq for seq, _ in ledger.events(["image_seeded"]))
        with pytest.raises(LedgerError, match="is a image_seeded event, not the step_completed"):
            ledger.completion(seq)
