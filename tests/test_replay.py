"""Replay and show: stored answers read again with today's parsers, with no request sent.

A "parser fix" is played by swapping a step's parser in the registry, as an upgrade of auto-label
would: answers the simulator spoiled with its malformed-output fault, or read by a deliberately
lossy parser, are recovered from the ledger; the simulator counts every request it receives.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from typing import Any

import pytest
from json_repair import repair_json
from support import asked, grounding_spec, read_jsonl
from typer.testing import CliRunner

from auto_label.api import generate
from auto_label.cli.main import app
from auto_label.history import image_history
from auto_label.ledger.store import Ledger
from auto_label.pipelines.contract import Pipeline, Step, StepInput, StepOutput
from auto_label.pipelines.registry import PIPELINES
from auto_label.replay import record_diff, replay
from auto_label.sim.datasets import write_grounding_dataset

FAILING_ONCE = ("image_grounding.workflow.retries.max_attempts=1",
                "image_grounding.workflow.retries.parse_retries=0",
                "image_grounding.workflow.max_workers=1")


def _with_step(monkeypatch: pytest.MonkeyPatch, number: str, **changes: Any) -> Step:
    """Register image_grounding with step `number` changed (a new parser, a new version)."""
    pipeline: Pipeline = PIPELINES["image_grounding"]
    steps = tuple(dataclasses.replace(s, **changes) if s.number == number else s
                  for s in pipeline.steps)
    monkeypatch.setitem(PIPELINES, "image_grounding", dataclasses.replace(pipeline, steps=steps))
    return steps[int(number)]


def _fenced_ellipsis_parser(original: Step) -> Any:
    """A parser "fix" that reads the simulator's broken fenced answers: a JSON object whose
    closing brackets gave way to `,\\n  ...` inside a ```json fence."""

    def parse(text: str, ctx: StepInput) -> StepOutput:
        match = re.fullmatch(r"```json\n(.*),\n  \.\.\.\n```", text, re.DOTALL)
        if match is not None:
            text = repair_json(match.group(1))
        return original.parse(text, ctx)

    return parse


def _extract_requests(sim: Any) -> int:
    return sum(1 for r in asked(sim) if r.task == "grounding.extract")


def test_replay_completes_failed_steps_from_stored_answers_with_no_request(tmp_path, sim,
                                                                            monkeypatch):
    data = write_grounding_dataset(tmp_path / "data", 6, seed=21)
    out = tmp_path / "out"
    sim.script(["malformed"] * 6, task="grounding.extract")
    first = generate(grounding_spec(out, data.root, sim.openai_base_url, *FAILING_ONCE))
    assert first.counts["0"]["failed"] == 6
    with Ledger.open(out, create=False) as ledger:
        fenced = {e.image_id for _, e in ledger.events(["response_received"])
                  if e.text.startswith("```json")}
    assert 0 < len(fenced) < 6  # the fault spoils answers both ways: prose, broken fences

    step0 = PIPELINES["image_grounding"].step("0")
    _with_step(monkeypatch, "0", parse=_fenced_ellipsis_parser(step0))
    sim.reset_counts()
    dry = replay(out, dry_run=True)
    assert dry.counts["0"]["recovered"] == len(fenced)
    with Ledger.open(out, create=False) as ledger:
        before = ledger.count()

    report = replay(out)
    assert sim.counts() == {}  # not one request
    assert report.requests == 0
    assert report.counts["0"]["recovered"] == len(fenced)
    assert report.counts["0"]["still_failing"] == 6 - len(fenced)
    assert {c.image_id for c in report.records} == fenced
    assert all(line.startswith(("record appears", "+ ")) for c in report.records
               for line in c.lines)
    with Ledger.open(out, create=False) as ledger:
        replayed = [e for _, e in ledger.events(["step_completed"])]
        runs = [e for _, e in ledger.events(["run_started"])]
        assert ledger.count() > before
    assert runs[-1].purpose == "replay"
    assert {e.image_id for e in replayed} == fenced
    assert all(e.request_id for e in replayed)  # each names the answer it was read from
    records = {r["image_id"]: r for r in read_jsonl(out / "annotations.jsonl")}
    assert set(records) == fenced  # the exports were written again
    assert all(r["cleaned_caption"] and r["expressions"] for r in records.values())

    # the next generate asks step 0 only where no stored answer reads, and grounds the rest
    again = generate(grounding_spec(out, data.root, sim.openai_base_url))
    assert again.complete
    assert _extract_requests(sim) == 6 - len(fenced)
    grounded = Counter(r.task for r in asked(sim))["grounding.ground"]
    assert grounded == 6


