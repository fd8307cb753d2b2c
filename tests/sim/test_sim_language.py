"""Caption cleaning, phrase finding and phrase reading of the simulator."""

from __future__ import annotations

import pytest

from auto_label.sim.language import clean_caption, find_expressions, parse_query, position_phrase


@pytest.mark.parametrize(("raw", "clean"), [
    ("In the image we can see a red circle, two blue squares and a green triangle.",
     "A red circle, two blue squares and a green triangle."),
    ("There are two cyan squares in the image.", "Two cyan squares."),
    ("There is an orange rectangle in the image.", "An orange rectangle."),
    ("We can see a black triangle.", "A black triangle."),
    ("in this picture there are two red circles and a blue square",
     "Two red circles and a blue square."),
    ("I can see a purple circle in this photo.", "A purple circle."),
    ("A yellow square and a green circle.", "A yellow square and a green circle."),
])
def test_clean_caption(raw, clean):
    assert clean_caption(raw) == clean


def test_find_expressions_spans_are_exact():
    text = "Two blue squares, an orange circle and a red triangle near a box."
    found = find_expressions(text)
    assert [e.text for e in found] == ["Two blue squares", "an orange circle", "a red triangle"]
    for e in found:
        assert text[e.start:e.end] == e.text
    assert [e.noun for e in found] == ["squares", "circle", "triangle"]
    assert [(e.color, e.shape) for e in found] == [
        ("blue", "square"), ("orange", "circle"), ("red", "triangle")]


def test_parse_query():
    q = parse_query("the two blue squares on the left")
    assert q.colors == {"blue"} and q.shapes == {"square"}
    assert q.matches("blue", "square") and not q.matches("red", "square")
    generic = parse_query("the red shapes")
    assert generic.colors == {"red"} and not generic.shapes
    assert generic.matches("red", "circle")
    assert not parse_query("something nice").names_something


def test_position_phrase():
    assert position_phrase((0, 0, 10, 10), 300, 300) == "in the top left"
    assert position_phrase((140, 140, 160, 160), 300, 300) == "in the center"
    assert position_phrase((280, 140, 300, 160), 300, 300) == "on the right"
    assert position_phrase((140, 280, 160, 300), 300, 300) == "at the bottom"
