"""Routes, served models and quota answers of the simulator, as real endpoints give them.

Through the real openai and google-genai SDKs, no retries (sources of each shape in
sim/catalog.py and sim/quotas.py).
"""

from __future__ import annotations

import json

import openai
import pytest
from google import genai
from google.genai import errors, types
from openai import OpenAI
from simtest_helpers import chat_body, get_json, openai_messages, png_bytes, post

from auto_label.sim import FAULT_KINDS, SimConfig, Simulator, make_scene
from auto_label.sim.__main__ import _config, _parser
from auto_label.sim.faults import pick_fault
from auto_label.sim.quotas import go_duration, protobuf_duration

CAPTION = "Write a caption of this whole image."
GOOGLE = "type.googleapis.com/google.rpc."


@pytest.fixture(scope="module")
def image() -> bytes:
    return png_bytes(make_scene(5, 0, size=(320, 240)).image)


def oclient(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=10)


def gclient(sim: Simulator, api_version: str | None = None) -> genai.Client:
    return genai.Client(api_key="g-key", http_options=types.HttpOptions(
        base_url=sim.gemini_base_url, api_version=api_version))


def ask(client: OpenAI, image: bytes, model: str = "sim-gpt") -> object:
    return client.chat.completions.create(model=model, messages=openai_messages(CAPTION, image))


def generate(client: genai.Client, image: bytes, model: str = "gemini-sim") -> object:
    return client.models.generate_content(
        model=model, contents=[types.Part.from_bytes(data=image, mime_type="image/png"), CAPTION])


def gemini_error(config: SimConfig, image: bytes) -> errors.APIError:
    with Simulator(config) as sim, gclient(sim) as client:
        try:
            generate(client, image)
        except errors.ClientError as error:
            return error
    raise AssertionError("no error")


def openai_error(config: SimConfig, image: bytes) -> openai.APIStatusError:
    with Simulator(config) as sim, oclient(sim.openai_base_url) as client, \
            pytest.raises(openai.RateLimitError) as limited:
        ask(client, image)
    return limited.value


def detail(error: errors.APIError, kind: str) -> dict:
    found = [d for d in error.details["error"]["details"] if d["@type"] == GOOGLE + kind]
    assert len(found) == 1, error.details
    return found[0]


# --- routes and models ---------------------------------------------------------------------


def test_a_base_url_without_v1_meets_vllms_fastapi_404(image):
    with Simulator() as sim, oclient(sim.base_url) as client:  # no /v1: POST /chat/completions
        with pytest.raises(openai.NotFoundError) as missing:
            ask(client, image)
        assert missing.value.response.json() == {"detail": "Not Found"}
        status, _, body = post(sim.base_url, "/v1beta/models/g:countTokens", {})
        assert status == 404 and json.loads(body)["error"]["status"] == "NOT_FOUND"
        assert [r.outcome for r in sim.requests()] == ["not_found", "not_found"]
        assert [r.protocol for r in sim.requests()] == ["openai", "gemini"]


def test_models_are_listed_as_vllm_lists_them():
    with Simulator(SimConfig(served_models=("qwen-a", "qwen-b"))) as sim:
        with oclient(sim.openai_base_url) as client:
            assert [m.id for m in client.models.list()] == ["qwen-a", "qwen-b"]
        raw = get_json(sim.base_url, "/v1/models")
        assert raw["object"] == "list"
        assert {(m["object"], m["owned_by"], m["root"]) for m in raw["data"]} == {
            ("model", "vllm", "qwen-a"), ("model", "vllm", "qwen-b")}
    with Simulator() as sim:
        assert [m["id"] for m in get_json(sim.base_url, "/v1/models")["data"]] == ["sim-vlm"]


def test_the_model_list_needs_the_key():
    with Simulator(SimConfig(api_key="k", served_models=("m",))) as sim:
        with oclient(sim.openai_base_url) as bad, pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0)
        assert [m.id for m in good.models.list()] == ["m"]


def test_an_unserved_model_gets_vllms_not_found(image):
    with Simulator(SimConfig(served_models=("qwen-vl",))) as sim:
        with oclient(sim.openai_base_url) as client:
            with pytest.raises(openai.NotFoundError) as missing:
                ask(client, image, model="gpt-4o")
            assert missing.value.status_code == 404
            assert missing.value.body["message"] == "The model `gpt-4o` does not exist."
            assert missing.value.body["type"] == "NotFoundError"
            assert missing.value.body["code"] == 404
            assert ask(client, image, model="qwen-vl").choices[0].message.content
        assert [(r.outcome, r.status) for r in sim.requests()] == [
            ("unknown_model", 404), ("ok", 200)]


def test_an_unserved_gemini_model_gets_googles_not_found(image):
    with Simulator(SimConfig(served_models=("models/gemini-sim",))) as sim, \
            gclient(sim, "v1beta") as client:
        with pytest.raises(errors.ClientError) as missing:
            generate(client, image, model="gemini-1.0-pro")
        assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
        assert missing.value.message.startswith(
            "models/gemini-1.0-pro is not found for API version v1beta, or is not supported "
            "for generateContent.")
        assert generate(client, image, model="gemini-sim").text  # "models/" is Google's prefix
        status, _, body = post(sim.base_url, "/v1/models/nope:generateContent",
                               {"contents": [{"parts": [{"text": CAPTION}]}]})
        assert status == 404 and "for API version v1," in json.loads(body)["error"]["message"]


def test_any_model_is_served_when_none_are_named(image):
    with Simulator() as sim, oclient(sim.openai_base_url) as client:
        assert ask(client, image, model="whatever/model-7b").choices[0].message.content


# --- quotas --------------------------------------------------------------------------------


