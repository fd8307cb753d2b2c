"""`generate --dry-run`: the requests it counts are the requests the next real run sends (the
simulator counts them), on a fresh results_dir, after a run stopped mid-way, after new input
lines, with skipped and re-read steps; it sends nothing and writes nothing."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support import asked, grounding_overrides, grounding_spec, referring_spec
from test_resume import write_spec
from typer.testing import CliRunner

from auto_label import generate
from auto_label.backends.prices import usage_cost
from auto_label.cli.main import app
from auto_label.errors import QuotaExhausted
from auto_label.estimate import DEFAULT_TOKENS, DryRun, dry_run
from auto_label.pipelines.registry import PIPELINES
from auto_label.sim import write_grounding_dataset, write_referring_dataset

TASKS = {"grounding.extract": "0", "grounding.ground": "1"}
PRICE = ("image_grounding.vlm.openai.price.input_per_million=2",
         "image_grounding.vlm.openai.price.output_per_million=8")


def sent_per_step(sim: Any, before: int = 0) -> Counter[str]:
    """Grounding requests the simulator received (after the first `before`), by step."""
    return Counter(TASKS[r.task] for r in asked(sim)[before:])


def planned(report: DryRun) -> Counter[str]:
    return Counter({s.number: s.requests for s in report.steps if s.requests})


def test_a_fresh_results_dir_counts_every_step_of_every_image_and_writes_nothing(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 6, seed=31)
    out = tmp_path / "out"
    spec = grounding_spec(out, data.root, sim.openai_base_url, *PRICE)
    report = dry_run(spec)
    assert sim.requests() == []  # not even the pre-flight
    assert not out.exists()
    assert not report.ledger and report.images == 6 and report.unseeded == 6
    assert planned(report) == {"0": 6, "1": 6}
    assert all(s.tokens == DEFAULT_TOKENS for s in report.steps)  # no history: the default
    prompt, answer, thinking = report.tokens
    assert (prompt, answer) == (12 * DEFAULT_TOKENS.prompt, 12 * DEFAULT_TOKENS.answer)
    assert report.cost == pytest.approx(usage_cost(report.price, prompt, answer, thinking,
                                                    completion_includes_thinking=True))
    assert generate(spec).complete
    assert sent_per_step(sim) == planned(report)


def test_after_a_run_stopped_mid_way_it_counts_what_the_rerun_sends(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 8, seed=32)
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                          "image_grounding.workflow.max_workers=1")
    sim.script(["ok"] * 7 + ["quota_day"])  # the endpoint stops the run at its 8th request
    with pytest.raises(QuotaExhausted):
        generate(spec)
    before = len(asked(sim))
    report = dry_run(spec)
    assert len(asked(sim)) == before
    assert 0 < report.requests < 16
    assert sum(s.reuse for s in report.steps) == 16 - report.requests
    assert generate(spec).complete
    assert sent_per_step(sim, before) == planned(report)


def test_new_input_lines_are_the_only_new_work(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 9, seed=33)
    lines = (data.root / "input.jsonl").read_text().splitlines(keepends=True)
    (data.root / "input.jsonl").write_text("".join(lines[:6]))
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url)
    assert generate(spec).complete
    (data.root / "input.jsonl").write_text("".join(lines))
    before = len(asked(sim))
    report = dry_run(spec)
    assert (report.images, report.unseeded) == (9, 3)
    assert planned(report) == {"0": 3, "1": 3}
    assert [s.reuse for s in report.steps] == [6, 6]
    assert generate(spec).complete
    assert sent_per_step(sim, before) == planned(report)


def test_token_means_come_from_the_ledger_answers_of_the_same_model(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 5, seed=34)
    lines = (data.root / "input.jsonl").read_text().splitlines(keepends=True)
    (data.root / "input.jsonl").write_text("".join(lines[:3]))
    out = tmp_path / "out"
    spec = grounding_spec(out, data.root, sim.openai_base_url, *PRICE)
    assert generate(spec).complete
    (data.root / "input.jsonl").write_text("".join(lines))
    report = dry_run(spec)
    conn = sqlite3.connect(out / "ledger.db")
    usage: dict[str, list[dict[str, Any]]] = {}
    for step, body in conn.execute("SELECT step, body FROM events "
                                   "WHERE type = 'response_received'"):
        usage.setdefault(step, []).append(json.loads(body)["usage"])
    conn.close()
    for plan in report.steps:
        answers = usage[plan.number]
        assert plan.tokens.source == "history" and plan.tokens.responses == len(answers)
        assert plan.tokens.prompt == pytest.approx(
            sum(u["prompt_tokens"] for u in answers) / len(answers))
        assert plan.tokens.answer == pytest.approx(
            sum(u["completion_tokens"] for u in answers) / len(answers))
        assert plan.total_tokens[0] == round(plan.tokens.prompt * 2)  # two new images
    # another model: the same history, said to be another model's
    other = dry_run(grounding_spec(out, data.root, sim.openai_base_url,
                                   "image_grounding.vlm.openai.model_name=another-vlm"))
    assert {s.tokens.source for s in other.steps} == {"other models"}
    assert planned(other) == {"0": 5, "1": 5}  # another model's fingerprints: all new


def test_downstream_steps_of_an_asked_step_are_asked_and_a_failed_one_is_asked_again(
        tmp_path, sim):
    data = write_referring_dataset(tmp_path / "data", 4, seed=35)
    spec = referring_spec(tmp_path / "out", data.root, sim, "image_referring_expression."
                          "workflow.max_workers=1")
    report = dry_run(spec)
    assert planned(report) == {"0": 4, "1": 4, "2": 4, "3": 4}
    sim.script(["truncated", "truncated"], task="referring.group")  # one image's step 2 fails
    summary = generate(spec)
    assert summary.counts["2"]["failed"] == 1 and summary.counts["3"]["skipped"] == 1
    assert len(asked(sim)) == 15 + 1  # the failed step was asked twice (a parse retry)
    before = len(asked(sim))
    again = dry_run(spec)
    assert planned(again) == {"2": 1, "3": 1}  # the failed step, and the one that needs it
    assert generate(spec).complete
    assert len(asked(sim)) - before == again.requests


def test_steps_that_cannot_run_are_skipped_and_cost_nothing(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=36)
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                          "image_grounding.workflow.steps=[\"1\"]")
    report = dry_run(spec)
    assert [(s.number, s.ask, s.skip) for s in report.steps] == [("1", 0, 3)]
    assert report.requests == 0
    generate(spec)
    assert asked(sim) == []


def test_answers_a_new_parser_version_reads_again_need_no_request(tmp_path, sim, monkeypatch):
    data = write_grounding_dataset(tmp_path / "data", 4, seed=37)
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url)
    assert generate(spec).complete
    pipeline = PIPELINES["image_grounding"]
    monkeypatch.setitem(PIPELINES, "image_grounding", dataclasses.replace(
        pipeline, steps=tuple(dataclasses.replace(s, parser_version=2) for s in pipeline.steps)))
    before = len(asked(sim))
    report = dry_run(spec)
    assert [(s.reread, s.ask) for s in report.steps] == [(4, 0), (4, 0)]
    assert generate(spec).requests == 0
    assert len(asked(sim)) == before


def test_retry_failed_counts_only_the_failed_images(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 4, seed=38)
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                          "image_grounding.workflow.max_workers=1")
    sim.script(["truncated", "truncated"], task="grounding.extract")  # an answer and its retry
    assert generate(spec).counts["0"]["failed"] == 1
    report = dry_run(spec, retry_failed=True)
    assert report.images == 1 and planned(report) == {"0": 1, "1": 1}
    before = len(asked(sim))
    assert generate(spec, retry_failed=True).complete
    assert len(asked(sim)) - before == 2


def test_a_gemini_spec_without_a_key_can_be_estimated(tmp_path, sim, monkeypatch):
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    data = write_referring_dataset(tmp_path / "data", 2, seed=39)
    keyless = referring_spec(tmp_path / "out", data.root, sim,
                             "image_referring_expression.vlm.gemini.api_key=", backend="gemini")
    assert not keyless.block.vlm.selected().api_key.get_secret_value()
    report = dry_run(keyless)
    assert report.backend == "gemini" and report.requests == 8
    assert sim.requests() == []


def test_the_cli_prints_counts_per_step_and_says_when_the_price_is_unknown(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=40)
    path = write_spec(tmp_path / "spec.yaml",
                      grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url))
    result = CliRunner().invoke(app, ["generate", "-e", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "step0_expression_extraction: ask 2, re-read 0, reuse 0, skip 0 -> 2 requests" \
        in result.output
    assert "in all: 4 requests" in result.output
    assert "unknown price" in result.output and "image_grounding.vlm.openai.price" in \
        result.output
    assert "a default" in result.output  # the tokens are a guess, and it says so
    assert not (tmp_path / "out").exists() and sim.requests() == []
    priced = CliRunner().invoke(app, ["generate", "-e", str(path), "--dry-run", *PRICE])
    assert priced.exit_code == 0, priced.output
    assert "in all: 4 requests (retries not counted), 6,000 in + 2,000 out tokens, about " \
           "$0.028" in priced.output


def test_a_results_dir_that_holds_no_ledger_but_a_file_is_one_line(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 1, seed=41)
    out: Path = tmp_path / "out"
    out.mkdir()
    (out / "ledger.db").write_text("not a database")
    path = write_spec(tmp_path / "spec.yaml",
                      grounding_overrides(out, data.root, sim.openai_base_url))
    result = CliRunner().invoke(app, ["generate", "-e", str(path), "--dry-run"])
    assert result.exit_code == 2
    assert "ledger.db" in result.output and "Traceback" not in result.output


def test_a_moved_dataset_is_known_by_its_content(tmp_path, sim):
    """The same images under another folder: the run seeds them again to the same content and
    reuses every answer; the dry run reads them to know it (and names how many it read)."""
    import shutil

    data = write_grounding_dataset(tmp_path / "data", 5, seed=39)
    out = tmp_path / "out"
    assert generate(grounding_spec(out, data.root, sim.openai_base_url)).complete
    moved = tmp_path / "moved"
    shutil.copytree(data.root, moved)
    spec = grounding_spec(out, moved, sim.openai_base_url)
    report = dry_run(spec)
    assert report.rehashed == 5 and report.unseeded == 0
    assert report.requests == 0
    before = len(asked(sim))
    assert generate(spec).complete
    assert len(asked(sim)) == before


def test_retry_failed_names_how_many_of_the_input_it_takes(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 4, seed=40)
    spec_args = ("image_grounding.workflow.retries.max_attempts=1",
                 "image_grounding.workflow.retries.parse_retries=0")
    sim.script(["malformed"], task="grounding.extract")
    out = tmp_path / "out"
    generate(grounding_spec(out, data.root, sim.openai_base_url,
                            "image_grounding.workflow.max_workers=1", *spec_args))
    report = dry_run(grounding_spec(out, data.root, sim.openai_base_url), retry_failed=True)
    assert (report.images, report.input_images) == (1, 4)
    overrides = grounding_overrides(out, data.root, sim.openai_base_url)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("autolabel_type: image_grounding\n")
    shown = CliRunner().invoke(app, ["generate", "-e", str(spec_file), "--dry-run",
                                     "--retry-failed", *overrides])
    assert "1 of the 4 input images (--retry-failed)" in shown.output, shown.output
