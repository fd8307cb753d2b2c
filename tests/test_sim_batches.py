"""The simulator's batch APIs through the REAL openai and google-genai SDKs: OpenAI's Files +
Batch API, Gemini's Files API + Batch Mode (inline and file input). Every request of a job is
answered as the same request online; jobs end after `batch_delay`, expire, fail per request, are
cancelled, listed and found again by their metadata / display name; the simulator counts them."""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from auto_label.pipelines.grounding import prompts
from auto_label.sim import Scene, SimConfig, Simulator, make_scene
from auto_label.sim.__main__ import _config, _parser

KEY = "sk-sim-batch-key"
ENDED_OPENAI = ("completed", "failed", "expired", "cancelled")


# --- requests: one scene each, so that an answer given to the wrong key shows -----------------


def scene(i: int) -> Scene:
    return make_scene(5, i, size=(320, 240))


def png(s: Scene) -> bytes:
    buf = io.BytesIO()
    s.image.save(buf, "PNG")
    return buf.getvalue()


def expressions(s: Scene) -> list[str]:
    return sorted({f"the {o.color} {o.shape}s" for o in s.objects})


def chat_body(i: int) -> dict[str, Any]:
    s = scene(i)
    url = "data:image/png;base64," + base64.b64encode(png(s)).decode()
    text = prompts.ground_expressions(expressions(s), "xyxy_pixel", s.width, s.height)
    return {"model": "sim-vlm", "messages": [{"role": "user", "content": [
        {"type": "text", "text": str(text)}, {"type": "image_url", "image_url": {"url": url}}]}]}


def openai_file(bodies: dict[str, dict[str, Any]]) -> bytes:
    return "".join(json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions",
                               "body": body}) + "\n" for key, body in bodies.items()).encode()


def gemini_contents(i: int) -> list[dict[str, Any]]:
    s = scene(i)
    text = prompts.ground_expressions(expressions(s), "yxyx_1000", s.width, s.height)
    return [{"role": "user", "parts": [
        {"inline_data": {"data": png(s), "mime_type": "image/png"}}, {"text": str(text)}]}]


def gemini_rest_request(i: int) -> dict[str, Any]:
    """The same request as GenerateContentRequest JSON (a line of an input file)."""
    s = scene(i)
    text = prompts.ground_expressions(expressions(s), "yxyx_1000", s.width, s.height)
    return {"contents": [{"role": "user", "parts": [
        {"inlineData": {"data": base64.b64encode(png(s)).decode(), "mimeType": "image/png"}},
        {"text": str(text)}]}], "generationConfig": {"temperature": 0.0}}


def assert_grounds(text: str, i: int, *, pixels: bool) -> None:
    """A parseable grounding answer: each expression of scene i with one box per object of that
    colour and shape, in pixels (OpenAI protocol) or in 0-1000 (Gemini)."""
    s = scene(i)
    answer = json.loads(text)
    assert set(answer) == set(expressions(s))
    for o in s.objects:
        boxes = answer[f"the {o.color} {o.shape}s"]["bboxes"]
        if pixels:
            assert any(max(abs(a - b) for a, b in zip(box, o.bbox, strict=True)) <= 2
                       for box in boxes)
        same = sum(1 for p in s.objects if (p.color, p.shape) == (o.color, o.shape))
        assert len(boxes) == same


# --- clients and polling ------------------------------------------------------------------------


def oclient(sim: Simulator, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_base_url, api_key=key, max_retries=0)


def gclient(sim: Simulator, key: str = KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=sim.gemini_base_url))