def test_gemini_per_minute_quota_says_the_wait_in_the_body(image):
    error = gemini_error(SimConfig(faults={"quota_minute": 1.0}, quota_retry_delay=2.5), image)
    assert error.code == 429 and error.status == "RESOURCE_EXHAUSTED"
    assert detail(error, "RetryInfo")["retryDelay"] == "2.500s"
    (violation,) = detail(error, "QuotaFailure")["violations"]
    assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    assert violation["quotaDimensions"]["model"] == "gemini-sim"
    assert "retry-after" not in error.response.headers
    assert error.message.endswith("Please retry in 2.500s.")


def test_gemini_per_day_quota_names_the_day(image):
    error = gemini_error(SimConfig(faults={"quota_day": 1.0}), image)
    assert error.code == 429 and error.status == "RESOURCE_EXHAUSTED"
    (violation,) = detail(error, "QuotaFailure")["violations"]
    assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    assert "PerMinute" not in json.dumps(error.details)
    # Real per-day answers carry a short RetryInfo too (a trap for clients that trust it).
    assert detail(error, "RetryInfo")["retryDelay"] == "3s"
    assert "retry-after" not in error.response.headers


def test_openai_per_minute_quota_says_the_wait_in_rate_limit_headers(image):
    error = openai_error(SimConfig(faults={"quota_minute": 1.0}, quota_retry_delay=360), image)
    headers = error.response.headers
    assert headers["x-ratelimit-reset-requests"] == "6m0s"
    assert headers["x-ratelimit-reset-tokens"] == "36s"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert "retry-after" not in headers and "retry-after-ms" not in headers
    assert error.body["code"] == "rate_limit_exceeded" and error.body["type"] == "requests"


def test_openai_out_of_credit_is_insufficient_quota(image):
    error = openai_error(SimConfig(faults={"quota_day": 1.0}), image)
    assert error.status_code == 429
    assert error.body["type"] == error.body["code"] == "insufficient_quota"
    assert error.body["message"].startswith("You exceeded your current quota")
    assert not any(h.startswith(("x-ratelimit", "retry-after")) for h in error.response.headers)


def test_quota_faults_are_scripted_and_drawn_reproducibly(image):
    with Simulator() as sim:
        sim.script(["quota_day", "quota_minute"])
        statuses = [post(sim.openai_base_url, "/chat/completions", chat_body(CAPTION, image))[0]
                    for _ in range(3)]
        assert statuses == [429, 429, 200]
        assert [r.outcome for r in sim.requests()] == ["quota_day", "quota_minute", "ok"]
    rates = {"quota_minute": 0.3, "quota_day": 0.2, "server_error": 0.1}
    runs = []
    for _ in range(2):
        with Simulator(SimConfig(seed=4, faults=rates)) as sim:
            for _ in range(30):
                post(sim.openai_base_url, "/chat/completions", chat_body(CAPTION, image))
            runs.append([r.outcome for r in sim.requests()])
    assert runs[0] == runs[1]
    assert {"quota_minute", "quota_day", "ok"} <= set(runs[0])


def test_the_new_kinds_leave_the_old_draws_alone():
    assert FAULT_KINDS[-2:] == ("quota_minute", "quota_day")
    old = {"rate_limit": 0.2, "server_error": 0.2, "malformed": 0.1}
    new = {**old, "quota_minute": 0.2, "quota_day": 0.1}
    for n in range(200):
        before = pick_fault(9, "abc", "grounding.ground", n, old)
        after = pick_fault(9, "abc", "grounding.ground", n, new)
        assert after == before or (before == "ok" and after in ("quota_minute", "quota_day"))


@pytest.mark.parametrize(("seconds", "proto", "go"), [
    (3.0, "3s", "3s"), (0.5, "0.500s", "500ms"), (0.012, "0.012s", "12ms"),
    (1.000001, "1.000001s", "1s"), (2.5, "2.500s", "2.5s"), (360, "360s", "6m0s"),
    (3600, "3600s", "1h0m0s"), (0, "0s", "0s"),
])
def test_durations_are_written_as_google_and_openai_write_them(seconds, proto, go):
    assert protobuf_duration(seconds) == proto
    assert go_duration(seconds) == go


# --- configuration and command line --------------------------------------------------------


def test_the_cli_flags_reach_the_config():
    args = _parser().parse_args([
        "serve", "--served-model", "a", "--served-model", "b", "--answer-style",
        "reasoning_cut", "--quota-retry-delay", "7", "--fault", "quota_day=1.0"])
    config = _config(args)
    assert config.served_models == ("a", "b") and config.answer_style == "reasoning_cut"
    assert config.quota_retry_delay == 7.0 and config.faults == {"quota_day": 1.0}
    defaults = _config(_parser().parse_args(["serve"]))
    assert (defaults.served_models, defaults.answer_style, defaults.quota_retry_delay) == (
        (), "plain", 3.0)
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--answer-style", "verbose"])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="answer style"):
        SimConfig(answer_style="verbose")
    with pytest.raises(ValueError, match="quota_retry_delay"):
        SimConfig(quota_retry_delay=-1)
    assert SimConfig(served_models=["x"]).served_models == ("x",)  # type: ignore[arg-type]


def test_googles_model_routes_answer_with_model_resources():
    with Simulator(SimConfig(served_models=("gemini-sim",))) as sim, gclient(sim) as client:
        model = client.models.get(model="gemini-sim")
        assert model.name == "models/gemini-sim"
        assert "generateContent" in (model.supported_actions or [])
        with pytest.raises(errors.ClientError) as missing:
            client.models.get(model="gemini-0.1")
        assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
        listed = get_json(sim.base_url, "/v1beta/models")
        assert [m["name"] for m in listed["models"]] == ["models/gemini-sim"]
        assert [r.outcome for r in sim.requests()] == ["ok", "unknown_model", "ok"]
