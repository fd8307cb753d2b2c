"""The gemini backend end to end through the real google-genai SDK, and Gemini's raw outputs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import SIM_KEY, asked, backend_overrides, read_jsonl

from auto_label import generate
from auto_label.evaluate import match_ground_truth
from auto_label.pipelines.answers import ParseError
from auto_label.pipelines.contract import StepInput
from auto_label.pipelines.grounding.outputs import ExtractedExpression, ExtractionOutput
from auto_label.pipelines.grounding.steps import STEP_GROUND
from auto_label.sim import write_grounding_dataset
from auto_label.spec_loader import load_spec


def gemini_grounding(results, data, sim, *extra):
    return load_spec(None, [
        f"results_dir={results}", "autolabel_type=image_grounding",
        *backend_overrides("image_grounding", "gemini", sim),
        f"image_grounding.data.input_jsonl={data / 'input.jsonl'}",
        f"image_grounding.data.image_root={data}",
        "image_grounding.workflow.retries.backoff_base=0.01",
        *extra,
    ])


def test_image_grounding_through_gemini_matches_the_ground_truth(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 6, seed=31, image_format="mixed")
    summary = generate(gemini_grounding(
        tmp_path / "out", data.root, sim,
        "image_grounding.vlm.gemini.media_resolution=MEDIA_RESOLUTION_HIGH"))
    assert summary.complete
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    assert match_ground_truth(records, data.records, threshold=0.9).recall == 1.0
    requests = asked(sim)
    assert {r.protocol for r in requests} == {"gemini"}
    assert {r.media_resolution for r in requests} == {"MEDIA_RESOLUTION_HIGH"}
    assert all(r.key_ok for r in requests)
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert SIM_KEY.encode() not in path.read_bytes(), path


def test_gemini_tokens_including_thinking_reach_the_ledger(tmp_path, sim):
    from auto_label.ledger import Ledger

    data = write_grounding_dataset(tmp_path / "data", 1, seed=32)
    generate(gemini_grounding(tmp_path / "out", data.root, sim))
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        usages = [e.usage for _, e in ledger.events(["response_received"])]
    assert usages and all(u.prompt_tokens and u.completion_tokens and u.thinking_tokens
                          for u in usages)


def test_a_blocked_answer_is_a_failed_step_with_the_raw_response(tmp_path, sim):
    from auto_label.ledger import Ledger

    data = write_grounding_dataset(tmp_path / "data", 1, seed=33)
    sim.script(["blocked"], task="grounding.extract")
    summary = generate(gemini_grounding(tmp_path / "out", data.root, sim))
    assert summary.failures == {"blocked": 1}
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        (failed,) = [e for _, e in ledger.events(["step_failed"])]
    assert "SAFETY" in failed.message and "SAFETY" in failed.raw_text


def test_the_gemini_default_convention_is_box_2d_order_downscaled(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 2, seed=34, sizes=[(2400, 1600)])
    generate(gemini_grounding(tmp_path / "out", data.root, sim,
                              "image_grounding.vlm.gemini.max_image_side=800"))
    assert {r.image_size for r in asked(sim)} == {(800, 533)}
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    assert match_ground_truth(records, data.records, threshold=0.9).recall == 1.0


def test_a_missing_key_is_one_line_naming_both_ways_before_any_work(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"results_dir: {tmp_path / 'out'}\nautolabel_type: image_grounding\n"
                    f"image_grounding:\n  data:\n    input_jsonl: {tmp_path / 'in.jsonl'}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
    done = subprocess.run([sys.executable, "-m", "auto_label", "generate", "-e", str(spec)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: no Gemini API key: set vlm.gemini.api_key in the spec "
                                   "or the GOOGLE_API_KEY (or GEMINI_API_KEY) environment "
                                   "variable")
    assert not (tmp_path / "out").exists()


# -- raw Gemini outputs through the grounding parser -------------------------------------------

CTX = StepInput(image_id="img", caption="a red car and a dog", extra={},
                upstream={"0": ExtractionOutput(cleaned_caption="a red car and a dog", expressions=[
                    ExtractedExpression(text="a red car", char_span=[0, 9], noun_chunk="car"),
                    ExtractedExpression(text="a dog", char_span=[14, 19], noun_chunk="dog")])},
                convention="yxyx_1000", sent_size=(1000, 500), original_size=(2000, 1000))


@pytest.mark.parametrize(("raw", "car", "dog"), [
    pytest.param('{"a red car": {"bboxes": [[100, 200, 500, 400]], "scores": [0.9]}, '
                 '"a dog": {"bboxes": [], "scores": []}}',
                 [[400, 100, 800, 500]], [], id="plain"),
    pytest.param('```json\n{"a red car": {"bboxes": [[100, 200, 500, 400]], "scores": [0.9]}}\n```',
                 [[400, 100, 800, 500]], [], id="fenced"),
    pytest.param('Sure! Here are the boxes:\n{"a red car": {"bboxes": [[100, 200, 500, 400]], '
                 '"scores": [0.9]}}\nLet me know if you need more.',
                 [[400, 100, 800, 500]], [], id="prose-around"),
    pytest.param('[{"label": "a red car", "box_2d": [100, 200, 500, 400]}, '
                 '{"label": "a dog", "box_2d": [600, 700, 900, 950]}]',
                 [[400, 100, 800, 500]], [[1400, 600, 1900, 900]], id="box_2d-list"),
    pytest.param('{"a red car": {"bboxes": [[500, 400, 100, 200]], "scores": [0.9]}}',
                 [[400, 100, 800, 500]], [], id="swapped-corners"),
    pytest.param('{"a red car": {"bboxes": [[-20, 200, 1040, 400]], "scores": [0.9]}}',
                 [[400, 0, 800, 1000]], [], id="out-of-range-clipped"),
    pytest.param('{"a red car": {"bboxes": [[1200, 200, 1500, 400]], "scores": [0.9]}}',
                 [], [], id="entirely-outside-dropped"),
    pytest.param('{"a red car": {"bboxes": [[100, 200, 500, 400]], "scores": [0.9]}, '
                 '"a dog": {"bboxes": [[600, 700, 9',
                 [[400, 100, 800, 500]], [], id="truncated"),
])
def test_raw_gemini_grounding_outputs(raw, car, dog):
    output = STEP_GROUND.parse(raw, CTX)
    boxes = {g.text: [i.bbox for i in g.instances] for g in output.groundings}
    assert boxes == {"a red car": car, "a dog": dog}


@pytest.mark.parametrize("raw", ["", "I cannot help with that.", "```json\n```", "{\"a red"])
def test_junk_gemini_outputs_do_not_parse(raw):
    with pytest.raises(ParseError):
        STEP_GROUND.parse(raw, CTX)


@pytest.mark.parametrize(("code", "message", "kind"), [
    (400, "API key not valid. Please pass a valid API key.", "auth_failed"),
    (403, "Permission denied", "auth_failed"),
    (400, "Request contains an invalid argument.", "request_rejected"),
    (429, "Resource has been exhausted", "rate_limited"),
    (503, "The model is overloaded", "server_error"),
    (404, "models/gemini-nope is not found for API version v1beta", "endpoint_misconfigured"),
])
def test_google_api_errors_map_to_our_kinds(code, message, kind):
    from google.genai import errors

    from auto_label.backends.gemini_backend import _api_error

    error = errors.APIError(code, {"error": {"code": code, "message": message,
                                             "status": "X"}})
    assert _api_error(error, "https://g", "gemini-nope").kind == kind


RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "19s"}


@pytest.mark.parametrize(("quota_id", "kind", "wait"), [
    ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "rate_limited", 19.0),
    ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "quota_exhausted", None),
])
def test_a_429_waits_as_its_body_says_and_a_daily_quota_stops(quota_id, kind, wait):
    from google.genai import errors

    from auto_label.backends.gemini_backend import _api_error

    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
                      "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                                   "violations": [{"quotaId": quota_id}]}, RETRY_INFO]}}
    error = _api_error(errors.APIError(429, body), "https://g", "gemini-x")
    assert error.kind == kind
    assert error.retry_after == wait
    if kind == "quota_exhausted":
        assert error.stops_run and "it resets in 19 s" in str(error)
