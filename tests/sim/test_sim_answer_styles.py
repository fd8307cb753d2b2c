"""Answer styles: the shapes real servers and models give their answers (sources in
sim/styles.py), through the real openai and google-genai SDKs and in the raw JSON they read.
"""

from __future__ import annotations

import ast
import json
import re

import pytest
from google import genai
from google.genai import types
from openai import OpenAI
from simtest_helpers import kinds, openai_messages, png_bytes

from auto_label.sim import SimConfig, Simulator
from auto_label.sim.styles import bare_label, variant

CAPTION = "Write a caption of this whole image."


@pytest.fixture(scope="module")
def exprs(scene) -> list[str]:
    """Expressions naming every kind in the scene, with and without articles and plurals."""
    out = []
    for i, (color, shape) in enumerate(kinds(scene.objects)):
        out.append(f"A {color} {shape}" if i % 2 else f"the {color} {shape}s")
    return [*out, "the purple hexagon"]  # names nothing there


def chat(style: str, prompt: str, image: bytes, **kw: object) -> tuple[object, dict]:
    """The SDK's parsed reply and the raw JSON body, from a simulator answering in `style`."""
    with Simulator(SimConfig(answer_style=style)) as sim, \
            OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="sim", messages=openai_messages(prompt, image), temperature=0, **kw)
        assert [r.answer_style for r in sim.requests()] == [style]
        return raw.parse(), json.loads(raw.text)


def gemini(style: str, prompt: str, image: bytes, max_tokens: int | None = None) -> object:
    with Simulator(SimConfig(answer_style=style)) as sim, genai.Client(
            api_key="k", http_options=types.HttpOptions(base_url=sim.gemini_base_url)) as client:
        return client.models.generate_content(
            model="gemini-sim", contents=[types.Part.from_bytes(data=image, mime_type="image/png"),
                                          prompt],
            config=types.GenerateContentConfig(max_output_tokens=max_tokens))


def ground_prompt(prompts, scene, exprs, convention="xyxy_pixel") -> str:
    return prompts.ground_expressions(exprs, convention, scene.width, scene.height)


def plain_answer(prompt: str, image: bytes) -> str:
    return chat("plain", prompt, image)[0].choices[0].message.content


def test_content_parts_carry_a_thinking_part_and_a_text_part(scene, prompts, exprs):
    image = png_bytes(scene.image)
    prompt = ground_prompt(prompts, scene, exprs)
    _, raw = chat("content_parts", prompt, image)
    content = raw["choices"][0]["message"]["content"]
    assert [part["type"] for part in content] == ["thinking", "text"]
    assert [t["type"] for t in content[0]["thinking"]] == ["text"]
    assert content[0]["thinking"][0]["text"].strip()
    assert json.loads(content[1]["text"]) == json.loads(plain_answer(prompt, image))


def test_gemini_content_parts_are_a_thought_then_the_answer(scene, prompts, exprs):
    image = png_bytes(scene.image)
    prompt = ground_prompt(prompts, scene, exprs, "yxyx_1000")
    reply = gemini("content_parts", prompt, image)
    parts = reply.candidates[0].content.parts
    assert [bool(p.thought) for p in parts] == [True, False]
    assert set(json.loads(reply.text)) == set(exprs)  # the SDK's .text skips thought parts
    assert reply.usage_metadata.thoughts_token_count > 0


def test_reasoning_only_leaves_content_null(scene, prompts, exprs):
    image = png_bytes(scene.image)
    prompt = ground_prompt(prompts, scene, exprs)
    parsed, raw = chat("reasoning_only", prompt, image)
    message = raw["choices"][0]["message"]
    assert message["content"] is None and parsed.choices[0].message.content is None
    assert message["reasoning_content"] == message["reasoning"]
    assert json.loads(message["reasoning_content"]) == json.loads(plain_answer(prompt, image))
    assert raw["choices"][0]["finish_reason"] == "stop"


