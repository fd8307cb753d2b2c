"""Each task answered from pixels, for prompts written by the pipelines' templates (the
contract)."""

from __future__ import annotations

import json

import pytest
from simtest_helpers import kinds, png_bytes

from auto_label.sim import analyse_bytes, detect_task
from auto_label.sim.boxes import Context, parse_box_line
from auto_label.sim.tasks import answer


def expected(box, convention, w, h):
    """The test's own conversion of a pixel box to a convention (independent of the sim's)."""
    x1, y1, x2, y2 = box
    if convention == "xyxy_pixel":
        return [x1, y1, x2, y2]
    nx = [round(v * 1000 / w) for v in (x1, x2)]
    ny = [round(v * 1000 / h) for v in (y1, y2)]
    if convention == "xyxy_1000":
        return [nx[0], ny[0], nx[1], ny[1]]
    return [ny[0], nx[0], ny[1], nx[1]]


def ctx_for(scene, convention, **noise):
    return Context(analyse_bytes(png_bytes(scene.image)), convention, **noise)


CONVENTIONS = ["xyxy_pixel", "xyxy_1000", "yxyx_1000"]


def test_every_prompt_is_recognised(prompts, scene):
    w, h = scene.width, scene.height
    box = [[1, 2, 3, 4]]
    assert detect_task(prompts.extract_expressions(scene.caption)) == "grounding.extract"
    assert detect_task(prompts.ground_expressions(["a red circle"], "yxyx_1000", w, h)) \
        == "grounding.ground"
    assert detect_task(prompts.describe_regions(box, "xyxy_pixel", w, h)) == "referring.region"
    assert detect_task(prompts.caption_image()) == "referring.caption"
    regions = [{"bbox_2d": box[0], "type": "circle", "color": "red", "description": "x"}]
    assert detect_task(prompts.group_expressions(regions, "Caption: x", "xyxy_1000", w, h)) \
        == "referring.group"
    assert detect_task(prompts.verify_expressions([("a: b", box)], "xyxy_pixel", w, h)) \
        == "referring.verify"
    assert detect_task("Tell me a joke about cats.") == "unknown"
    assert {
        "grounding.extract", "grounding.ground", "referring.region", "referring.caption",
        "referring.group", "referring.verify"} == prompts.TASKS


def test_extract_cleans_and_keeps_visible_phrases(prompts, scene):
    present = {(o.color, o.shape) for o in scene.objects}
    absent = next((c, s) for c in ("purple", "black", "red") for s in ("triangle", "circle")
                  if (c, s) not in present)
    caption = scene.caption.rstrip(".") + f" and a {absent[0]} {absent[1]}."
    out = json.loads(answer("grounding.extract", prompts.extract_expressions(caption),
                            ctx_for(scene, "xyxy_pixel")))
    cleaned = out["cleaned_caption"]
    assert cleaned[0].isupper() and "we can see" not in cleaned.lower()
    assert "there are" not in cleaned.lower() and "in the image" not in cleaned.lower()
    texts = [e["text"] for e in out["expressions"]]
    assert len(texts) == len(present)
    assert not any(absent[0] in t and absent[1] in t for t in texts)
    for e in out["expressions"]:
        s, t = e["char_span"]
        assert cleaned[s:t] == e["text"] and e["noun_chunk"] in e["text"]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_ground_returns_every_instance(prompts, scene, convention):
    w, h = scene.width, scene.height
    truth = kinds(scene.objects)
    phrases = {f"the {c} {s}s" if len(b) > 1 else f"a {c} {s}": (c, s)
               for (c, s), b in truth.items()}
    exprs = [*phrases, "a golden unicorn"]
    out = json.loads(answer("grounding.ground",
                            prompts.ground_expressions(exprs, convention, w, h),
                            ctx_for(scene, convention)))
    assert list(out) == exprs
    for text, kind in phrases.items():
        want = sorted(expected(b, convention, w, h) for b in truth[kind])
        assert sorted(out[text]["bboxes"]) == want
        scores = out[text]["scores"]
        assert len(scores) == len(want) and all(0 < s <= 1 for s in scores)
        assert scores == sorted(scores, reverse=True)
    assert out["a golden unicorn"] == {"bboxes": [], "scores": []}


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_region_descriptions(prompts, scene, convention):
    w, h = scene.width, scene.height
    boxes = [expected(o.bbox, convention, w, h) for o in scene.objects]
    out = json.loads(answer("referring.region",
                            prompts.describe_regions(boxes, convention, w, h),
                            ctx_for(scene, convention)))
    assert len(out) == len(scene.objects)
    for item, obj, box in zip(out, scene.objects, boxes, strict=True):
        assert item["bbox_2d"] == box
        assert (item["color"], item["type"]) == (obj.color, obj.shape)
        assert item["description"].startswith(f"{obj.color} {obj.shape}")
        assert len(item["description"].split()) < 15