def test_a_raised_parser_version_rereads_the_answers_and_reruns_only_what_changed(
        tmp_path, sim, monkeypatch):
    data = write_grounding_dataset(tmp_path / "data", 5, seed=22)
    out = tmp_path / "out"
    step0 = PIPELINES["image_grounding"].step("0")

    def lossy(text: str, ctx: StepInput) -> StepOutput:
        """A buggy parser that drops the last expression of answers with three or more."""
        output = step0.parse(text, ctx)
        stored = output.to_stored()
        if len(stored["expressions"]) >= 3:
            stored["expressions"] = stored["expressions"][:-1]
        return step0.output.model_validate(stored)

    _with_step(monkeypatch, "0", parse=lossy)
    assert generate(grounding_spec(out, data.root, sim.openai_base_url)).complete
    lossy_records = {r["image_id"]: r for r in read_jsonl(out / "annotations.jsonl")}
    hit = {i for i, r in lossy_records.items() if len(r["expressions"]) >= 2}

    # fixed, but the version was not raised: replay refuses to record a silent change
    _with_step(monkeypatch, "0", parse=step0.parse)
    unversioned = replay(out, dry_run=True, step="0")
    changed_images = {r.image_id for r in unversioned.examples if r.kind == "unversioned"}
    assert unversioned.counts["0"]["unversioned"] >= 1
    assert unversioned.recorded == 0

    # fixed with parser_version 2: every answer is read again, none asked again
    _with_step(monkeypatch, "0", parse=step0.parse, parser_version=2)
    sim.reset_counts()
    report = replay(out, step="0")
    assert sim.counts() == {}
    counts = report.counts["0"]
    assert counts["changed"] == unversioned.counts["0"]["unversioned"]
    assert counts["changed"] + counts["reread"] == 5
    assert {c.image_id for c in report.records} == changed_images
    assert all(any(line.startswith("+ ") for line in c.lines) for c in report.records)
    assert report.downstream == counts["changed"]  # their step 1 was built on the old list
    assert changed_images <= hit

    # generate: step 0 reused everywhere, step 1 asked again only for the changed images
    again = generate(grounding_spec(out, data.root, sim.openai_base_url))
    assert again.complete
    assert _extract_requests(sim) == 0
    grounded = [r for r in asked(sim) if r.task == "grounding.ground"]
    assert len(grounded) == counts["changed"]
    records = {r["image_id"]: r for r in read_jsonl(out / "annotations.jsonl")}
    for image_id in changed_images:
        assert len(records[image_id]["expressions"]) == \
            len(lossy_records[image_id]["expressions"]) + 1


def test_generate_reads_stored_answers_again_after_a_parser_version_change(tmp_path, sim,
                                                                           monkeypatch):
    """No replay first: generate itself reads the answers it already paid for."""
    data = write_grounding_dataset(tmp_path / "data", 4, seed=23)
    out = tmp_path / "out"
    assert generate(grounding_spec(out, data.root, sim.openai_base_url)).complete
    first = read_jsonl(out / "annotations.jsonl")
    _with_step(monkeypatch, "0", parser_version=2)
    _with_step(monkeypatch, "1", parser_version=2)
    sim.reset_counts()
    again = generate(grounding_spec(out, data.root, sim.openai_base_url))
    assert again.complete and again.requests == 0
    assert sim.counts() == {}
    assert again.counts["0"]["completed"] == 4  # re-read and recorded under the new version
    assert read_jsonl(out / "annotations.jsonl") == first
    # and a third run reuses them all
    third = generate(grounding_spec(out, data.root, sim.openai_base_url))
    assert third.counts["0"] == {"cached": 4} and third.counts["1"] == {"cached": 4}