def test_reasoning_cut_spends_the_budget_thinking(scene, prompts, exprs):
    image = png_bytes(scene.image)
    prompt = ground_prompt(prompts, scene, exprs)
    parsed, raw = chat("reasoning_cut", prompt, image, max_tokens=300)
    choice = raw["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["content"] is None
    thought = choice["message"]["reasoning_content"]
    assert thought == choice["message"]["reasoning"] and thought.strip()
    with pytest.raises(json.JSONDecodeError):  # a draft cut mid-way is no answer
        json.loads(thought[thought.find("{"):] if "{" in thought else thought)
    assert raw["usage"]["completion_tokens"] == 300
    assert parsed.choices[0].finish_reason == "length"


def test_gemini_reasoning_styles(scene, prompts, exprs):
    image = png_bytes(scene.image)
    prompt = ground_prompt(prompts, scene, exprs, "yxyx_1000")
    cut = gemini("reasoning_cut", prompt, image, max_tokens=256)
    candidate = cut.candidates[0]
    assert candidate.finish_reason == types.FinishReason.MAX_TOKENS
    assert candidate.content.parts is None and cut.text is None
    assert cut.usage_metadata.thoughts_token_count == 256
    only = gemini("reasoning_only", prompt, image)
    (part,) = only.candidates[0].content.parts
    assert part.thought and only.text is None
    assert set(json.loads(part.text)) == set(exprs)


def test_python_literals_are_not_json(scene, prompts, exprs):
    image = png_bytes(scene.image)
    for prompt in (ground_prompt(prompts, scene, exprs),
                   prompts.extract_expressions(scene.caption)):
        text = chat("python_literal", prompt, image)[0].choices[0].message.content
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        assert "'" in text
        assert ast.literal_eval(text) == json.loads(plain_answer(prompt, image))
    gtext = gemini("python_literal", ground_prompt(prompts, scene, exprs, "yxyx_1000"),
                   image).text
    assert set(ast.literal_eval(gtext)) == set(exprs)
    caption = chat("python_literal", CAPTION, image)[0].choices[0].message.content
    assert caption == plain_answer(CAPTION, image)  # prose stays prose


def test_gemini_native_labels_name_objects_not_expressions(scene, prompts, exprs):
    image = png_bytes(scene.image)
    prompt = ground_prompt(prompts, scene, exprs, "yxyx_1000")
    native = json.loads(gemini("gemini_native", prompt, image).text)
    plain = json.loads(gemini("plain", prompt, image).text)
    assert native and all(set(item) == {"box_2d", "label"} for item in native)
    labels = [item["label"] for item in native]
    assert all(label == label.lower() for label in labels)
    assert not any(re.match(r"(a|an|the) ", label) for label in labels)
    assert bare_label("A red box") == "red box"
    expected = [(box, bare_label(e)) for e in exprs for box in plain[e]["bboxes"]]
    assert [(item["box_2d"], item["label"]) for item in native] == expected
    assert "purple hexagon" not in labels  # nothing found, nothing listed


def normal(key: str) -> str:
    key = " ".join(key.split()).lower().rstrip(".:;!?")
    return re.sub(r"^(a|an|the) ", "", key)


def test_label_variants_need_normalising(scene, prompts, exprs):
    image = png_bytes(scene.image)
    prompt = ground_prompt(prompts, scene, exprs)
    answer = json.loads(chat("label_variants", prompt, image)[0].choices[0].message.content)
    plain = json.loads(plain_answer(prompt, image))
    assert not set(answer) & set(exprs)  # no key spelled as asked
    by_normal = {normal(k): v for k, v in answer.items()}
    assert by_normal == {normal(e): plain[e] for e in exprs}
    again = json.loads(chat("label_variants", prompt, image)[0].choices[0].message.content)
    assert again == answer  # a pure function of seed, image and expression


def test_variants_cover_case_whitespace_punctuation_and_article():
    made = [variant(f"the red circle {i}", 0, "sha") for i in range(40)]
    assert all(v != f"the red circle {i}" for i, v in enumerate(made))
    assert any(v[0] == "T" for v in made)  # case
    assert any("  " in v or v.endswith(" ") for v in made)  # whitespace
    assert any(v.rstrip().endswith(".") for v in made)  # trailing punctuation
    assert any(not v.lower().lstrip().startswith("the") for v in made)  # article dropped
    assert variant("red circle", 0, "x") == variant("red circle", 0, "x")  # deterministic


def test_explicit_empty_answers_grounding_with_an_empty_list(scene, prompts, exprs):
    image = png_bytes(scene.image)
    text = chat("explicit_empty", ground_prompt(prompts, scene, exprs), image)[0]
    assert text.choices[0].message.content == "[]"
    caption = chat("explicit_empty", CAPTION, image)[0].choices[0].message.content
    assert caption == plain_answer(CAPTION, image)  # other tasks answer as plain