def test_caption_names_every_kind(prompts, scene):
    text = answer("referring.caption", prompts.caption_image(), ctx_for(scene, "xyxy_pixel"))
    for color, shape in kinds(scene.objects):
        assert f"{color} {shape}" in text
    assert not text.lstrip().startswith(("{", "["))


def _regions(prompts, scene, convention):
    w, h = scene.width, scene.height
    boxes = [expected(o.bbox, convention, w, h) for o in scene.objects]
    return json.loads(answer("referring.region", prompts.describe_regions(boxes, convention, w, h),
                             ctx_for(scene, convention)))


def _lines(text):
    return dict(parse_box_line(line) for line in text.splitlines())


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_group_uses_given_boxes(prompts, scene, convention):
    w, h = scene.width, scene.height
    regions = _regions(prompts, scene, convention)
    prompt = prompts.group_expressions(regions, scene.caption, convention, w, h)
    lines = _lines(answer("referring.group", prompt, ctx_for(scene, convention)))
    given = [r["bbox_2d"] for r in regions]
    assert all(box in given for boxes in lines.values() for box in boxes)
    for (color, shape), boxes in kinds(scene.objects).items():
        encoded = sorted(expected(b, convention, w, h) for b in boxes)
        if len(boxes) > 1:
            assert any(sorted(v) == encoded for v in lines.values())
        else:
            assert any(k.startswith(f"{color} {shape}") and v == encoded for k, v in lines.items())
    colors = [o.color for o in scene.objects]
    for color in set(colors):
        if colors.count(color) > 1:
            assert f"the {color} shapes" in lines or any(f"the {color} " in k for k in lines)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_verify_removes_group_noise(prompts, scene, convention):
    w, h = scene.width, scene.height
    regions = _regions(prompts, scene, convention)
    prompt = prompts.group_expressions(regions, scene.caption, convention, w, h)
    clean = _lines(answer("referring.group", prompt, ctx_for(scene, convention)))
    noisy_text = answer("referring.group", prompt,
                        ctx_for(scene, convention, group_noise=1.0, extra_box=1.0))
    noisy = _lines(noisy_text)
    assert list(noisy) == list(clean)
    assert all(len(noisy[k]) >= len(clean[k]) + 1 for k in clean)  # at least the extra box
    verified = answer("referring.verify",
                      prompts.verify_expressions(list(noisy.items()), convention, w, h),
                      ctx_for(scene, convention))
    assert _lines(verified) == clean


def test_verify_keeps_updates_and_removes(prompts, scene):
    w, h = scene.width, scene.height
    obj = scene.objects[0]
    other = next(o for o in scene.objects if o.color != obj.color)
    x1, y1, x2, y2 = obj.bbox
    bw = x2 - x1
    shifted = [x1 + bw // 5, y1, x2 + bw // 5, y2]  # IoU ~ 0.67: on the object, poorly aligned
    phrase = f"the {obj.color} {obj.shape}"
    lines = [
        (phrase, [list(obj.bbox), shifted, list(other.bbox), [0, 0, 3, 3]]),
        (f"the {other.color} {other.shape}", [list(obj.bbox)]),  # wrong object: line omitted
    ]
    prompt = prompts.verify_expressions(lines, "xyxy_pixel", w, h)
    out = _lines(answer("referring.verify", prompt, ctx_for(scene, "xyxy_pixel")))
    assert out == {phrase: [list(obj.bbox), list(obj.bbox)]}


def test_unknown_and_unreadable_prompts_answer_text(scene):
    ctx = ctx_for(scene, "xyxy_pixel")
    assert "shapes" in answer("unknown", "What is the meaning of life?", ctx)
    broken = "Referring expressions (JSON array): [oops"
    assert detect_task(broken) == "grounding.ground"
    assert isinstance(answer("grounding.ground", broken, ctx), str)