def poll(read: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    """Read until done (a safety net of 30 s, not a time limit under test)."""
    deadline = time.monotonic() + 30
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def lines_of(data: bytes | str) -> list[dict[str, Any]]:
    text = data.decode() if isinstance(data, bytes) else data
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def start(**config: Any) -> Simulator:
    config.setdefault("api_key", KEY)
    return Simulator(SimConfig(**config)).start()


@pytest.fixture
def sims():
    started: list[Simulator] = []

    def make(**config: Any) -> Simulator:
        started.append(start(**config))
        return started[-1]

    yield make
    for sim in started:
        sim.stop()


def openai_batch(client: openai.OpenAI, bodies: dict[str, dict[str, Any]],
                 metadata: dict[str, str] | None = None) -> Any:
    uploaded = client.files.create(file=("requests.jsonl", openai_file(bodies)), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                 completion_window="24h", metadata=metadata)


def openai_wait(client: openai.OpenAI, batch_id: str) -> Any:
    return poll(lambda: client.batches.retrieve(batch_id), lambda b: b.status in ENDED_OPENAI)


def gemini_wait(client: genai.Client, name: str) -> Any:
    return poll(lambda: client.batches.get(name=name), lambda j: j.done)


# --- OpenAI -------------------------------------------------------------------------------------


def test_openai_batch_answers_every_custom_id_as_online(sims):
    sim = sims(batch_delay=0.2)
    bodies = {f"img-{i}": chat_body(i) for i in range(3)}
    with oclient(sim) as client:
        online = {key: client.chat.completions.create(**body).choices[0].message.content
                  for key, body in bodies.items()}
        created = openai_batch(client, bodies, {"content_key": "ck-openai-1"})
        assert created.status == "validating" and created.metadata == {"content_key":
                                                                       "ck-openai-1"}
        batch = openai_wait(client, created.id)
        assert batch.status == "completed" and batch.error_file_id is None
        assert batch.metadata == {"content_key": "ck-openai-1"}
        assert (batch.request_counts.total, batch.request_counts.completed,
                batch.request_counts.failed) == (3, 3, 0)
        assert batch.completed_at is not None and batch.input_file_id
        out = lines_of(client.files.content(batch.output_file_id).text)
    assert sorted(line["custom_id"] for line in out) == sorted(bodies)
    for line in out:
        assert line["error"] is None and line["id"].startswith("batch_req_")
        response = line["response"]
        assert response["status_code"] == 200 and response["request_id"]
        text = response["body"]["choices"][0]["message"]["content"]
        assert text == online[line["custom_id"]]
        assert_grounds(text, int(line["custom_id"].removeprefix("img-")), pixels=True)
    prompt_tokens = sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in out)
    assert batch.usage.input_tokens == prompt_tokens > 0
    assert sim.batch_job_counts() == {"openai": 1, "gemini": 0}
    (info,) = sim.batch_jobs()
    assert (info.provider, info.name, info.requests, info.state) == ("openai", batch.id, 3,
                                                                     "completed")
    assert set(info.keys) == set(bodies) and info.metadata == {"content_key": "ck-openai-1"}
    assert sum(sim.batch_counts().values()) == 3 and len(sim.batch_requests()) == 3


def test_openai_expired_batch_keeps_its_partial_results(sims):
    sim = sims()
    sim.script_batches(jobs=["expired"], provider="openai")
    bodies = {f"img-{i}": chat_body(i) for i in range(4)}
    with oclient(sim) as client:
        batch = openai_wait(client, openai_batch(client, bodies).id)
        assert batch.status == "expired" and batch.expired_at is not None
        assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 2)
        done = lines_of(client.files.content(batch.output_file_id).text)
        left = lines_of(client.files.content(batch.error_file_id).text)
    assert {line["custom_id"] for line in done} | {line["custom_id"] for line in left} == set(
        bodies)
    assert all(line["response"]["status_code"] == 200 for line in done)
    assert all(line["response"] is None and line["error"]["code"] == "batch_expired"
               for line in left)


def test_openai_errors_inside_a_batch_go_to_the_error_file(sims):
    sim = sims()
    sim.script_batches(lines=["error", "ok", "error"])
    bodies = {f"img-{i}": chat_body(i) for i in range(3)}
    with oclient(sim) as client:
        batch = openai_wait(client, openai_batch(client, bodies).id)
        assert batch.status == "completed"
        assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 2)
        good = lines_of(client.files.content(batch.output_file_id).text)
        bad = lines_of(client.files.content(batch.error_file_id).text)
    assert [line["custom_id"] for line in good] == ["img-1"]
    assert sorted(line["custom_id"] for line in bad) == ["img-0", "img-2"]
    for line in bad:
        assert line["response"]["status_code"] == 500
        assert line["response"]["body"]["error"]["type"] == "server_error"
    assert sum(sim.batch_counts().values()) == 1  # failed requests were never answered


