"""Grounding answers as real models write them, through the step that reads them: the boxes each
expression gets in pixels of the image, "nothing found", or a clear failure. Never a completion
with no box when the answer held boxes."""

from __future__ import annotations

import pytest

from auto_label.pipelines.answers import ParseError
from auto_label.pipelines.contract import StepInput
from auto_label.pipelines.grounding.outputs import ExtractedExpression, ExtractionOutput
from auto_label.pipelines.grounding.steps import STEP_GROUND

CAR, DOG = "A red car", "the dog"


def ctx(convention, expressions=(CAR, DOG), size=(1000, 500)):
    extraction = ExtractionOutput(cleaned_caption=" and ".join(expressions), expressions=[
        ExtractedExpression(text=e, char_span=None, noun_chunk=None) for e in expressions])
    return StepInput(image_id="img", caption=None, extra={}, upstream={"0": extraction},
                     convention=convention, sent_size=size, original_size=size)


def boxes(text, convention, expressions=(CAR, DOG)):
    output = STEP_GROUND.parse(text, ctx(convention, expressions))
    return {g.text: [i.bbox for i in g.instances] for g in output.groundings}, output.found()


CASES = [
    # Gemini 2.x / 3: box_2d, [y_min, x_min, y_max, x_max] / 1000, labels as Gemini writes them
    pytest.param("yxyx_1000", '[{"box_2d": [100, 200, 500, 400], "label": "red car"}, '
                 '{"box_2d": [600, 500, 900, 700], "label": "dog"}]',
                 {CAR: [[200, 50, 400, 250]], DOG: [[500, 300, 700, 450]]}, id="gemini-native"),
    pytest.param("yxyx_1000", '```json\n[\n  {"box_2d": [100, 200, 500, 400], "label": "Red car."}'
                 '\n]\n```', {CAR: [[200, 50, 400, 250]], DOG: []}, id="gemini-fenced-label"),
    # Qwen2.5-VL: bbox_2d in pixels; Qwen3-VL: bbox_2d in 0-1000
    pytest.param("xyxy_pixel", '```json\n[{"bbox_2d": [200, 50, 400, 250], "label": "a red car"},'
                 '{"bbox_2d": [500, 300, 700, 450], "label": "the dog"}]\n```',
                 {CAR: [[200, 50, 400, 250]], DOG: [[500, 300, 700, 450]]}, id="qwen25"),
    pytest.param("xyxy_1000", '[{"bbox_2d": [200, 100, 400, 500], "label": "A red car"}]',
                 {CAR: [[200, 50, 400, 250]], DOG: []}, id="qwen3"),
    pytest.param("xyxy_pixel", '<think>The car is on the left.</think>\n{"A red car": {"bboxes": '
                 '[[200, 50, 400, 250]], "scores": [0.9]}, '
                 '"the dog": {"bboxes": [], "scores": []}}',
                 {CAR: [[200, 50, 400, 250]], DOG: []}, id="thinking-prefixed"),
    pytest.param("xyxy_pixel", "[{'bbox_2d': [200, 50, 400, 250], 'label': 'red car'}, "
                 "{'bbox_2d': [500, 300, 700, 450], 'label': 'dog', 'occluded': None}]",
                 {CAR: [[200, 50, 400, 250]], DOG: [[500, 300, 700, 450]]}, id="python-literal"),
    pytest.param("xyxy_pixel", '{"A red car": {"bboxes": [[200, 50, 400, 250]], "scores": [0.9]},'
                 ' "the dog": {"bboxes": [[500, 300, 7',
                 {CAR: [[200, 50, 400, 250]], DOG: []}, id="truncated-drops-the-cut-box"),
]


@pytest.mark.parametrize(("convention", "text", "expected"), CASES)
def test_real_answer_styles_give_each_expression_its_boxes(convention, text, expected):
    got, found = boxes(text, convention)
    assert got == expected
    assert found == sum(len(v) for v in expected.values())


@pytest.mark.parametrize("text", ["[]", "{}", '{"A red car": {"bboxes": [], "scores": []}}',
                                  "```json\n[]\n```"])
def test_an_explicit_empty_answer_is_nothing_found(text):
    got, found = boxes(text, "xyxy_pixel")
    assert got == {CAR: [], DOG: []} and found == 0


@pytest.mark.parametrize("text", [
    '[{"box_2d": [100, 200, 500, 400], "label": "blue truck"}]',
    '{"a cat": {"bboxes": [[1, 2, 3, 4]]}}',
])
def test_boxes_that_name_no_asked_expression_fail_never_complete_empty(text):
    with pytest.raises(ParseError, match=r"name none of the expressions asked"):
        boxes(text, "yxyx_1000")


def test_with_one_expression_asked_every_box_is_its():
    got, _ = boxes('[{"box_2d": [100, 200, 500, 400], "label": "vehicle"}]', "yxyx_1000",
                   expressions=(CAR,))
    assert got == {CAR: [[200, 50, 400, 250]]}


@pytest.mark.parametrize("text", ["I cannot see any such objects.", "", "<think>hmm"])
def test_prose_and_empty_answers_are_unparseable_not_nothing_found(text):
    with pytest.raises(ParseError):
        boxes(text, "xyxy_pixel")
