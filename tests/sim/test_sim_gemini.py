"""The simulator through the REAL google-genai SDK."""

from __future__ import annotations

import json

import pytest
from google import genai
from google.genai import errors, types
from simtest_helpers import kinds, png_bytes

from auto_label.sim import SimConfig, Simulator


def gclient(sim, key="g-key"):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=sim.gemini_base_url))


def generate(client, prompt, image, *, resolution=None, max_tokens=None, json_mode=True):
    config = types.GenerateContentConfig(
        temperature=0.0, max_output_tokens=max_tokens,
        response_mime_type="application/json" if json_mode else None,
        media_resolution=resolution)
    return client.models.generate_content(
        model="gemini-sim", config=config,
        contents=[types.Part.from_bytes(data=image, mime_type="image/png"), prompt])


def test_ground_in_yxyx_1000_with_media_resolution(sim, scene, prompts):
    w, h = scene.width, scene.height
    truth = kinds(scene.objects)
    exprs = [f"the {c} {s}s" for c, s in truth]
    with gclient(sim) as client:
        reply = generate(client, prompts.ground_expressions(exprs, "yxyx_1000", w, h),
                         png_bytes(scene.image),
                         resolution=types.MediaResolution.MEDIA_RESOLUTION_HIGH)
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    out = json.loads(reply.text)
    for expr, (color, shape) in zip(exprs, truth, strict=True):
        got = sorted([round(b[1] * w / 1000), round(b[0] * h / 1000),
                      round(b[3] * w / 1000), round(b[2] * h / 1000)] for b in out[expr]["bboxes"])
        want = sorted(truth[(color, shape)])
        for g, t in zip(got, want, strict=True):
            assert max(abs(a - b) for a, b in zip(g, t, strict=True)) <= max(w, h) / 1000
        assert len(got) == len(want)
    usage = reply.usage_metadata
    assert usage.total_token_count == (usage.prompt_token_count + usage.candidates_token_count
                                       + usage.thoughts_token_count)
    rec = sim.requests()[-1]
    assert rec.protocol == "gemini" and rec.model == "gemini-sim"
    assert rec.media_resolution == "MEDIA_RESOLUTION_HIGH" and rec.key_ok and rec.key_sent


def test_extract_and_region_through_gemini(sim, scene, prompts):
    w, h = scene.width, scene.height
    image = png_bytes(scene.image)
    with gclient(sim) as client:
        extract = json.loads(generate(client, prompts.extract_expressions(scene.caption),
                                      image).text)
        assert len(extract["expressions"]) == len(kinds(scene.objects))
        boxes = [[round(o.bbox[1] * 1000 / h), round(o.bbox[0] * 1000 / w),
                  round(o.bbox[3] * 1000 / h), round(o.bbox[2] * 1000 / w)]
                 for o in scene.objects]
        regions = json.loads(generate(client, prompts.describe_regions(boxes, "yxyx_1000", w, h),
                                      image).text)
    assert [r["bbox_2d"] for r in regions] == boxes
    assert [r["type"] for r in regions] == [o.shape for o in scene.objects]
    assert sim.requests()[0].media_resolution is None


def test_gemini_faults_and_finish_reasons(sim, scene):
    image = png_bytes(scene.image)
    prompt = "Write a caption of this whole image."
    sim.script(["blocked", "truncated", "rate_limit", "server_error"])
    with gclient(sim) as client:
        blocked = generate(client, prompt, image, json_mode=False)
        assert blocked.candidates[0].finish_reason == types.FinishReason.SAFETY
        assert blocked.text is None
        cut = generate(client, prompt, image, json_mode=False)
        assert cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
        with pytest.raises(errors.ClientError) as limited:
            generate(client, prompt, image)
        assert limited.value.code == 429 and limited.value.status == "RESOURCE_EXHAUSTED"
        assert limited.value.response.headers["retry-after"] == "1"
        with pytest.raises(errors.ServerError) as failed:
            generate(client, prompt, image)
        assert failed.value.code == 500
        short = generate(client, prompt, image, max_tokens=4, json_mode=False)
        assert short.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_gemini_api_key_header(scene):
    image = png_bytes(scene.image)
    with Simulator(SimConfig(api_key="secret")) as sim:
        with gclient(sim, "nope") as bad, pytest.raises(errors.ClientError) as denied:
            generate(bad, "Write a caption of this whole image.", image)
        assert denied.value.code == 401 and denied.value.status == "UNAUTHENTICATED"
        with gclient(sim, "secret") as good:
            assert "image" in generate(good, "Write a caption of this whole image.", image,
                                       json_mode=False).text
        assert [r.key_ok for r in sim.requests()] == [False, True]
