"""One conformance suite for every backend, through its real SDK against the simulator.

Each backend must turn the same protocol situations into the same `VLMResponse` / `BackendError`
values, so that the runner's retry policy and events are the same whatever the endpoint.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from support import SIM_KEY

from auto_label.backends.base import (
    AuthFailed,
    Backend,
    BadResponse,
    Blocked,
    ConnectionFailed,
    ModelFrame,
    RateLimited,
    RequestTimeout,
    ServerError,
    VLMRequest,
)
from auto_label.backends.registry import create_backend, plugins, vlm_config_model
from auto_label.boxes import CONVENTIONS
from auto_label.pipelines.grounding import prompts
from auto_label.pipelines.images.decode import IngestSettings
from auto_label.pipelines.images.prepare import prepare
from auto_label.sim import write_grounding_dataset

BACKENDS = sorted(plugins())
"""Every registered backend (from the auto_label.backends entry points) runs this suite."""

SIM_BLOCKS = {
    # How each backend reaches the simulator: a new backend adds its line here.
    "openai": lambda sim: {"base_url": sim.openai_base_url if sim else "http://127.0.0.1:9/v1",
                           "api_key": SIM_KEY, "model_name": "sim-vlm", "timeout": 2},
    "gemini": lambda sim: {"base_url": sim.gemini_base_url if sim else "http://127.0.0.1:9",
                           "api_key": SIM_KEY, "model": "gemini-sim", "timeout": 2,
                           "media_resolution": "MEDIA_RESOLUTION_HIGH"},
}


def test_every_registered_backend_can_be_pointed_at_the_simulator():
    assert BACKENDS and set(BACKENDS) <= set(SIM_BLOCKS), "add the backend to SIM_BLOCKS"


def make_backend(name: str, sim, **settings):
    block = SIM_BLOCKS[name](sim)
    if "base_url" in settings and name == "gemini":
        settings["base_url"] = settings["base_url"].removesuffix("/v1")
    block.update(settings)
    return create_backend(vlm_config_model().model_validate({"backend": name, name: block}))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    data = write_grounding_dataset(tmp_path_factory.mktemp("scene"), 1, seed=3)
    row = data.records[0]
    image = prepare((data.root / row["image_path"]).read_bytes(), name="scene", sha256="x",
                    settings=IngestSettings(), frame=ModelFrame("xyxy_pixel")).prepared
    return row, image


def ground_request(scene, convention: str) -> VLMRequest:
    row, image = scene
    phrase = f"{row['objects'][0]['color']} {row['objects'][0]['shape']}"
    prompt = prompts.ground_expressions([phrase], convention, *image.sent_size)
    return VLMRequest(prompt=prompt, image=image, json_output=True)


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    return request.param


def test_an_answer_comes_back_with_text_and_usage(backend_name, sim, scene):
    backend = make_backend(backend_name, sim)
    try:
        response = backend.complete(ground_request(scene, backend.frame.coordinates))
    finally:
        backend.close()
    assert '"bboxes"' in response.text
    assert response.finish_reason in {"stop", "STOP"}
    assert response.prompt_tokens and response.completion_tokens
    record = sim.requests()[-1]
    assert record.key_ok and record.protocol == backend_name
    if backend_name == "gemini":
        assert record.media_resolution == "MEDIA_RESOLUTION_HIGH"
        assert response.thinking_tokens is not None


def test_blocked_answers_keep_the_raw_response(backend_name, sim, scene):
    backend = make_backend(backend_name, sim)
    sim.script(["blocked"])
    try:
        with pytest.raises(Blocked) as raised:
            backend.complete(ground_request(scene, backend.frame.coordinates))
    finally:
        backend.close()
    assert raised.value.raw_text and ("SAFETY" in raised.value.raw_text
                                      or "content_filter" in raised.value.raw_text)


@pytest.mark.parametrize(("fault", "error", "retryable"), [
    ("rate_limit", RateLimited, True),
    ("server_error", ServerError, True),
    ("bad_body", BadResponse, True),
    ("blocked", Blocked, False),
])
def test_faults_map_to_the_same_errors(backend_name, make_sim, scene, fault, error, retryable):
    server = make_sim(retry_after=7)
    backend = make_backend(backend_name, server)
    server.script([fault])
    try:
        with pytest.raises(error) as raised:
            backend.complete(ground_request(scene, backend.frame.coordinates))
    finally:
        backend.close()
    assert raised.value.retryable is retryable
    assert "\n" not in str(raised.value)
    if fault == "rate_limit":
        assert raised.value.retry_after == 7
        assert raised.value.status_code == 429


def test_a_truncated_answer_says_so_in_its_finish_reason(backend_name, sim, scene):
    backend = make_backend(backend_name, sim)
    sim.script(["truncated"])
    try:
        response = backend.complete(ground_request(scene, backend.frame.coordinates))
    finally:
        backend.close()
    assert response.finish_reason in {"length", "MAX_TOKENS"}


def test_a_wrong_key_is_auth_failed_and_the_key_is_not_in_the_message(backend_name, sim, scene):
    backend = make_backend(backend_name, sim, api_key="sk-wrong-key-123")
    try:
        with pytest.raises(AuthFailed) as raised:
            backend.complete(ground_request(scene, backend.frame.coordinates))
    finally:
        backend.close()
    assert raised.value.status_code == 401
    assert "sk-wrong-key-123" not in str(raised.value)


def test_a_hung_request_times_out(backend_name, make_sim, scene):
    server = make_sim(hang_seconds=5)
    backend = make_backend(backend_name, server, timeout=0.5)
    server.script(["hang"])
    try:
        with pytest.raises(RequestTimeout):
            backend.complete(ground_request(scene, backend.frame.coordinates))
    finally:
        backend.close()


def test_nobody_listening_is_a_connection_error(backend_name, scene):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = make_backend(backend_name, None, base_url=f"http://127.0.0.1:{port}/v1")
    try:
        with pytest.raises(ConnectionFailed):
            backend.complete(ground_request(scene, backend.frame.coordinates))
    finally:
        backend.close()


def test_describe_names_the_model_and_parameters_but_never_the_key(backend_name, sim):
    backend = make_backend(backend_name, sim)
    described = backend.describe()
    backend.close()
    assert described["backend"] == backend_name
    assert described["model"]
    assert SIM_KEY not in repr(described)


def test_the_answer_names_the_model_version_and_response_id(backend_name, sim, scene):
    backend = make_backend(backend_name, sim)
    try:
        response = backend.complete(ground_request(scene, backend.frame.coordinates))
    finally:
        backend.close()
    assert response.model_version and response.response_id
    assert isinstance(backend, Backend)


def test_the_config_has_defaults_and_dumps_its_key_masked(backend_name):
    plugin = plugins()[backend_name]
    config = plugin.config.model_validate({"api_key": SIM_KEY})
    assert config.coordinates is None and config.DEFAULT_COORDINATES in CONVENTIONS
    dumped = config.model_dump(mode="json")
    assert dumped["api_key"] == "**********" and SIM_KEY not in repr(config)


def test_reading_the_spec_imports_no_sdk():
    code = ("import sys; from auto_label.spec_loader import load_spec; "
            "load_spec(None, ['results_dir=/tmp/x', 'autolabel_type=image_grounding', "
            "'image_grounding.data.input_jsonl=/tmp/in.jsonl']); "
            "print(sorted(m for m in sys.modules if m in ('openai', 'google.genai')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
