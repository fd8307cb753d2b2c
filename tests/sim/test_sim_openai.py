"""The simulator through the REAL openai SDK."""

from __future__ import annotations

import io
import json

import openai
import pytest
from openai import OpenAI
from PIL import Image
from simtest_helpers import kinds, openai_messages, png_bytes

from auto_label.sim import SimConfig, Simulator, make_scene


@pytest.fixture
def client(sim):
    with OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0,
                timeout=10) as c:
        yield c


def ask(client, prompt, image, mime="image/png", **kw):
    return client.chat.completions.create(
        model="sim-gpt", messages=openai_messages(prompt, image, mime), temperature=0, **kw)


def test_grounding_on_a_downscaled_jpeg(sim, client, prompts):
    scene = make_scene(3, 0, size=(2400, 1600))
    small = scene.image.resize((512, 341), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=90)
    image = buf.getvalue()
    extract = ask(client, prompts.extract_expressions(scene.caption), image, "image/jpeg")
    assert extract.object == "chat.completion" and extract.choices[0].finish_reason == "stop"
    parsed = json.loads(extract.choices[0].message.content)
    exprs = [e["text"] for e in parsed["expressions"]]
    truth = kinds(scene.objects)
    assert len(exprs) == len(truth)
    ground = ask(client, prompts.ground_expressions(exprs, "xyxy_pixel", 512, 341), image,
                 "image/jpeg", max_tokens=2000)
    boxes = json.loads(ground.choices[0].message.content)
    sx, sy = 2400 / 512, 1600 / 341
    for expr in exprs:
        kind = next(k for k in truth if k[0] in expr.lower() and k[1] in expr.lower())
        got = sorted([round(b[0] * sx), round(b[1] * sy), round(b[2] * sx), round(b[3] * sy)]
                     for b in boxes[expr]["bboxes"])
        want = sorted(truth[kind])
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert max(abs(a - b) for a, b in zip(g, w, strict=True)) <= 3 * sx
    assert ground.usage.total_tokens == ground.usage.prompt_tokens + ground.usage.completion_tokens
    rec = sim.requests()[-1]
    assert rec.protocol == "openai" and rec.task == "grounding.ground"
    assert rec.image_size == (512, 341) and rec.model == "sim-gpt" and rec.status == 200


def test_referring_chain_in_a_normalised_convention(prompts):
    scene = make_scene(4, 2, size=(800, 600))
    image = png_bytes(scene.image)
    w, h = scene.width, scene.height
    with Simulator(SimConfig(convention_openai="xyxy_1000")) as sim, \
            OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0) as client:
        boxes = [[round(o.bbox[0] * 1000 / w), round(o.bbox[1] * 1000 / h),
                  round(o.bbox[2] * 1000 / w), round(o.bbox[3] * 1000 / h)]
                 for o in scene.objects]
        regions = json.loads(ask(client, prompts.describe_regions(boxes, "xyxy_1000", w, h),
                                 image).choices[0].message.content)
        assert [(r["color"], r["type"]) for r in regions] == [
            (o.color, o.shape) for o in scene.objects]
        caption = ask(client, prompts.caption_image(), image).choices[0].message.content
        assert all(o.color in caption for o in scene.objects)
        grouped = ask(client, prompts.group_expressions(regions, caption, "xyxy_1000", w, h),
                      image).choices[0].message.content
        lines = [line.split(": ", 1) for line in grouped.splitlines()]
        assert lines and all(json.loads(b) for _, b in lines)
        verified = ask(client, prompts.verify_expressions(
            [(p, json.loads(b)) for p, b in lines], "xyxy_1000", w, h), image)
        assert verified.choices[0].message.content == grouped
        assert [r.task for r in sim.requests()] == [
            "referring.region", "referring.caption", "referring.group", "referring.verify"]


def test_string_content_and_any_part_order(sim, client, scene):
    text = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Hello there"}])
    assert isinstance(text.choices[0].message.content, str)
    reversed_parts = [{"role": "user", "content": list(reversed(
        openai_messages("Write a caption of this whole image.", png_bytes(scene.image))[0]
        ["content"]))}]
    out = client.chat.completions.create(model="m", messages=reversed_parts,
                                         max_completion_tokens=500)
    assert scene.objects[0].color in out.choices[0].message.content
    assert [r.task for r in sim.requests()] == ["unknown", "referring.caption"]
    assert sim.requests()[0].image_sha256 is None


def test_faults_in_openai_shape(sim, client, scene):
    image = png_bytes(scene.image)
    prompt = "Write a caption of this whole image."
    sim.script(["rate_limit", "server_error", "blocked", "truncated", "bad_body", "malformed"])
    with pytest.raises(openai.RateLimitError) as limited:
        ask(client, prompt, image)
    assert limited.value.response.headers["retry-after"] == "1"
    assert limited.value.body["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError):
        ask(client, prompt, image)
    blocked = ask(client, prompt, image)
    assert blocked.choices[0].finish_reason == "content_filter"
    assert blocked.choices[0].message.content is None
    full = ask(client, prompt, image).choices[0]  # "truncated" is consumed here
    assert full.finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        ask(client, prompt, image)
    junk = ask(client, prompt, image).choices[0]
    assert junk.finish_reason == "stop" and "caption" not in junk.message.content.lower()
    whole = ask(client, prompt, image).choices[0].message.content
    assert whole.startswith(full.message.content) and len(full.message.content) < len(whole)
    short = ask(client, prompt, image, max_tokens=5).choices[0]
    assert short.finish_reason == "length" and len(short.message.content) <= 20
    assert [r.outcome for r in sim.requests()][:6] == [
        "rate_limit", "server_error", "blocked", "truncated", "bad_body", "malformed"]


def test_api_key_is_enforced(scene):
    image = png_bytes(scene.image)
    with Simulator(SimConfig(api_key="right")) as sim:
        with OpenAI(base_url=sim.openai_base_url, api_key="wrong", max_retries=0) as bad, \
                pytest.raises(openai.AuthenticationError) as denied:
            ask(bad, "Write a caption of this whole image.", image)
        assert denied.value.body["code"] == "invalid_api_key"
        with OpenAI(base_url=sim.openai_base_url, api_key="right", max_retries=0) as good:
            assert ask(good, "Write a caption of this whole image.", image).choices
        assert [(r.key_ok, r.status) for r in sim.requests()] == [(False, 401), (True, 200)]
