"""The simulator's own box conventions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auto_label.sim import CONVENTIONS, decode_box, encode_box
from auto_label.sim.boxes import iou


def test_known_values():
    box = (64, 48, 320, 240)
    assert encode_box(box, "xyxy_pixel", 640, 480) == [64, 48, 320, 240]
    assert encode_box(box, "xyxy_1000", 640, 480) == [100, 100, 500, 500]
    assert encode_box(box, "yxyx_1000", 640, 480) == [100, 100, 500, 500]
    assert encode_box((0, 48, 640, 480), "yxyx_1000", 640, 480) == [100, 0, 1000, 1000]
    assert decode_box([100, 0, 1000, 1000], "yxyx_1000", 640, 480) == (0, 48, 640, 480)
    assert encode_box((0, 0, 640, 480), "xyxy_pixel", 640, 480) == [0, 0, 640, 480]


def test_unknown_convention_and_bad_boxes():
    with pytest.raises(ValueError):
        encode_box((0, 0, 1, 1), "cxcywh", 10, 10)
    with pytest.raises(ValueError):
        decode_box([1, 2, 3], "xyxy_pixel", 10, 10)
    with pytest.raises(ValueError):
        decode_box(["a", 2, 3, 4], "xyxy_pixel", 10, 10)


@given(
    w=st.integers(16, 4000), h=st.integers(16, 4000),
    fx=st.tuples(st.floats(0, 1), st.floats(0, 1)), fy=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    convention=st.sampled_from(CONVENTIONS),
)
def test_round_trip_within_rounding(w, h, fx, fy, convention):
    x1, x2 = sorted(round(f * w) for f in fx)
    y1, y2 = sorted(round(f * h) for f in fy)
    back = decode_box(encode_box((x1, y1, x2, y2), convention, w, h), convention, w, h)
    tol_x = 0.0 if convention == "xyxy_pixel" else w / 2000 + 1e-9
    tol_y = 0.0 if convention == "xyxy_pixel" else h / 2000 + 1e-9
    assert abs(back[0] - x1) <= tol_x and abs(back[2] - x2) <= tol_x
    assert abs(back[1] - y1) <= tol_y and abs(back[3] - y2) <= tol_y


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