def test_show_lists_every_event_and_marks_what_the_record_uses(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=24)
    out = tmp_path / "out"
    sim.script(["malformed"], task="grounding.extract")
    assert generate(grounding_spec(out, data.root, sim.openai_base_url,
                                   "image_grounding.workflow.max_workers=1")).complete
    with Ledger.open(out, create=False) as ledger:
        failed_attempt = next(e for _, e in ledger.events(["attempt_failed"]))
    image_id = failed_attempt.image_id
    history = image_history(out, image_id)
    types = [e.event.type for e in history.entries]
    assert types[0] == "image_seeded"
    assert types.count("request_sent") == 3  # two for step 0 (one junk), one for step 1
    used = [e for e in history.entries if e.in_record]
    assert {e.event.type for e in used} == {"request_sent", "response_received",
                                            "step_completed"}
    junk = [e for e in history.entries
            if getattr(e.event, "request_id", None) == failed_attempt.request_id]
    assert junk and not any(e.in_record for e in junk)
    assert history.record is not None

    runner = CliRunner()
    text = runner.invoke(app, ["show", str(out), image_id])
    assert text.exit_code == 0, text.output
    assert "step0_expression_extraction" in text.output
    assert "prompt " in text.output and "answer " in text.output and "output " in text.output
    assert failed_attempt.kind in text.output
    assert text.output.count("<- the record uses this") == len(used)

    as_json = runner.invoke(app, ["show", str(out), image_id, "--step", "1", "--json"])
    shown = json.loads(as_json.output)
    assert {e["step"] for e in shown["events"] if "step" in e} == {"1"}
    assert shown["events"][0]["type"] == "image_seeded"
    assert shown["record"]["image_id"] == image_id

    by_name = runner.invoke(app, ["show", str(out), image_id, "--step", "step1_grounding",
                                  "--json"])
    assert json.loads(by_name.output)["events"] == shown["events"]

    unknown = runner.invoke(app, ["show", str(out), image_id[:-1] + "x"])
    assert unknown.exit_code == 2
    assert "did you mean" in unknown.output and image_id in unknown.output
    assert "Traceback" not in unknown.output


def test_replay_cli_prints_what_changed_and_dry_run_records_nothing(tmp_path, sim, monkeypatch):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=25)
    out = tmp_path / "out"
    sim.script(["malformed"] * 3, task="grounding.extract")
    generate(grounding_spec(out, data.root, sim.openai_base_url, *FAILING_ONCE))
    step0 = PIPELINES["image_grounding"].step("0")
    _with_step(monkeypatch, "0", parse=_fenced_ellipsis_parser(step0))
    with Ledger.open(out, create=False) as ledger:
        events = ledger.count()
    runner = CliRunner()
    dry = runner.invoke(app, ["replay", str(out), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "nothing was recorded" in dry.output
    with Ledger.open(out, create=False) as ledger:
        assert ledger.count() == events
    bad_step = runner.invoke(app, ["replay", str(out), "--step", "7"])
    assert bad_step.exit_code == 2 and "step0_expression_extraction" in bad_step.output


def test_record_diff_names_added_removed_and_moved_boxes():
    def record(**expressions: list[list[int]]) -> dict[str, Any]:
        return {"expressions": [{"text": t, "instances": [{"bbox": b} for b in boxes]}
                                for t, boxes in expressions.items()]}

    before = record(car=[[0, 0, 10, 10]], dog=[[5, 5, 9, 9]])
    after = record(car=[[0, 0, 12, 10]], cat=[[1, 1, 2, 2]])
    lines = record_diff(before, after)
    assert "- 'dog' [[5, 5, 9, 9]]" in lines
    assert "+ 'cat' [[1, 1, 2, 2]]" in lines
    assert "~ 'car' boxes [[0, 0, 10, 10]] -> [[0, 0, 12, 10]]" in lines
    assert record_diff(before, before) == []
    assert record_diff(None, after)[0] == "record appears"


def test_replay_leaves_answers_to_an_older_prompt_alone(tmp_path, sim, monkeypatch):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=26)
    out = tmp_path / "out"
    assert generate(grounding_spec(out, data.root, sim.openai_base_url)).complete
    step0 = PIPELINES["image_grounding"].step("0")
    _with_step(monkeypatch, "0", prompt=dataclasses.replace(step0.prompt, version=99),
               parser_version=2)
    report = replay(out, step="0")
    assert report.counts["0"] == Counter({"skipped": 2})
    assert report.recorded == 0




def test_parser_version_one_keeps_every_fingerprint_and_later_versions_change_it():
    from auto_label.pipelines.engine.planning import completion_fingerprint

    asked = "sha256:" + "ab" * 32
    assert completion_fingerprint(asked, 1) == asked  # ledgers from before versions: unchanged
    assert completion_fingerprint(asked, 2) != asked
    assert completion_fingerprint(asked, 2) != completion_fingerprint(asked, 3)


def test_a_failed_attempt_names_its_http_status_once():
    from auto_label.cli.audit_view import describe
    from auto_label.history import AttemptFailed, HistoryEntry

    def line(message: str) -> str:
        event = AttemptFailed(request_id="r-1", image_id="a", step="0", attempt=1,
                              kind="server_error", message=message, status_code=500)
        return describe(HistoryEntry(7, 1, event, False), {"0": "step0"})[0]

    assert line("HTTP 500: An internal error").count("HTTP 500") == 1
    assert "(HTTP 500)" in line("the server failed")
