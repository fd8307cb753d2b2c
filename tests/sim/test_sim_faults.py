"""Reproducible faults, rate limits, latency, counters and shutdown of the simulator."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from simtest_helpers import chat_body, get_json, png_bytes, post

from auto_label.sim import SimConfig, Simulator, make_scene

CAPTION = "Write a caption of this whole image."
GROUND = 'Referring expressions (JSON array): ["the red circles"]\n'


def images(n: int) -> list[bytes]:
    return [png_bytes(make_scene(21, i, size=(320, 240)).image) for i in range(n)]


def workload(config: SimConfig, imgs: list[bytes]) -> list[tuple[int, str]]:
    """Three rounds over every (image, task): the statuses and outcomes met."""
    with Simulator(config) as sim:
        for _ in range(3):
            for image in imgs:
                for prompt in (CAPTION, GROUND):
                    post(sim.openai_base_url, "/chat/completions", chat_body(prompt, image))
        return [(r.status, r.outcome) for r in sim.requests()]


def test_faults_replay_with_the_seed_and_change_with_another():
    imgs = images(4)
    rates = {"rate_limit": 0.2, "server_error": 0.2, "malformed": 0.2, "truncated": 0.1}
    first = workload(SimConfig(seed=1, faults=rates), imgs)
    assert workload(SimConfig(seed=1, faults=rates), imgs) == first
    other = workload(SimConfig(seed=2, faults=rates), imgs)
    assert other != first
    outcomes = {o for _, o in first + other}
    assert {"ok", "rate_limit", "server_error", "malformed"} <= outcomes
    assert all(s == 429 for s, o in first if o == "rate_limit")
    assert all(s == 500 for s, o in first if o == "server_error")


def test_a_retry_draws_anew_and_reset_replays():
    image = images(1)[0]
    with Simulator(SimConfig(seed=5, faults={"server_error": 0.5})) as sim:
        statuses = [post(sim.openai_base_url, "/chat/completions",
                         chat_body(CAPTION, image))[0] for _ in range(12)]
        assert 200 in statuses and 500 in statuses
        assert [r.n for r in sim.requests()] == list(range(12))
        sim.reset_counts()
        again = [post(sim.openai_base_url, "/chat/completions",
                      chat_body(CAPTION, image))[0] for _ in range(12)]
        assert again == statuses


def test_rate_limit_fault_carries_retry_after():
    image = images(1)[0]
    with Simulator(SimConfig(faults={"rate_limit": 1.0}, retry_after=2.5)) as sim:
        status, headers, body = post(sim.openai_base_url, "/chat/completions",
                                     chat_body(CAPTION, image))
        assert status == 429 and headers["retry-after"] == "3"
        assert json.loads(body)["error"]["type"] == "requests"
        status, headers, body = post(sim.gemini_base_url, "/v1beta/models/g:generateContent",
                                     {"contents": [{"parts": [{"text": CAPTION}]}]})
        assert status == 429 and headers["retry-after"] == "3"
        assert json.loads(body)["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_script_forces_outcomes_per_task():
    image = images(1)[0]
    with Simulator() as sim:
        sim.script(["server_error"], task="grounding.ground")
        sim.script(["rate_limit", "ok"])
        url = sim.openai_base_url
        assert post(url, "/chat/completions", chat_body(CAPTION, image))[0] == 429
        assert post(url, "/chat/completions", chat_body(GROUND, image))[0] == 500
        assert post(url, "/chat/completions", chat_body(GROUND, image))[0] == 200
        assert post(url, "/chat/completions", chat_body(CAPTION, image))[0] == 200
        with pytest.raises(ValueError):
            sim.script(["explode"])


def test_rpm_limit_over_a_sliding_window():
    image = images(1)[0]
    with Simulator(SimConfig(rpm=2)) as sim:
        url = sim.openai_base_url
        codes = [post(url, "/chat/completions", chat_body(CAPTION, image)) for _ in range(3)]
        assert [c[0] for c in codes] == [200, 200, 429]
        assert 58 <= int(codes[2][1]["retry-after"]) <= 60
        assert sim.requests()[2].outcome == "rpm_limited"
    with Simulator(SimConfig(rpm=1, rpm_window=0.3)) as sim:
        url = sim.openai_base_url
        assert post(url, "/chat/completions", chat_body(CAPTION, image))[0] == 200
        status, headers, _ = post(url, "/chat/completions", chat_body(CAPTION, image))
        assert status == 429 and 0 < float(headers["retry-after"]) <= 0.3
        time.sleep(0.35)
        assert post(url, "/chat/completions", chat_body(CAPTION, image))[0] == 200


def test_latency_is_applied():
    image = images(1)[0]
    with Simulator(SimConfig(latency_mean=0.2, latency_jitter=0.05)) as sim:
        start = time.perf_counter()
        post(sim.openai_base_url, "/chat/completions", chat_body(CAPTION, image))
        took = time.perf_counter() - start
        assert 0.15 <= took < 1.5
        assert 0.15 <= sim.requests()[0].latency <= 0.25


def test_hang_exceeds_the_client_timeout_and_stop_is_prompt():
    image = images(1)[0]
    sim = Simulator(SimConfig(faults={"hang": 1.0}, hang_seconds=30)).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            post(sim.openai_base_url, "/chat/completions", chat_body(CAPTION, image), timeout=20)
        except BaseException as exc:
            errors.append(exc)

    with pytest.raises(socket.timeout):
        post(sim.openai_base_url, "/chat/completions", chat_body(CAPTION, image), timeout=0.3)
    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 5
    while len(sim.requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.perf_counter()
    sim.stop()
    assert time.perf_counter() - start < 1.5
    worker.join(5)
    assert not worker.is_alive() and errors  # the hung call was cut off, not answered
    assert [r.status for r in sim.requests()] == [0, 0]


def test_counts_requests_and_stats_endpoint():
    imgs = images(2)
    with Simulator() as sim:
        url = sim.openai_base_url
        for image in imgs:
            post(url, "/chat/completions", chat_body(CAPTION, image))
        post(url, "/chat/completions", chat_body(GROUND, imgs[0]))
        post(url, "/chat/completions", chat_body(GROUND, imgs[0]))
        counts = sim.counts()
        assert sorted(counts.values()) == [1, 1, 2]
        assert {task for _, task in counts} == {"referring.caption", "grounding.ground"}
        stats = get_json(sim.base_url, "/_sim/stats")
        assert stats["total"] == 4 and stats["outcomes"] == {"ok": 4}
        assert sorted(c["count"] for c in stats["counts"]) == [1, 1, 2]
        assert stats["requests"][0]["image_size"] == [320, 240]
        status, _, _ = post(sim.base_url, "/_sim/script", {"outcomes": ["server_error"]})
        assert status == 200
        assert post(url, "/chat/completions", chat_body(CAPTION, imgs[0]))[0] == 500
        assert post(sim.base_url, "/_sim/reset", {})[0] == 200
        assert sim.counts() == {} and sim.requests() == []


def test_bad_requests_get_protocol_shaped_errors():
    with Simulator() as sim:
        status, _, body = post(sim.openai_base_url, "/chat/completions", b"{not json")
        assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
        bad_url = {"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}}]}]}
        assert post(sim.openai_base_url, "/chat/completions", bad_url)[0] == 400
        not_image = {"contents": [{"parts": [
            {"inlineData": {"mimeType": "image/png", "data": "aGVsbG8="}}, {"text": "x"}]}]}
        status, _, body = post(sim.gemini_base_url, "/v1beta/models/g:generateContent",
                               not_image)
        assert status == 400 and json.loads(body)["error"]["status"] == "INVALID_ARGUMENT"
        status, _, body = post(sim.base_url, "/v2/whatever", {})
        assert status == 404 and json.loads(body) == {"detail": "Not Found"}  # vLLM's FastAPI
        assert [r.outcome for r in sim.requests()] == [
            "bad_request", "bad_request", "bad_request", "not_found"]


def test_config_is_validated_and_loopback_only():
    with pytest.raises(ValueError):
        SimConfig(faults={"meteor": 0.1})
    with pytest.raises(ValueError):
        SimConfig(faults={"hang": 0.7, "server_error": 0.7})
    with pytest.raises(ValueError):
        SimConfig(convention_openai="cxcywh")
    with pytest.raises(ValueError):
        Simulator(host="0.0.0.0")


def test_malformed_answers_never_parse_and_fences_wrap_json():
    image = images(1)[0]
    with Simulator(SimConfig(fences=1.0)) as sim:
        sim.script(["malformed"] * 6, task="grounding.ground")
        for _ in range(6):
            _, _, body = post(sim.openai_base_url, "/chat/completions", chat_body(GROUND, image))
            text = json.loads(body)["choices"][0]["message"]["content"]
            bare = text.strip().removeprefix("```json").removesuffix("```")
            with pytest.raises(json.JSONDecodeError):
                json.loads(bare)
        _, _, body = post(sim.openai_base_url, "/chat/completions", chat_body(GROUND, image))
        text = json.loads(body)["choices"][0]["message"]["content"]
        assert text.startswith("```json\n") and text.endswith("\n```")
        assert "the red circles" in json.loads(text[8:-4])


def test_cli_rejects_a_bad_config(capsys):
    from auto_label.sim.__main__ import main

    assert main(["serve", "--fault", "hang=0.8", "--fault", "server_error=0.8"]) == 2
    assert "more than 1" in capsys.readouterr().err


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"messages": [1]}),
    ("/v1/chat/completions", {"messages": [{"content": [{"type": "image_url",
                                                          "image_url": {"url": 5}}]}]}),
    ("/v1/chat/completions", {"messages": [{"content": [7, {"type": "text"}]}],
                              "max_tokens": "many"}),
    ("/v1/chat/completions", [1, 2]),
    ("/v1beta/models/g:generateContent", {"contents": [{"parts": "x"}, 3]}),
    ("/v1beta/models/g:generateContent", {"contents": [{"parts": [
        {"inlineData": {"data": "!!!"}}]}]}),
    ("/v1beta/models/g:generateContent", {"contents": [], "generationConfig": [1]}),
    ("/v1/models/g:generateContent", {"contents": [{"parts": [{"text": "hi"}]}],
                                      "generationConfig": {"maxOutputTokens": "x"}}),
])
def test_odd_bodies_never_crash_the_simulator(path, body):
    with Simulator() as sim:
        status, _, raw = post(sim.base_url, path, body)
        assert status == 200 or (status == 400 and "error" in json.loads(raw))
        assert all(r.outcome != "sim_error" for r in sim.requests())
