"""Parsers of raw model answers: table tests over real-looking outputs, broken ones included."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auto_label.pipelines.answers import ParseError, extract_json
from auto_label.pipelines.grounding.parsers import parse_extraction, parse_grounding
from auto_label.pipelines.referring.parsers import parse_caption, parse_phrase_lines, parse_regions

FENCE = "```"


def assert_parse_error(fn, *args):
    with pytest.raises(ParseError) as info:
        fn(*args)
    message = str(info.value)
    assert message
    assert "\n" not in message
    assert len(message) < 120
    return message


# --------------------------------------------------------------------------------------------
# extract_json
# --------------------------------------------------------------------------------------------

EXTRACT_CASES = [
    pytest.param('{"a": 1}', {"a": 1}, id="plain-object"),
    pytest.param("[1, 2, 3]", [1, 2, 3], id="plain-array"),
    pytest.param(f'{FENCE}json\n{{"a": [1, 2]}}\n{FENCE}', {"a": [1, 2]}, id="fenced-json"),
    pytest.param(f'{FENCE}\n{{"a": 1}}\n{FENCE}\n', {"a": 1}, id="fenced-no-language"),
    pytest.param(f'{FENCE}JSON\n[{{"a": 1}}]', [{"a": 1}], id="fenced-unclosed"),
    pytest.param('Sure! Here is the result:\n{"a": 1}\nLet me know if you need more.', {"a": 1},
                 id="prose-around"),
    pytest.param('Boxes are [x1, y1, x2, y2] in 0-1000:\n{"a": [1, 2, 3, 4]}',
                 {"a": [1, 2, 3, 4]}, id="bracketed-prose-before"),
    pytest.param('As requested {in JSON}: {"a": 1} (see [1]).', {"a": 1}, id="braces-in-prose"),
    pytest.param('<think>The user wants {"a": 0}. Let me think.</think>\n{"a": 1}', {"a": 1},
                 id="think-block"),
    pytest.param('<THINK>\nhmm [1, 2]\n</THINK>```json\n{"a": 1}\n```', {"a": 1},
                 id="think-block-uppercase-then-fence"),
    pytest.param('reasoning without the opening tag {"a": 0}\n</think>\n\n{"a": 1}', {"a": 1},
                 id="dangling-think-close"),
    pytest.param('{"a": [1, 2,], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}},
                 id="trailing-commas"),
    pytest.param('[\n  {"a": 1},\n  {"b": 2},\n]', [{"a": 1}, {"b": 2}], id="trailing-comma-array"),
    pytest.param('{"a": 1}\n{"b": 2}\n{"c": 3}', [{"a": 1}, {"b": 2}, {"c": 3}], id="ndjson"),
    pytest.param('{"a": 1},\n{"b": 2},\n', [{"a": 1}, {"b": 2}], id="ndjson-with-commas"),
    pytest.param('{"a": 1}\n{"b": 2}\n{"c": [1, 2', [{"a": 1}, {"b": 2}],
                 id="ndjson-truncated-last-line"),
    pytest.param('{"a": 1}\n{"b": 2}\n{"c": 3, "d": [1', [{"a": 1}, {"b": 2}],
                 id="ndjson-truncated-last-line-with-complete-pairs"),
    pytest.param('[{"a": 1}, {"b": 2}, {"c": [1, 2', [{"a": 1}, {"b": 2}],
                 id="truncated-mid-array"),
    pytest.param('[{"a": 1}, {"b": 2}', [{"a": 1}, {"b": 2}],
                 id="truncated-after-complete-element"),
    pytest.param("[10, 20, 30", [10, 20], id="truncated-number-dropped"),
    pytest.param('{"x": [1, 2], "y": {"z": [3, 4', {"x": [1, 2]}, id="truncated-mid-object"),
    pytest.param('{"x": "abc", "y": "de', {"x": "abc"}, id="truncated-mid-string"),
    pytest.param('{"x": "abc", "y', {"x": "abc"}, id="truncated-mid-key"),
    pytest.param('{"x": "abc", "y":', {"x": "abc"}, id="truncated-after-colon"),
    pytest.param('{"x": "abc", "y": tr', {"x": "abc"}, id="truncated-mid-literal"),
    pytest.param('{"x": "abc", "y": "caf\\u00', {"x": "abc"}, id="truncated-mid-unicode-escape"),
    pytest.param('{"x": {"k": 1}', {"x": {"k": 1}}, id="truncated-before-last-brace"),
    pytest.param(f'{FENCE}json\n{{"x": [1], "y": [2, 3', {"x": [1]}, id="truncated-in-fence"),
    pytest.param('{"s": "line one\nline two"}', {"s": "line one\nline two"},
                 id="raw-newline-in-string"),
    pytest.param('{"a": NaN, "b": -Infinity}', None, id="nan-literals"),
    pytest.param('see [1]\n{"a": {"b": [1, 2, 3, 4]}}', {"a": {"b": [1, 2, 3, 4]}},
                 id="longest-value-wins"),
    pytest.param('{"a": 1} and also {"b": 2, "c": 3}', {"b": 2, "c": 3},
                 id="same-line-values-not-ndjson"),
    pytest.param('{"a": 1 "b": 2}\n{"c": 3}', {"c": 3}, id="syntax-error-skipped"),
    pytest.param('{"café 🐕": "ünïcödé"}', {"café 🐕": "ünïcödé"}, id="unicode"),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACT_CASES)
def test_extract_json(text, expected):
    got = extract_json(text)
    if expected is None:  # NaN does not compare equal
        assert math.isnan(got["a"])
        assert got["b"] == -math.inf
    else:
        assert got == expected


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("   \n\t ", id="whitespace"),
    pytest.param("I'm sorry, I can't help with that.", id="refusal"),
    pytest.param("The answer is 42.", id="prose-only"),
    pytest.param('{"a": [1, 2', id="truncated-with-nothing-complete"),
    pytest.param("{", id="just-a-brace"),
    pytest.param('<think>I will answer {"a": 1} soon', id="thinking-cut-off"),
    pytest.param("<think>only thinking</think>", id="only-thinking"),
    pytest.param("[" * 5000, id="deep-nesting-truncated"),
])
def test_extract_json_errors(text):
    assert_parse_error(extract_json, text)


@pytest.mark.parametrize(("text", "expected"), [
    # Python literals, read with ast.literal_eval: unambiguous, and some models write them
    pytest.param("{'a': 1}", {"a": 1}, id="single-quotes"),
    pytest.param("[{'bbox_2d': [10, 20, 110, 120], 'label': 'cat'}]",
                 [{"bbox_2d": [10, 20, 110, 120], "label": "cat"}], id="python-list-of-dicts"),
    pytest.param("```python\n{'a': True, 'b': None, 'c': (1, 2)}\n```",
                 {"a": True, "b": None, "c": [1, 2]}, id="python-fenced-tuple"),
    pytest.param("{\"a red car\": {'bboxes': [[1, 2, 3, 4]]}}",
                 {"a red car": {"bboxes": [[1, 2, 3, 4]]}}, id="mixed-quotes"),
    # what json-repair reads in complete text our scanner cannot
    pytest.param("[1, 2 3]", [1, 2, 3], id="missing-comma"),
    pytest.param("{bboxes: [[1, 2, 3, 4]], label: 'car'}",
                 {"bboxes": [[1, 2, 3, 4]], "label": "car"}, id="unquoted-keys"),
    pytest.param('{"a": 1 // the car\n}', {"a": 1}, id="comment"),
    pytest.param('{"a": true, \'b\': None}', {"a": True, "b": None}, id="json-and-python"),
])
def test_extract_json_reads_python_literals_and_repairs_complete_json(text, expected):
    assert extract_json(text) == expected


def test_a_cut_off_answer_is_never_completed_by_the_repairer():
    # json-repair would close `[600, 700, 9` into a three-number box; we drop the cut entry
    assert extract_json('{"a": {"bboxes": [[1, 2, 3, 4]]}, "b": {"bboxes": [[600, 700, 9') == \
        {"a": {"bboxes": [[1, 2, 3, 4]]}}
    assert_parse_error(extract_json, '{"a": [1, 2')


def test_an_integer_too_long_never_becomes_a_number():
    value = extract_json("[" + "1" * 5000 + "]")
    assert not any(isinstance(v, int | float) for v in value)


def test_extract_json_deep_nesting_does_not_recurse_without_limit():
    # too deep to be an answer: whatever comes out, it is not a RecursionError
    with contextlib.suppress(ParseError):
        extract_json("[" * 5000 + "]" * 5000)


def test_extract_json_error_messages_say_what_was_wrong():
    assert "empty" in assert_parse_error(extract_json, "")
    assert "no JSON" in assert_parse_error(extract_json, "I'm sorry, I can't help")


def test_parse_error_is_a_value_error():
    assert issubclass(ParseError, ValueError)


# --------------------------------------------------------------------------------------------
# parse_extraction (grounding step 0)
# --------------------------------------------------------------------------------------------

CAPTION = "In the image we can see a red car parked near a tall tree and a dog."
CLEANED = "A red car parked near a tall tree and a dog."


def extraction(expressions, cleaned=CLEANED):
    body = {"expressions": expressions}
    if cleaned is not None:
        body = {"cleaned_caption": cleaned, **body}
    return json.dumps(body, ensure_ascii=False)


def test_extraction_reference_shape():
    text = extraction([
        {"text": "A red car", "char_span": [0, 9], "noun_chunk": "car"},
        {"text": "a tall tree", "char_span": [22, 33], "noun_chunk": "tree"},
        {"text": "a dog", "char_span": [38, 43], "noun_chunk": "dog"},
    ])
    assert parse_extraction(text, CAPTION) == {
        "cleaned_caption": CLEANED,
        "expressions": [
            {"text": "A red car", "char_span": [0, 9], "noun_chunk": "car"},
            {"text": "a tall tree", "char_span": [22, 33], "noun_chunk": "tree"},
            {"text": "a dog", "char_span": [38, 43], "noun_chunk": "dog"},
        ],
    }


@pytest.mark.parametrize(("span", "expected"), [
    pytest.param([22, 33], [22, 33], id="right"),
    pytest.param([21, 32], [22, 33], id="off-by-one"),
    pytest.param(None, [22, 33], id="null"),
    pytest.param("missing", [22, 33], id="missing"),
    pytest.param([200, 211], [22, 33], id="out-of-range"),
    pytest.param([-11, 0], [22, 33], id="negative"),
    pytest.param([33, 22], [22, 33], id="reversed"),
    pytest.param([22.0, 33.0], [22, 33], id="floats"),
    pytest.param([22], [22, 33], id="one-number"),
    pytest.param("22-33", [22, 33], id="string"),
    pytest.param([True, 33], [22, 33], id="bool"),
])
def test_extraction_char_span_checked(span, expected):
    item = {"text": "a tall tree", "noun_chunk": "tree"}
    if span != "missing":
        item["char_span"] = span
    got = parse_extraction(extraction([item]), CAPTION)
    assert got["expressions"][0]["char_span"] == expected
    s, e = expected
    assert got["cleaned_caption"][s:e] == "a tall tree"


def test_extraction_text_not_in_caption_gets_no_span():
    got = parse_extraction(extraction([{"text": "a blue bicycle", "char_span": [0, 14]}]), CAPTION)
    assert got["expressions"] == [{"text": "a blue bicycle", "char_span": None, "noun_chunk": None}]


def test_extraction_case_insensitive_fallback_takes_caption_spelling():
    got = parse_extraction(extraction([{"text": "a red car", "char_span": [0, 9]}]), CAPTION)
    assert got["expressions"][0]["char_span"] == [0, 9]
    assert got["expressions"][0]["text"] == "A red car"


def test_extraction_searches_after_previous_expression():
    cleaned = "a cup on a table, and a cup of tea"
    text = extraction([{"text": "a table", "char_span": [9, 16]}, {"text": "a cup"}], cleaned)
    got = parse_extraction(text, cleaned)
    assert [e["char_span"] for e in got["expressions"]] == [[9, 16], [22, 27]]


def test_extraction_falls_back_to_search_from_start():
    cleaned = "a cup on a table"
    text = extraction([{"text": "a table"}, {"text": "a cup"}], cleaned)
    got = parse_extraction(text, cleaned)
    assert [e["char_span"] for e in got["expressions"]] == [[9, 16], [0, 5]]


def test_extraction_unicode_caption_spans_are_code_points():
    cleaned = "Ein großer Hund 🐕 neben einem Café über der Straße"
    # a model counting UTF-16 units or bytes gets the spans wrong; they are repaired
    text = extraction([
        {"text": "Ein großer Hund", "char_span": [0, 16]},  # UTF-8 bytes
        {"text": "einem Café", "char_span": [25, 35]},  # UTF-16 units
        {"text": "der Straße", "char_span": [46, 57]},  # UTF-8 bytes
    ], cleaned)
    got = parse_extraction(text, cleaned)
    for expr in got["expressions"]:
        s, e = expr["char_span"]
        assert cleaned[s:e] == expr["text"]
    assert [e["char_span"] for e in got["expressions"]] == [[0, 15], [24, 34], [40, 50]]


def test_extraction_missing_or_empty_cleaned_caption_uses_caption():
    for cleaned in (None, "", "   ", 42):
        body: dict = {"expressions": [{"text": "a dog"}]}
        if cleaned is not None:
            body["cleaned_caption"] = cleaned
        got = parse_extraction(json.dumps(body), CAPTION)
        assert got["cleaned_caption"] == CAPTION
        assert got["expressions"][0]["char_span"] == [62, 67]


def test_extraction_bare_list_and_plain_strings():
    got = parse_extraction('["a red car", "  a dog ", "", "   ", "a red car"]', CLEANED)
    assert got == {
        "cleaned_caption": CLEANED,
        "expressions": [
            {"text": "A red car", "char_span": [0, 9], "noun_chunk": None},
            {"text": "a dog", "char_span": [38, 43], "noun_chunk": None},
        ],
    }


def test_extraction_bare_list_of_objects_drops_empty_and_duplicates():
    text = json.dumps([
        {"text": "a dog", "char_span": [38, 43], "noun_chunk": "dog"},
        {"text": " ", "char_span": [0, 1]},
        {"text": "a dog", "char_span": [38, 43], "noun_chunk": "dog"},
        {"text": "a tall tree", "noun_chunk": "  "},
        {"char_span": [0, 3]},
        7,
    ])
    got = parse_extraction(text, CLEANED)
    assert got["expressions"] == [
        {"text": "a dog", "char_span": [38, 43], "noun_chunk": "dog"},
        {"text": "a tall tree", "char_span": [22, 33], "noun_chunk": None},
    ]


def test_extraction_fenced_with_thinking_and_prose():
    body = extraction([{"text": "a dog", "char_span": [38, 43], "noun_chunk": "dog"}])
    text = f"<think>clean it first</think>\nHere you go:\n{FENCE}json\n{body}\n{FENCE}\nDone."
    got = parse_extraction(text, CAPTION)
    assert got["cleaned_caption"] == CLEANED
    assert got["expressions"][0]["text"] == "a dog"


def test_extraction_empty_expressions_is_valid():
    assert parse_extraction(extraction([]), CAPTION) == {
        "cleaned_caption": CLEANED, "expressions": []}


def test_extraction_truncated_bare_list_keeps_complete_entries():
    text = '[{"text": "a red car", "char_span": [2, 11]}, {"text": "a tall tr'
    got = parse_extraction(text, CLEANED)
    assert got["expressions"] == [{"text": "A red car", "char_span": [0, 9], "noun_chunk": None}]


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("I'm sorry, I can't help with that.", id="refusal"),
    pytest.param('{"cleaned_caption": "x"}', id="no-expressions"),
    pytest.param('{"expressions": "a dog"}', id="expressions-not-a-list"),
    pytest.param('{"result": [{"text": "a dog"}]}', id="other-key"),
    pytest.param("[1, 2, 3]", id="list-of-numbers"),
    pytest.param('[{"char_span": [0, 1]}]', id="objects-without-text"),
])
def test_extraction_errors(text):
    assert_parse_error(parse_extraction, text, CAPTION)


@pytest.mark.parametrize(("text", "texts"), [
    pytest.param('{"cleaned_caption": "A dog and a cat.", "expressions": [{"text": "A dog"}, {"te',
                 ["A dog"], id="cut-inside-the-second-expression"),
    pytest.param('{"cleaned_caption": "A dog and a cat.", "expressions": [{"text": "A dog"}, '
                 '{"text": "a cat", "char_span": [11, 16]}, ', ["A dog", "a cat"],
                 id="cut-after-a-comma"),
    pytest.param('{"cleaned_caption": "A dog and a cat.", "expressions": [{"text": "A do',
                 None, id="cut-inside-the-first-expression"),
])
def test_extraction_salvages_the_expressions_written_before_a_cut(text, texts):
    if texts is None:
        assert_parse_error(parse_extraction, text, CAPTION)
        return
    parsed = parse_extraction(text, CAPTION)
    assert parsed["cleaned_caption"] == "A dog and a cat."
    assert [e["text"] for e in parsed["expressions"]] == texts
    assert parsed["expressions"][0]["char_span"] == [0, 5]


def test_extraction_wrong_shape_message():
    assert "expressions" in assert_parse_error(parse_extraction, '{"foo": 1}', CAPTION)


# --------------------------------------------------------------------------------------------
# parse_grounding (grounding step 1)
# --------------------------------------------------------------------------------------------

EXPRS = ["the red car", "a dog", "the tall tree"]


def grounding(text, expressions=EXPRS):
    return parse_grounding(text, expressions)


def test_grounding_reference_shape():
    text = json.dumps({
        "the red car": {"bboxes": [[10, 20, 110, 220], [300, 40, 380, 90]], "scores": [0.9, 0.4]},
        "a dog": {"bboxes": [], "scores": []},
    })
    assert grounding(text) == {
        "the red car": [([10.0, 20.0, 110.0, 220.0], 0.9), ([300.0, 40.0, 380.0, 90.0], 0.4)],
        "a dog": [],
        "the tall tree": [],
    }


@pytest.mark.parametrize("key", ["bboxes", "boxes", "bbox", "bbox_2d", "box_2d"])
def test_grounding_box_key_aliases(key):
    got = grounding(json.dumps({"a dog": {key: [[1, 2, 3, 4]], "scores": [0.5]}}))
    assert got["a dog"] == [([1.0, 2.0, 3.0, 4.0], 0.5)]


def test_grounding_single_box_instead_of_list():
    got = grounding('{"a dog": {"bbox_2d": [1, 2, 3, 4], "score": 0.7}}')
    assert got["a dog"] == [([1.0, 2.0, 3.0, 4.0], 0.7)]
    got = grounding('{"a dog": [5, 6, 7, 8]}')
    assert got["a dog"] == [([5.0, 6.0, 7.0, 8.0], 1.0)]


def test_grounding_entry_as_list_of_boxes_or_instances():
    got = grounding('{"a dog": [[1, 2, 3, 4], [5, 6, 7, 8]],'
                    ' "the red car": [{"box_2d": [9, 9, 19, 19], "score": 0.25}]}')
    assert got["a dog"] == [([1.0, 2.0, 3.0, 4.0], 1.0), ([5.0, 6.0, 7.0, 8.0], 1.0)]
    assert got["the red car"] == [([9.0, 9.0, 19.0, 19.0], 0.25)]


@pytest.mark.parametrize("label", ["text", "expression", "label"])
def test_grounding_list_form(label):
    text = json.dumps([
        {label: "a dog", "bbox_2d": [1, 2, 3, 4], "score": 0.8},
        {label: "a dog", "box_2d": [5, 6, 7, 8]},
        {label: "the red car", "bbox": [9, 10, 11, 12], "score": "0.6"},
        {label: "a unicorn", "bbox_2d": [0, 0, 1, 1]},
    ])
    assert grounding(text) == {
        "the red car": [([9.0, 10.0, 11.0, 12.0], 0.6)],
        "a dog": [([1.0, 2.0, 3.0, 4.0], 0.8), ([5.0, 6.0, 7.0, 8.0], 1.0)],
        "the tall tree": [],
    }


def test_grounding_qwen_style_fenced_list():
    text = (f'{FENCE}json\n[\n\t{{"bbox_2d": [135, 114, 400, 398], "label": "a dog"}},\n'
            f'\t{{"bbox_2d": [12, 5, 100, 90], "label": "the tall tree"}}\n]\n{FENCE}')
    got = grounding(text)
    assert got["a dog"] == [([135.0, 114.0, 400.0, 398.0], 1.0)]
    assert got["the tall tree"] == [([12.0, 5.0, 100.0, 90.0], 1.0)]


def test_grounding_list_form_wrapped_in_an_object():
    got = grounding('{"results": [{"label": "a dog", "box_2d": [1, 2, 3, 4], "score": 0.3}]}')
    assert got["a dog"] == [([1.0, 2.0, 3.0, 4.0], 0.3)]


def test_grounding_ndjson():
    text = ('{"label": "a dog", "bbox_2d": [1, 2, 3, 4]}\n'
            '{"label": "a dog", "bbox_2d": [5, 6, 7, 8]}\n'
            '{"the red car": {"bboxes": [[9, 9, 10, 10]], "scores": [0.1]}}\n')
    got = grounding(text)
    assert got["a dog"] == [([1.0, 2.0, 3.0, 4.0], 1.0), ([5.0, 6.0, 7.0, 8.0], 1.0)]
    assert got["the red car"] == [([9.0, 9.0, 10.0, 10.0], 0.1)]


@pytest.mark.parametrize(("scores", "expected"), [
    pytest.param([0.9, 0.8], [0.9, 0.8], id="normal"),
    pytest.param(None, [1.0, 1.0], id="missing"),
    pytest.param([0.3], [0.3, 1.0], id="short"),
    pytest.param([], [1.0, 1.0], id="empty"),
    pytest.param(["0.75", " 0.5 "], [0.75, 0.5], id="strings"),
    pytest.param(["85%", "high"], [0.85, 1.0], id="percent-and-junk"),
    pytest.param([1.7, -0.2], [1.0, 0.0], id="clamped"),
    pytest.param([95, 0], [1.0, 0.0], id="percent-as-number-clamped"),
    pytest.param([None, True], [1.0, 1.0], id="null-and-bool"),
    pytest.param(0.6, [0.6, 1.0], id="scalar"),
])
def test_grounding_scores(scores, expected):
    entry: dict = {"bboxes": [[1, 2, 3, 4], [5, 6, 7, 8]]}
    if scores is not None:
        entry["scores"] = scores
    got = grounding(json.dumps({"a dog": entry}))
    assert [score for _, score in got["a dog"]] == expected


def test_grounding_nan_score_defaults():
    got = grounding('{"a dog": {"bboxes": [[1, 2, 3, 4]], "scores": [NaN]}}')
    assert got["a dog"] == [([1.0, 2.0, 3.0, 4.0], 1.0)]


def test_grounding_key_matching():
    text = json.dumps({
        "The Red  Car": {"bboxes": [[1, 1, 2, 2]]},
        " a dog ": {"bboxes": [[3, 3, 4, 4]]},
        "a cat": {"bboxes": [[5, 5, 6, 6]]},
    })
    got = grounding(text)
    assert got == {
        "the red car": [([1.0, 1.0, 2.0, 2.0], 1.0)],
        "a dog": [([3.0, 3.0, 4.0, 4.0], 1.0)],
        "the tall tree": [],
    }


def test_grounding_exact_key_wins_over_loose_match():
    got = parse_grounding('{"Dog": [[1, 1, 2, 2]], "dog": [[3, 3, 4, 4]]}', ["dog", "Dog"])
    assert got == {"dog": [([3.0, 3.0, 4.0, 4.0], 1.0)], "Dog": [([1.0, 1.0, 2.0, 2.0], 1.0)]}


def test_grounding_bad_boxes_skipped_scores_stay_aligned():
    text = json.dumps({"a dog": {
        "bboxes": [[1, 2, 3], [1, 2, 3, 4, 5], ["1", 2, 3, 4], [True, 2, 3, 4], [1, 2, 3, None],
                   "1,2,3,4", {"x": 1}, [10, 20, 30, 40]],
        "scores": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
    }})
    assert grounding(text)["a dog"] == [([10.0, 20.0, 30.0, 40.0], 0.8)]


def test_grounding_non_finite_boxes_skipped():
    text = ('{"a dog": {"bboxes": [[NaN, 1, 2, 3], [0, Infinity, 2, 3], [0, 1, 2, -Infinity],'
            ' [0, 1, 2, 3]]}}')
    assert grounding(text)["a dog"] == [([0.0, 1.0, 2.0, 3.0], 1.0)]


def test_grounding_swapped_corners_left_as_written():
    got = grounding('{"a dog": {"box_2d": [[800, 900, 100, 50]], "scores": [0.5]}}')
    assert got["a dog"] == [([800.0, 900.0, 100.0, 50.0], 0.5)]


def test_grounding_float_values_kept_as_written():
    got = grounding('{"a dog": [[0.125, 10.5, 1e2, 999.999]]}')
    assert got["a dog"] == [([0.125, 10.5, 100.0, 999.999], 1.0)]


def test_grounding_at_most_ten_boxes():
    boxes = [[i, i, i + 1, i + 1] for i in range(15)]
    got = grounding(json.dumps({"a dog": {"bboxes": boxes, "scores": [0.5] * 15}}))
    assert [box for box, _ in got["a dog"]] == [[float(v) for v in b] for b in boxes[:10]]


def test_grounding_at_most_ten_boxes_across_list_items():
    text = "\n".join(json.dumps({"label": "a dog", "bbox_2d": [i, 0, i + 1, 1]}) for i in range(12))
    assert len(grounding(text)["a dog"]) == 10


def test_grounding_empty_object_gives_all_empty_lists():
    assert grounding("{}") == {e: [] for e in EXPRS}
    assert grounding(f"{FENCE}json\n{{}}\n{FENCE}") == {e: [] for e in EXPRS}


def test_grounding_unknown_keys_only_gives_all_empty_lists():
    assert grounding('{"a cat": {"bboxes": [[1, 2, 3, 4]]}}') == {e: [] for e in EXPRS}


def test_grounding_single_expression_without_its_key():
    got = parse_grounding('{"bboxes": [[1, 2, 3, 4]], "scores": [0.9]}', ["a dog"])
    assert got == {"a dog": [([1.0, 2.0, 3.0, 4.0], 0.9)]}
    # with several expressions the owner is unknown
    assert grounding('{"bboxes": [[1, 2, 3, 4]], "scores": [0.9]}') == {e: [] for e in EXPRS}


def test_grounding_prose_and_thinking_around():
    text = ('<think>The dog is at the left. {"a dog": [[0, 0, 1, 1]]}</think>\n'
            'Here are the boxes:\n'
            f'{FENCE}json\n{{"a dog": {{"bboxes": [[11, 12, 13, 14]], "scores": [0.6]}}}}\n'
            f'{FENCE}\nThe tree is not visible.')
    assert grounding(text)["a dog"] == [([11.0, 12.0, 13.0, 14.0], 0.6)]


def test_grounding_truncated_mid_object_keeps_complete_expressions():
    full = json.dumps({
        "the red car": {"bboxes": [[10, 20, 110, 220]], "scores": [0.9]},
        "a dog": {"bboxes": [[1, 2, 3, 4], [5, 6, 7, 8]], "scores": [0.5, 0.4]},
    })
    cut = full[: full.index("[5, 6") + 4]
    assert grounding(cut) == {
        "the red car": [([10.0, 20.0, 110.0, 220.0], 0.9)], "a dog": [], "the tall tree": []}


def test_grounding_truncated_mid_list_form():
    text = ('[{"label": "a dog", "bbox_2d": [1, 2, 3, 4]}, '
            '{"label": "the red car", "bbox_2d": [5, 6, 7')
    got = grounding(text)
    assert got["a dog"] == [([1.0, 2.0, 3.0, 4.0], 1.0)]
    assert got["the red car"] == []


def test_grounding_empty_or_whitespace_expression_list():
    assert parse_grounding('{"a dog": [[1, 2, 3, 4]]}', []) == {}


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("I'm sorry, I can't help with that.", id="refusal"),
    pytest.param("No objects found.", id="prose"),
    pytest.param("[1, 2, 3, 4]", id="bare-box"),
    pytest.param('["a dog", "the red car"]', id="list-of-strings"),
    pytest.param('{"a dog": {"bboxes": [[1, 2', id="truncated-nothing-complete"),
])
def test_grounding_errors(text):
    assert_parse_error(grounding, text)


def test_grounding_result_is_json_serialisable():
    got = grounding('{"a dog": {"bboxes": [[1, 2, 3, 4]], "scores": ["0.5"]}}')
    assert json.loads(json.dumps(got)) == {
        "the red car": [], "a dog": [[[1.0, 2.0, 3.0, 4.0], 0.5]], "the tall tree": []}


# Property: whatever happens to a serialised answer, only ParseError escapes and every box
# returned was in the input.

expression_texts = st.text(min_size=1, max_size=20)
numbers = st.one_of(
    st.integers(-2000, 5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e4, 1e4, allow_nan=False),
)
raw_boxes = st.one_of(
    st.lists(numbers, min_size=4, max_size=4),
    st.lists(numbers, min_size=0, max_size=6),
    st.lists(st.one_of(numbers, st.text(max_size=3), st.none(), st.booleans()),
             min_size=4, max_size=4),
)
scores = st.one_of(st.floats(allow_nan=True), st.text(max_size=5), st.integers(-5, 200))
PROSE = ["Sure, here are the boxes.", "I found these objects:", "Hope this helps!",
         "Note: coordinates are normalized.", "<think>Looking at the image.</think>"]


@st.composite
def grounding_answers(draw):
    expressions = draw(st.lists(expression_texts, min_size=1, max_size=4))
    answer_boxes: dict[str, list[list]] = {
        e: draw(st.lists(raw_boxes, max_size=12)) for e in expressions}
    shape = draw(st.sampled_from(["reference", "list", "ndjson", "single"]))
    if shape == "reference":
        body = json.dumps({
            e: {draw(st.sampled_from(["bboxes", "boxes", "bbox_2d", "box_2d"])): b,
                "scores": draw(st.lists(scores, max_size=len(b) + 1))}
            for e, b in answer_boxes.items()
        }, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2])))
    elif shape == "single":
        body = json.dumps({e: b[0] if b else [] for e, b in answer_boxes.items()})
    else:
        items = [{"label": e, "bbox_2d": box, "score": draw(scores)}
                 for e, bs in answer_boxes.items() for box in bs]
        if shape == "list":
            body = json.dumps(items)
        else:
            body = "\n".join(json.dumps(item) for item in items)
    if draw(st.booleans()):
        body = f"{FENCE}json\n{body}\n{FENCE}"
    if draw(st.booleans()):
        body = f"{draw(st.sampled_from(PROSE))}\n{body}\n{draw(st.sampled_from(PROSE))}"
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    given_expressions = draw(st.lists(st.sampled_from(expressions), max_size=5))
    if draw(st.booleans()):
        given_expressions += draw(st.lists(expression_texts, max_size=2))
    return body, given_expressions, answer_boxes


def _as_key(box):
    return tuple(float(v) for v in box)


@given(grounding_answers())
def test_grounding_property_only_parse_error_and_only_input_boxes(answer):
    body, given_expressions, answer_boxes = answer
    try:
        got = parse_grounding(body, given_expressions)
    except ParseError:
        return
    assert set(got) == set(given_expressions)
    valid = set()
    for boxes in answer_boxes.values():
        for box in boxes:
            if (len(box) == 4 and all(type(v) in (int, float) for v in box)
                    and all(math.isfinite(v) for v in box)):
                valid.add(_as_key(box))
    for instances in got.values():
        assert len(instances) <= 10
        for box, score in instances:
            assert _as_key(box) in valid
            assert 0.0 <= score <= 1.0


# --------------------------------------------------------------------------------------------
# parse_regions (referring step 0)
# --------------------------------------------------------------------------------------------

REGIONS = [
    {"bbox_2d": [10, 20, 110, 220], "type": "car", "color": "red",
     "description": "red car parked by the curb"},
    {"bbox_2d": [300, 40, 380, 90], "type": "person", "color": "blue",
     "description": "person in a blue jacket crossing"},
]
REGIONS_PARSED = [
    {"bbox_2d": [10.0, 20.0, 110.0, 220.0], "type": "car", "color": "red",
     "description": "red car parked by the curb"},
    {"bbox_2d": [300.0, 40.0, 380.0, 90.0], "type": "person", "color": "blue",
     "description": "person in a blue jacket crossing"},
]


@pytest.mark.parametrize("text", [
    pytest.param(json.dumps(REGIONS, indent=2), id="array"),
    pytest.param(f"{FENCE}json\n{json.dumps(REGIONS)}\n{FENCE}", id="fenced"),
    pytest.param("Here are the objects:\n" + json.dumps(REGIONS) + "\nThanks", id="prose"),
    pytest.param(json.dumps({"objects": REGIONS}), id="objects-wrapper"),
    pytest.param(json.dumps({"regions": REGIONS}), id="regions-wrapper"),
    pytest.param(json.dumps({"whatever": REGIONS}), id="single-list-wrapper"),
    pytest.param("\n".join(json.dumps(r) for r in REGIONS), id="ndjson"),
    pytest.param(json.dumps([{**{k: v for k, v in r.items() if k != "bbox_2d"},
                              "box_2d": r["bbox_2d"]} for r in REGIONS]), id="box_2d"),
    pytest.param(json.dumps([{**{k: v for k, v in r.items() if k != "bbox_2d"},
                              "bbox": r["bbox_2d"]} for r in REGIONS]), id="bbox"),
    pytest.param("<think>two objects</think>" + json.dumps(REGIONS) + ",", id="think"),
    pytest.param(json.dumps(REGIONS)[:-1], id="truncated-before-last-bracket"),
])
def test_regions(text):
    assert parse_regions(text, 2) == REGIONS_PARSED


def test_regions_strings_stripped_and_long_description_kept():
    long = " ".join(["word"] * 30)
    text = json.dumps([{"bbox_2d": [1, 2, 3, 4], "type": " car ", "color": "\tred\n",
                        "description": f"  {long}  "}])
    assert parse_regions(text, 1) == [
        {"bbox_2d": [1.0, 2.0, 3.0, 4.0], "type": "car", "color": "red", "description": long}]


def test_regions_missing_fields_and_bad_boxes():
    text = json.dumps([
        {"bbox_2d": [1, 2, 3], "type": "car"},
        {"bbox_2d": [[5, 6, 7, 8]], "description": "a sign"},
        {"bbox_2d": ["1", 2, 3, 4], "type": None, "color": 7},
        {"bbox_2d": None},
        {"unrelated": 1},
        "junk",
    ])
    assert parse_regions(text, 4) == [
        {"bbox_2d": None, "type": "car", "color": "", "description": ""},
        {"bbox_2d": [5.0, 6.0, 7.0, 8.0], "type": "", "color": "", "description": "a sign"},
        {"bbox_2d": None, "type": "", "color": "7", "description": ""},
    ]


def test_regions_nan_box_is_none():
    text = '[{"bbox_2d": [NaN, 0, 1, 1], "type": "car", "color": "red", "description": "x"}]'
    assert parse_regions(text, 1)[0]["bbox_2d"] is None


def test_regions_single_object_and_more_than_asked():
    assert parse_regions(json.dumps(REGIONS[0]), 1) == REGIONS_PARSED[:1]
    assert parse_regions(json.dumps(REGIONS), 1) == REGIONS_PARSED  # the caller matches


def test_regions_truncated_mid_array_keeps_complete_entries():
    text = json.dumps(REGIONS)
    cut = text[: text.index("person in a") + 5]
    assert parse_regions(cut, 2) == REGIONS_PARSED[:1]


def test_regions_an_explicit_empty_answer_is_empty_and_unusable_entries_are_not():
    assert parse_regions("[]", 0) == []
    assert parse_regions("[]", 3) == []  # "nothing there": a completion, counted as such
    assert_parse_error(parse_regions, "[1, 2, 3]", 3)


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("I'm sorry, I can't help with that.", id="refusal"),
    pytest.param('{"a": 1, "b": 2}', id="no-list"),
    pytest.param('{"a": [], "b": []}', id="ambiguous-lists"),
    pytest.param('[1, 2, 3]', id="numbers"),
    pytest.param('[{"foo": "bar"}]', id="objects-without-fields"),
])
def test_regions_errors(text):
    assert_parse_error(parse_regions, text, 2)


# --------------------------------------------------------------------------------------------
# parse_caption (referring step 1)
# --------------------------------------------------------------------------------------------

CAPTION_TEXT = "A red car is parked on a quiet street next to a blue bicycle."


@pytest.mark.parametrize("text", [
    pytest.param(CAPTION_TEXT, id="plain"),
    pytest.param(f"  {CAPTION_TEXT}\n\n", id="surrounding-whitespace"),
    pytest.param(f'"{CAPTION_TEXT}"', id="double-quotes"),
    pytest.param(f"“{CAPTION_TEXT}”", id="curly-quotes"),
    pytest.param(f"Caption: {CAPTION_TEXT}", id="label"),
    pytest.param(f"**Caption:** {CAPTION_TEXT}", id="bold-label"),
    pytest.param(f'caption: "{CAPTION_TEXT}"', id="label-and-quotes"),
    pytest.param(f'"Caption: {CAPTION_TEXT}"', id="quotes-around-label"),
    pytest.param(f"{FENCE}\n{CAPTION_TEXT}\n{FENCE}", id="fenced"),
    pytest.param(f"{FENCE}text\n{CAPTION_TEXT}\n{FENCE}", id="fenced-language"),
    pytest.param(f"<think>Let me look.\nA car.</think>\n{CAPTION_TEXT}", id="think"),
    pytest.param("A red car is parked on a quiet\n  street next to\ta blue bicycle.",
                 id="whitespace-collapsed"),
    pytest.param(json.dumps({"caption": CAPTION_TEXT}), id="json-object"),
])
def test_caption(text):
    assert parse_caption(text) == CAPTION_TEXT


def test_caption_keeps_inner_quotes_and_unicode():
    assert parse_caption('A sign reads "STOP" near the café.') == \
        'A sign reads "STOP" near the café.'
    assert parse_caption('"Stop" and "go" signs.') == '"Stop" and "go" signs.'
    assert parse_caption("Ein Hund 🐕 neben einem Café.") == "Ein Hund 🐕 neben einem Café."


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param(" \n\t", id="whitespace"),
    pytest.param('""', id="empty-quotes"),
    pytest.param("Caption:", id="only-label"),
    pytest.param(f"{FENCE}\n{FENCE}", id="empty-fence"),
    pytest.param("<think>A dog on grass.</think>", id="only-thinking"),
    pytest.param("<think>A dog on", id="thinking-cut-off"),
])
def test_caption_errors(text):
    assert_parse_error(parse_caption, text)


# --------------------------------------------------------------------------------------------
# parse_phrase_lines (referring steps 2 and 3)
# --------------------------------------------------------------------------------------------


def test_phrase_lines_reference_format():
    text = ("red cars on the left: [[10, 20, 110, 220], [120, 25, 200, 210]]\n"
            "the person in blue: [[300, 40, 380, 90]]\n")
    assert parse_phrase_lines(text) == [
        ("red cars on the left", [[10.0, 20.0, 110.0, 220.0], [120.0, 25.0, 200.0, 210.0]]),
        ("the person in blue", [[300.0, 40.0, 380.0, 90.0]]),
    ]


@pytest.mark.parametrize(("line", "expected"), [
    pytest.param("- red car: [[1, 2, 3, 4]]", "red car", id="dash-bullet"),
    pytest.param("* red car: [[1, 2, 3, 4]]", "red car", id="star-bullet"),
    pytest.param("• red car: [[1, 2, 3, 4]]", "red car", id="dot-bullet"),
    pytest.param("1. red car: [[1, 2, 3, 4]]", "red car", id="numbered"),
    pytest.param("12) red car: [[1, 2, 3, 4]]", "red car", id="numbered-paren"),
    pytest.param("**red car**: [[1, 2, 3, 4]]", "red car", id="bold"),
    pytest.param("**red car:** [[1, 2, 3, 4]]", "red car", id="bold-with-colon"),
    pytest.param('- **"red car"**: [[1, 2, 3, 4]]', "red car", id="bullet-bold-quotes"),
    pytest.param("'red car': [[1, 2, 3, 4]]", "red car", id="single-quotes"),
    pytest.param("“red car”: [[1, 2, 3, 4]]", "red car", id="curly-quotes"),
    pytest.param("red car: [1, 2, 3, 4]", "red car", id="single-box"),
    pytest.param("red car:[[1,2,3,4]]", "red car", id="no-spaces"),
    pytest.param("red car: [[1, 2, 3, 4],]", "red car", id="trailing-comma"),
    pytest.param("red car: [[1, 2, 3, 4]].", "red car", id="trailing-period"),
    pytest.param("  red car :  [[1, 2, 3, 4]]  ", "red car", id="spaces"),
    pytest.param("Group 1: red car: [[1, 2, 3, 4]]", "Group 1: red car", id="colon-in-phrase"),
    pytest.param("the café’s red 🚗: [[1, 2, 3, 4]]", "the café’s red 🚗", id="unicode"),
])
def test_phrase_lines_tolerated_variants(line, expected):
    assert parse_phrase_lines(line) == [(expected, [[1.0, 2.0, 3.0, 4.0]])]


def test_phrase_lines_fences_blank_and_prose_lines_skipped():
    text = (f"<think>grouping the cars</think>\nHere are the groups:\n\n{FENCE}\n"
            "red cars: [[1, 2, 3, 4], [5, 6, 7, 8]]\n\n"
            "This line mentions [[9, 9, 9, 9]] in prose and more text.\n"
            "Note: all boxes are in 0-1000.\n"
            "blue truck: [[10, 20, 30, 40]]\n"
            f"{FENCE}\nDone.")
    assert parse_phrase_lines(text) == [
        ("red cars", [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]),
        ("blue truck", [[10.0, 20.0, 30.0, 40.0]]),
    ]


def test_phrase_lines_bad_boxes_dropped_then_empty_lines():
    text = ("red cars: [[1, 2, 3], [1, 2, 3, 4, 5], [NaN, 1, 2, 3], [\"1\", 2, 3, 4], "
            "[5, 6, 7, 8]]\n"
            "ghost: [[1, 2, 3]]\n"
            "nothing: []\n"
            "infinite: [[Infinity, 0, 1, 1]]\n"
            "kept: [[0.5, 1.5, 2.5, 3.5]]")
    assert parse_phrase_lines(text) == [
        ("red cars", [[5.0, 6.0, 7.0, 8.0]]),
        ("kept", [[0.5, 1.5, 2.5, 3.5]]),
    ]


def test_phrase_lines_swapped_corners_left_as_written():
    assert parse_phrase_lines("car: [[900, 800, 100, 50]]") == [
        ("car", [[900.0, 800.0, 100.0, 50.0]])]


def test_phrase_lines_repeated_phrases_kept_in_order():
    text = "car: [[1, 2, 3, 4]]\ncar: [[5, 6, 7, 8]]"
    assert parse_phrase_lines(text) == [
        ("car", [[1.0, 2.0, 3.0, 4.0]]), ("car", [[5.0, 6.0, 7.0, 8.0]])]


def test_phrase_lines_truncated_last_line_dropped():
    text = "red car: [[1, 2, 3, 4]]\nblue car: [[5, 6, 7"
    assert parse_phrase_lines(text) == [("red car", [[1.0, 2.0, 3.0, 4.0]])]


def test_phrase_lines_json_object_fallback():
    text = f'{FENCE}json\n{{"red car": [[1, 2, 3, 4]], "blue car": [5, 6, 7, 8], "x": 1}}\n{FENCE}'
    assert parse_phrase_lines(text) == [
        ("red car", [[1.0, 2.0, 3.0, 4.0]]), ("blue car", [[5.0, 6.0, 7.0, 8.0]])]


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("I'm sorry, I can't help with that.", id="refusal"),
    pytest.param("Failed to obtain answer via API.", id="reference-failure-marker"),
    pytest.param("red car: [[1, 2, 3]]\nblue car: []", id="no-valid-box"),
    pytest.param(": [[1, 2, 3, 4]]", id="no-phrase"),
    pytest.param("red car [[1, 2, 3, 4]]", id="no-colon"),
    pytest.param("red car: [[1, 2, 3, 4", id="truncated-only-line"),
    pytest.param("<think>red car: [[1, 2, 3, 4]]</think>", id="only-thinking"),
])
def test_phrase_lines_errors(text):
    assert_parse_error(parse_phrase_lines, text)


# --------------------------------------------------------------------------------------------
# Any text at all: only ParseError escapes, and results are JSON-serialisable
# --------------------------------------------------------------------------------------------

JSON_TOKENS = [*'{}[]",:\n 0123456789.-eE', "true", "NaN", "</think>", "<think>", "```", "a", "é"]
json_ish_text = st.lists(st.sampled_from(JSON_TOKENS), max_size=80).map("".join)


@given(st.one_of(st.text(max_size=200), json_ish_text))
def test_all_parsers_raise_only_parse_error(text):
    parsers = [
        extract_json,
        lambda t: parse_extraction(t, "a caption"),
        lambda t: parse_grounding(t, ["a", "0"]),
        lambda t: parse_regions(t, 1),
        parse_caption,
        parse_phrase_lines,
    ]
    for parse in parsers:
        try:
            got = parse(text)
        except ParseError:
            continue
        if parse is not extract_json:
            json.dumps(got)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_json_values, max_size=4) | st.dictionaries(st.text(max_size=6), _json_values,
                                                            max_size=4),
       st.booleans())
def test_the_fast_path_agrees_with_the_tolerant_scanner(value, fenced):
    from auto_label.pipelines.answers import _pick, _scan

    text = json.dumps(value)
    if fenced:
        text = f"```json\n{text}\n```"
    assert extract_json(text) == value
    body = text.removeprefix("```json\n").removesuffix("\n```")
    assert _pick(_scan(body), body) == value
