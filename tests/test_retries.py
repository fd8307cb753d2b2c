"""The retry policy, the same for every backend: what is retried, how long it waits, the events."""

from __future__ import annotations

import pytest
from support import backend_overrides

from auto_label import generate
from auto_label.ledger import Ledger
from auto_label.sim import write_grounding_dataset
from auto_label.spec_loader import load_spec


def spec_for(backend, results, data, sim, *extra):
    return load_spec(None, [
        f"results_dir={results}", "autolabel_type=image_grounding",
        *backend_overrides("image_grounding", backend, sim),
        f"image_grounding.data.input_jsonl={data / 'input.jsonl'}",
        f"image_grounding.data.image_root={data}",
        "image_grounding.workflow.max_workers=1",
        "image_grounding.workflow.retries.backoff_base=0.01",
        "image_grounding.workflow.retries.backoff_max=0.02",
        *extra,
    ])


@pytest.mark.parametrize("backend", ["openai", "gemini"])
def test_429_and_5xx_are_retried_honouring_retry_after_and_each_attempt_is_an_event(
        tmp_path, make_sim, backend):
    sim = make_sim(retry_after=0.3)
    data = write_grounding_dataset(tmp_path / "data", 1, seed=41)
    sim.script(["rate_limit", "server_error", "bad_body"], task="grounding.extract")
    summary = generate(spec_for(backend, tmp_path / "out", data.root, sim))
    assert summary.complete
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        events = [e for _, e in ledger.events(
            ["request_sent", "attempt_failed", "response_received", "step_completed"])
            if e.step == "0"]
    kinds = [(e.type, getattr(e, "kind", None)) for e in events]
    assert kinds == [
        ("request_sent", None), ("attempt_failed", "rate_limited"),
        ("request_sent", None), ("attempt_failed", "server_error"),
        ("request_sent", None), ("attempt_failed", "bad_response"),
        ("request_sent", None), ("response_received", None), ("step_completed", None),
    ]
    assert [e.attempt for e in events if e.type == "request_sent"] == [1, 2, 3, 4]
    rate_limited, retried = events[1], events[2]
    assert rate_limited.retry_after_s == pytest.approx(0.3)
    assert retried.at - rate_limited.at >= 0.29  # Retry-After is a floor under the backoff


@pytest.mark.parametrize("backend", ["openai", "gemini"])
def test_attempts_are_bounded_then_the_step_fails_and_the_run_goes_on(tmp_path, make_sim,
                                                                       backend):
    sim = make_sim(retry_after=0.01)
    data = write_grounding_dataset(tmp_path / "data", 2, seed=42)
    sim.script(["server_error"] * 3, task="grounding.extract")
    summary = generate(spec_for(backend, tmp_path / "out", data.root, sim,
                                "image_grounding.workflow.retries.max_attempts=3"))
    assert summary.counts["0"] == {"failed": 1, "completed": 1}
    assert summary.failures == {"server_error": 1}
    assert "gave up after 3 attempts" in summary.examples[0]


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0),
    ("0.5", 0.5),
    ("  12  ", 12.0),
    ("Fri, 27 Nov 2026 10:00:30 GMT", 30.0),
    ("Fri, 27 Nov 2026 09:59:00 GMT", 0.0),  # already past: no wait
    ("-3", 0.0),
    ("soon", None),
    ("", None),
    (None, None),
])
def test_retry_after_is_read_as_seconds_or_an_http_date(header, seconds):
    import email.utils

    from auto_label.backends.retry_after import parse_retry_after

    now = email.utils.parsedate_to_datetime("Fri, 27 Nov 2026 10:00:00 GMT").timestamp()
    assert parse_retry_after(header, now=now) == seconds


def test_a_cut_answer_is_asked_again_and_never_half_recorded(tmp_path, make_sim):
    from support import grounding_spec, read_jsonl

    sim = make_sim()
    data = write_grounding_dataset(tmp_path / "data", 1, seed=43)
    clean = generate(grounding_spec(tmp_path / "clean", data.root, sim.openai_base_url))
    assert clean.complete
    sim.script(["truncated"], task="grounding.ground")
    summary = generate(grounding_spec(tmp_path / "out", data.root, sim.openai_base_url))
    assert summary.complete
    assert read_jsonl(tmp_path / "out" / "annotations.jsonl") == read_jsonl(
        tmp_path / "clean" / "annotations.jsonl")
    sim.script(["truncated"] * 2, task="grounding.ground")
    failed = generate(grounding_spec(tmp_path / "again", data.root, sim.openai_base_url))
    assert failed.failures == {"truncated": 1}
    assert "cut at the token limit" in failed.examples[0]
