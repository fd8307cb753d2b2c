"""Tokens and cost: the price table, a price set in the spec (never in a fingerprint), the cost of
a run's answers, and `workflow.max_cost` stopping a real run at the right point, the rerun going
on from there."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from support import asked, grounding_overrides, grounding_spec
from test_resume import write_spec
from typer.testing import CliRunner

from auto_label import generate
from auto_label.backends.prices import (
    PRICES,
    Price,
    price_for,
    price_from_spec,
    thinking_in_completion,
    usage_cost,
)
from auto_label.backends.registry import create_backend
from auto_label.cli.main import app
from auto_label.errors import SpecError
from auto_label.ledger.events import RunFinished, RunStarted
from auto_label.ledger.store import Ledger
from auto_label.pipelines.contract import ImageInput
from auto_label.pipelines.engine.planning import ImageFacts, Settings, fingerprint
from auto_label.pipelines.registry import PIPELINES
from auto_label.sim import write_grounding_dataset
from auto_label.spec_loader import load_spec

# what one simulator request costs at this price: about 400 prompt tokens and 40-100 answer
# tokens, so $0.40 + $0.16-0.40 (the budgets below are for a handful of requests)
PRICE = ("image_grounding.vlm.openai.price.input_per_million=1000",
         "image_grounding.vlm.openai.price.output_per_million=4000")
SPEC_PRICE = Price(1000, 4000)


# -- the table --------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "entry"), [
    ("gemini-2.5-flash", "gemini-2.5-flash"),
    ("models/gemini-2.0-flash-001", "gemini-2.0-flash"),
    ("gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite"),
    ("gemini-3.1-flash-lite-preview", "gemini-3.1-flash-lite-preview"),
    ("GPT-4o", "gpt-4o"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # its own, dearer price
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("gpt-4.1-2025-04-14", "gpt-4.1"),
    ("gpt-4.1-nano", "gpt-4.1-nano"),
    ("gpt-5-2025-08-07", "gpt-5"),
    ("o4-mini-2025-04-16", "o4-mini"),
    ("gemini-2.5-pro-latest", "gemini-2.5-pro"),
])
def test_price_for_finds_the_name_and_its_dated_versions(model, entry):
    assert price_for(model) is PRICES[entry]


@pytest.mark.parametrize("model", [
    "gpt-5-pro",                         # not gpt-5's price: a suffix that is not a version
    "gemini-2.5-flash-lite-preview-06-17",
    "o3-mini",                           # takes no image: not in the table
    "Qwen/Qwen2.5-VL-7B-Instruct",       # self-hosted: no price
    "sim-vlm",
    "gemini-3.6-flash",                  # introductory price that changes on a known date
])
def test_price_for_knows_nothing_it_cannot_source(model):
    assert price_for(model) is None


def test_every_entry_is_sourced_and_dated():
    for name, price in PRICES.items():
        assert name == name.lower()
        assert re.search(r"https://\S+", price.source), name
        assert re.search(r"\b20\d\d-\d\d-\d\d\b", price.source), name
        assert 0 < price.input_per_million <= price.output_per_million, name


def test_thinking_is_billed_once_whatever_the_backend_counts():
    price = Price(1.0, 10.0)
    # OpenAI: 500 completion tokens of which 300 reasoning; Gemini: 200 candidates + 300 thoughts
    openai = usage_cost(price, 1000, 500, 300, completion_includes_thinking=True)
    gemini = usage_cost(price, 1000, 200, 300, completion_includes_thinking=False)
    assert openai == gemini == pytest.approx((1000 * 1 + 500 * 10) / 1e6)
    dear = Price(1.0, 10.0, thinking_per_million=20.0)
    assert usage_cost(dear, 1000, 500, 300, completion_includes_thinking=True) == \
        pytest.approx((1000 + 200 * 10 + 300 * 20) / 1e6)
    assert usage_cost(price, None, None, None, completion_includes_thinking=True) == 0
    assert thinking_in_completion("openai") is True
    assert thinking_in_completion("gemini") is False
    assert thinking_in_completion("no-such-backend") is False


# -- the price in the spec --------------------------------------------------------------------

def test_a_price_in_the_spec_changes_no_fingerprint(tmp_path):
    """The pinned grounding fingerprints of tests/test_contracts.py, from a backend whose spec
    sets a price: the price is not part of what it describes."""
    spec = load_spec(None, grounding_overrides(
        tmp_path / "out", tmp_path, "http://127.0.0.1:9/v1", *PRICE,
        "image_grounding.vlm.openai.temperature=0.0"))
    backend = create_backend(spec.block.vlm)
    described = backend.describe()
    backend.close()
    assert described == {"backend": "openai", "model": "sim-vlm", "temperature": 0.0,
                         "max_tokens": 4096, "coordinates": "xyxy_pixel", "max_image_side": 0}
    pipeline = PIPELINES["image_grounding"]
    settings = Settings(pipeline, frozenset({"0", "1"}), False, described)
    facts = ImageFacts(ImageInput(
        image_id="img", path=Path("/d/img.png"), image_path="/d/img.png",
        caption="A red car near a tree.", source="input.jsonl:1"), "a" * 64)
    assert fingerprint(settings, facts, pipeline.step("0"), {}) == \
        "sha256:6e47a01defdac32427903a973e050872e44a38309958189a6a5a6e7db8b52849"
    assert fingerprint(settings, facts, pipeline.step("1"), {"0": "sha256:" + "b" * 64}) == \
        "sha256:8aa79eb02b2eee60d8d205ee8ee873a04d33de8eb9b9be1e807ebfd37c46a4ce"


def test_setting_a_price_later_asks_nothing_again(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=51)
    out = tmp_path / "out"
    assert generate(grounding_spec(out, data.root, sim.openai_base_url)).complete
    sent = len(asked(sim))
    again = generate(grounding_spec(out, data.root, sim.openai_base_url, *PRICE))
    assert again.complete and len(asked(sim)) == sent
    assert again.counts["0"]["cached"] == again.counts["1"]["cached"] == 3


def test_a_past_run_s_price_comes_from_its_recorded_spec(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 1, seed=52)
    out = tmp_path / "out"
    generate(grounding_spec(out, data.root, sim.openai_base_url, *PRICE))
    with Ledger.open(out, create=False) as ledger:
        started = ledger.latest("run_started")
    assert isinstance(started, RunStarted)
    price = price_from_spec(started.spec, started.backend, started.model)
    assert price is not None and (price.input_per_million, price.output_per_million) == \
        (1000, 4000) and "image_grounding.vlm.openai.price" in price.source
    assert price_from_spec({}, "openai", "gpt-4.1") is PRICES["gpt-4.1"]
    assert price_from_spec({"autolabel_type": "x", "x": {"vlm": {"openai": {"price": "junk"}}}},
                           "openai", "sim-vlm") is None


# -- max_cost ---------------------------------------------------------------------------------

def ledger_costs(out: Path) -> list[float]:
    """The cost of every answer in the ledger, in order, at the planted price."""
    conn = sqlite3.connect(out / "ledger.db")
    try:
        usages = [json.loads(body).get("usage", {}) for (body,) in conn.execute(
            "SELECT body FROM events WHERE type = 'response_received' ORDER BY seq")]
    finally:
        conn.close()
    return [usage_cost(SPEC_PRICE, u.get("prompt_tokens"), u.get("completion_tokens"),
                       u.get("thinking_tokens"), completion_includes_thinking=True) for u in usages]


def budgeted(out: Path, data: Path, sim, max_cost: float, workers: int):
    return grounding_spec(out, data, sim.openai_base_url, *PRICE,
                          f"image_grounding.workflow.max_cost={max_cost}",
                          f"image_grounding.workflow.max_workers={workers}")


def test_max_cost_with_one_worker_stops_within_one_request_of_the_limit(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 8, seed=53)
    out = tmp_path / "out"
    summary = generate(budgeted(out, data.root, sim, 4.0, 1))
    costs = ledger_costs(out)
    assert summary.interrupted == "max_cost" and not summary.ok
    assert len(costs) == len(asked(sim)) < 16
    # no request started once the spent cost plus the next one's estimate would pass it:
    # what was spent is at most the limit plus the last answer's excess over its estimate,
    # and less than one answer short of the limit
    assert sum(costs) <= 4.0 + max(costs) - min(costs)
    assert sum(costs) > 4.0 - max(costs)
    line = next(a for a in summary.alarms if a.startswith("max_cost reached"))
    assert "image_grounding.workflow.max_cost = $4.00" in line and "Rerun" in line
    with Ledger.open(out, create=False) as ledger:
        finished = ledger.latest("run_finished")
    assert isinstance(finished, RunFinished) and finished.status == "interrupted"


def test_max_cost_bound_with_workers_in_flight_and_the_reruns_finish(tmp_path, make_sim):
    workers = 4
    data = write_grounding_dataset(tmp_path / "data", 10, seed=54)
    out = tmp_path / "out"
    sim = make_sim(seed=5, latency_mean=0.05)  # requests overlap: several are in flight at once
    summary = generate(budgeted(out, data.root, sim, 3.0, workers))
    costs = ledger_costs(out)
    assert summary.interrupted == "max_cost"
    # the bound guaranteed: max_cost plus one answer in flight per worker
    assert sum(costs) <= 3.0 + workers * max(costs)
    first = len(costs)
    assert 0 < first < 20
    # the budget is per run: the same command goes on, another budget's worth each time
    runs = 1
    while not summary.complete:
        summary = generate(budgeted(out, data.root, sim, 3.0, workers))
        runs += 1
        assert runs <= 12
        assert summary.interrupted in (None, "max_cost")
    assert runs > 1 and summary.ok
    # nothing was asked twice: every request of every run answered a step once
    assert len(asked(sim)) == len(ledger_costs(out)) == 20
    assert len((out / "annotations.jsonl").read_text().splitlines()) == 10


def test_raising_max_cost_lets_the_rerun_finish(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 5, seed=55)
    out = tmp_path / "out"
    assert generate(budgeted(out, data.root, sim, 2.0, 2)).interrupted == "max_cost"
    done = generate(budgeted(out, data.root, sim, 100.0, 2))
    assert done.ok and done.interrupted is None
    assert len(asked(sim)) == 10


def test_max_cost_without_a_price_fails_before_any_request(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=56)
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                          "image_grounding.workflow.max_cost=5")
    with pytest.raises(SpecError, match=r"no price is known for the model 'sim-vlm': set "
                                        r"image_grounding\.vlm\.openai\.price"):
        generate(spec)
    assert sim.requests() == []  # not even the pre-flight
    assert not (tmp_path / "out" / "ledger.db").exists()


def test_the_cli_exits_1_with_the_max_cost_line_and_2_without_a_price(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 6, seed=57)
    overrides = grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url)
    path = write_spec(tmp_path / "spec.yaml", overrides)
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "-e", str(path), *PRICE,
                                 "image_grounding.workflow.max_cost=2"])
    assert result.exit_code == 1, result.output
    assert "max_cost reached" in result.output
    assert "image_grounding.workflow.max_cost = $2.00" in " ".join(result.output.split())
    unpriced = runner.invoke(app, ["generate", "-e", str(path),
                                   "image_grounding.workflow.max_cost=2"])
    assert unpriced.exit_code == 2
    assert "image_grounding.vlm.openai.price" in unpriced.output
    assert "Traceback" not in unpriced.output