def test_openai_cancel_list_and_find_by_metadata_from_a_new_client(sims):
    sim = sims(batch_delay=600)
    bodies = {"img-0": chat_body(0), "img-1": chat_body(1)}
    with oclient(sim) as client:
        first = openai_batch(client, bodies, {"content_key": "ck-a"})
        second = openai_batch(client, bodies, {"content_key": "ck-b"})
        cancelling = client.batches.cancel(first.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    with oclient(sim) as client:  # a client that knows only the content key
        listed = list(client.batches.list(limit=1))  # one per page: pages follow `after`
        assert [b.id for b in listed] == [second.id, first.id]
        found = [b for b in listed if (b.metadata or {}).get("content_key") == "ck-a"]
        assert [b.id for b in found] == [first.id]
        cancelled = client.batches.retrieve(first.id)
        assert cancelled.status == "cancelled" and cancelled.output_file_id is None
        errors = lines_of(client.files.content(cancelled.error_file_id).text)
        assert sorted(e["custom_id"] for e in errors) == sorted(bodies)
        assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
        with pytest.raises(openai.BadRequestError):
            client.batches.cancel(first.id)
        assert client.batches.retrieve(second.id).status in ("validating", "in_progress")
    assert sim.batch_job_counts()["openai"] == 2
    assert sum(sim.batch_counts().values()) == 0


def test_openai_bad_input_fails_validation_and_a_bad_key_is_refused(sims):
    sim = sims()
    line = json.dumps({"custom_id": "same", "method": "POST", "url": "/v1/chat/completions",
                       "body": chat_body(0)})
    with oclient(sim) as client:
        uploaded = client.files.create(file=("dup.jsonl", f"{line}\n{line}\n".encode()),
                                       purpose="batch")
        created = client.batches.create(input_file_id=uploaded.id, completion_window="24h",
                                        endpoint="/v1/chat/completions")
        batch = openai_wait(client, created.id)
        assert batch.status == "failed" and batch.failed_at is not None
        assert [(e.code, e.line) for e in batch.errors.data] == [("duplicate_custom_id", 2)]
        with pytest.raises(openai.NotFoundError):
            client.batches.create(input_file_id="file-nope", completion_window="24h",
                                  endpoint="/v1/chat/completions")
    with oclient(sim, key="wrong") as client, pytest.raises(openai.AuthenticationError):
        client.batches.list()
    assert sum(sim.batch_counts().values()) == 0


# --- Gemini -------------------------------------------------------------------------------------


def test_gemini_inline_batch_answers_in_order_as_online(sims):
    sim = sims(batch_delay=0.2)
    config = {"temperature": 0.0}
    with gclient(sim) as client:
        online = [client.models.generate_content(model="gemini-sim", contents=gemini_contents(i),
                                                 config=config).text for i in range(3)]
        created = client.batches.create(model="gemini-sim", src=[
            {"contents": gemini_contents(i), "config": config, "metadata": {"key": f"img-{i}"}}
            for i in range(3)], config={"display_name": "ck-gemini-1"})
        assert created.state == types.JobState.JOB_STATE_PENDING and not created.done
        job = gemini_wait(client, created.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED and job.display_name == "ck-gemini-1"
    assert job.name == created.name and job.model == "models/gemini-sim" and job.end_time
    answers = job.dest.inlined_responses
    assert [a.metadata for a in answers] == [{"key": f"img-{i}"} for i in range(3)]
    for i, answer in enumerate(answers):
        assert answer.error is None and answer.response.text == online[i]
        assert answer.response.usage_metadata.prompt_token_count > 0
        assert_grounds(answer.response.text, i, pixels=False)
    assert sim.batch_job_counts() == {"openai": 0, "gemini": 1}
    (info,) = sim.batch_jobs("gemini")
    assert (info.display_name, info.requests, info.source) == ("ck-gemini-1", 3, "inline")


def test_gemini_file_batch_uploads_and_downloads_keyed_results(sims):
    sim = sims()
    keys = ["img-2", "img-0", "img-1"]
    requests = {key: gemini_rest_request(int(key[-1])) for key in keys}
    data = "".join(json.dumps({"key": k, "request": r}) + "\n" for k, r in requests.items())
    with gclient(sim) as client:
        online = {key: client.models.generate_content(
            model="gemini-sim", contents=gemini_contents(int(key[-1])),
            config={"temperature": 0.0}).text for key in keys}
        uploaded = client.files.upload(file=io.BytesIO(data.encode()), config={
            "mime_type": "application/jsonl", "display_name": "requests"})
        assert uploaded.name.startswith("files/") and uploaded.size_bytes == len(data.encode())
        created = client.batches.create(model="gemini-sim", src=uploaded.name,
                                        config={"display_name": "ck-gemini-file"})
        job = gemini_wait(client, created.name)
        assert job.state == types.JobState.JOB_STATE_SUCCEEDED and job.dest.file_name
        results = lines_of(client.files.download(file=job.dest.file_name))
        with pytest.raises(genai_errors.ClientError):  # uploaded files are not downloadable
            client.files.download(file=uploaded.name)
    assert [r["key"] for r in results] == keys
    for result in results:
        response = types.GenerateContentResponse.model_validate(result["response"])
        assert response.text == online[result["key"]]
        assert_grounds(response.text, int(result["key"][-1]), pixels=False)
    (info,) = sim.batch_jobs()
    assert info.source == uploaded.name and info.keys == tuple(keys)


def test_gemini_errors_inside_a_job_and_jobs_that_expire(sims):
    sim = sims(batch_errors=1.0)
    with gclient(sim) as client:
        job = gemini_wait(client, client.batches.create(
            model="gemini-sim", src=[{"contents": gemini_contents(0)}],
            config={"display_name": "errors"}).name)
        assert job.state == types.JobState.JOB_STATE_SUCCEEDED
        (answer,) = job.dest.inlined_responses
        assert answer.response is None and answer.error.code == 13 and answer.error.message
    sim = sims(batch_expire=1.0)
    with gclient(sim) as client:
        job = gemini_wait(client, client.batches.create(
            model="gemini-sim", src=[{"contents": gemini_contents(0)}],
            config={"display_name": "expires"}).name)
    assert job.state == types.JobState.JOB_STATE_EXPIRED and job.dest is None
    assert sim.batch_counts() == {}  # Gemini documents no results for an expired job


def test_gemini_cancel_list_and_find_by_display_name(sims):
    sim = sims(batch_delay=600)
    src = [{"contents": gemini_contents(0)}]
    with gclient(sim) as client:
        first = client.batches.create(model="gemini-sim", src=src, config={"display_name": "a"})
        second = client.batches.create(model="gemini-sim", src=src, config={"display_name": "b"})
        client.batches.cancel(name=first.name)
        with pytest.raises(genai_errors.ClientError):
            client.batches.cancel(name=first.name)
    with gclient(sim) as client:
        listed = list(client.batches.list(config={"page_size": 1}))
        assert [j.name for j in listed] == [second.name, first.name]
        (found,) = [j for j in listed if j.display_name == "a"]
        assert found.state == types.JobState.JOB_STATE_CANCELLED and found.dest is None
        assert client.batches.get(name=second.name).state == types.JobState.JOB_STATE_PENDING
        with pytest.raises(genai_errors.ClientError):
            client.batches.create(model="gemini-sim", src=src)  # display_name is required
    with gclient(sim, key="wrong") as client, pytest.raises(genai_errors.ClientError):
        client.batches.list()
    assert sim.batch_job_counts() == {"openai": 0, "gemini": 2}


# --- knobs and counters -------------------------------------------------------------------------


def test_errors_inside_jobs_are_drawn_anew_on_retry_and_the_same_on_a_rerun(sims):
    bodies = {f"img-{i}": chat_body(i) for i in range(8)}

    def failed(sim: Simulator) -> set[str]:
        with oclient(sim) as client:
            batch = openai_wait(client, openai_batch(client, bodies).id)
            return {line["custom_id"] for line in lines_of(
                client.files.content(batch.error_file_id).text)} if batch.error_file_id else set()

    first = sims(batch_errors=0.5, seed=11)
    once, twice = failed(first), failed(first)
    assert 0 < len(once) < len(bodies) and once != twice
    assert failed(sims(batch_errors=0.5, seed=11)) == once


def test_serve_flags_and_the_stats_route(sims):
    args = _parser().parse_args(["serve", "--batch-delay", "0.5", "--batch-expire", "0.25",
                                 "--batch-errors", "0.1"])
    config = _config(args)
    assert (config.batch_delay, config.batch_expire, config.batch_errors) == (0.5, 0.25, 0.1)
    with pytest.raises(ValueError, match="batch_errors"):
        SimConfig(batch_errors=1.5)
    with pytest.raises(ValueError, match="batch_delay"):
        SimConfig(batch_delay=-1)
    sim = sims(batch_delay=600)
    with oclient(sim) as client:
        openai_batch(client, {"img-0": chat_body(0)}, {"content_key": "ck"})
    with urllib.request.urlopen(sim.base_url + "/_sim/batches") as reply:
        stats = json.loads(reply.read())
    assert stats["jobs_per_provider"] == {"openai": 1, "gemini": 0}
    (job,) = stats["jobs"]
    assert (job["requests"], job["state"], job["metadata"]) == (1, "pending", {"content_key":
                                                                               "ck"})
