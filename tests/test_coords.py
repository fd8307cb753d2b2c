"""Box conventions: table tests per convention, and round-trip properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auto_label.boxes import (
    CONVENTIONS,
    finalize_box,
    from_pixels,
    from_pixels_exact,
    grid_unit,
    iou,
    to_pixels,
)

# --------------------------------------------------------------------------------------------
# to_pixels
# --------------------------------------------------------------------------------------------

TO_PIXELS_CASES = [
    # (values, convention, sent_size, original_size, expected)
    pytest.param([10, 20, 110, 220], "xyxy_pixel", (640, 480), (640, 480), (10, 20, 110, 220),
                 id="pixel-same-size"),
    pytest.param([100, 50, 500, 700], "xyxy_pixel", (1000, 750), (4000, 3000),
                 (400, 200, 2000, 2800), id="pixel-downscaled-x4"),
    pytest.param([0, 0, 500, 333], "xyxy_pixel", (500, 333), (1001, 667), (0, 0, 1001, 667),
                 id="pixel-downscaled-odd-full-image"),
    pytest.param([250, 0, 500, 333], "xyxy_pixel", (500, 333), (1001, 667),
                 (500.5, 0, 1001, 667), id="pixel-downscaled-odd-half"),
    pytest.param([100, 100, 300, 200], "xyxy_pixel", (1280, 720), (640, 360),
                 (50, 50, 150, 100), id="pixel-upscaled"),
    pytest.param([0, 0, 1000, 1000], "xyxy_1000", (1920, 1080), (1920, 1080),
                 (0, 0, 1920, 1080), id="xyxy1000-full"),
    pytest.param([250, 500, 750, 1000], "xyxy_1000", (1920, 1080), (1920, 1080),
                 (480, 540, 1440, 1080), id="xyxy1000"),
    pytest.param([250, 500, 750, 1000], "xyxy_1000", (960, 540), (1920, 1080),
                 (480, 540, 1440, 1080), id="xyxy1000-downscaled-same-result"),
    pytest.param([333, 0, 667, 1000], "xyxy_1000", (1000, 1000), (3000, 3000),
                 (999, 0, 2001, 3000), id="xyxy1000-exact-ints"),
    pytest.param([100, 200, 500, 800], "yxyx_1000", (1920, 1080), (1920, 1080),
                 (384, 108, 1536, 540), id="yxyx1000"),
    pytest.param([100, 200, 500, 800], "yxyx_1000", (768, 432), (1920, 1080),
                 (384, 108, 1536, 540), id="yxyx1000-downscaled-same-result"),
    pytest.param([0, 0, 1000, 1000], "yxyx_1000", (640, 480), (4032, 3024),
                 (0, 0, 4032, 3024), id="yxyx1000-full"),
    pytest.param([750, 1000, 250, 500], "xyxy_1000", (1920, 1080), (1920, 1080),
                 (480, 540, 1440, 1080), id="swapped-corners-reordered"),
    pytest.param([500, 800, 100, 200], "yxyx_1000", (1920, 1080), (1920, 1080),
                 (384, 108, 1536, 540), id="yxyx-swapped-corners-reordered"),
    pytest.param([10.5, 20.25, 30.75, 40.0], "xyxy_pixel", (100, 100), (200, 100),
                 (21, 20.25, 61.5, 40), id="pixel-floats"),
    pytest.param([-10, -5, 1100, 1010], "xyxy_1000", (1000, 1000), (1000, 2000),
                 (-10, -10, 1100, 2020), id="out-of-range-not-clipped"),
]


@pytest.mark.parametrize(("values", "convention", "sent", "original", "expected"),
                         TO_PIXELS_CASES)
def test_to_pixels(values, convention, sent, original, expected):
    got = to_pixels(values, convention, sent, original)
    assert isinstance(got, tuple)
    assert all(isinstance(v, float) for v in got)
    assert got == pytest.approx(expected, abs=1e-9)


def test_to_pixels_exact_for_whole_pixels():
    # multiply-then-divide: no 0.1-style float drift on values that land on whole pixels
    assert to_pixels([1, 3, 7, 9], "xyxy_1000", (10, 10), (1000, 3000)) == (1.0, 9.0, 7.0, 27.0)
    assert to_pixels([1, 1, 2, 2], "xyxy_pixel", (3, 7), (9, 21)) == (3.0, 3.0, 6.0, 6.0)


@pytest.mark.parametrize("values", [
    [1, 2, 3], [1, 2, 3, 4, 5], [], [float("nan"), 0, 1, 1], [0, 0, float("inf"), 1],
    [0, 0, 1, -math.inf], ["1", 2, 3, 4], [None, 2, 3, 4], [True, 0, 1, 1], "abcd", 1234,
    [10**400, 0, 1, 1],
])
def test_to_pixels_rejects_bad_boxes(values):
    with pytest.raises(ValueError):
        to_pixels(values, "xyxy_1000", (100, 100), (100, 100))


@pytest.mark.parametrize(("convention", "sent", "original"), [
    ("xyxy_norm", (100, 100), (100, 100)),
    ("", (100, 100), (100, 100)),
    ("xyxy_pixel", (0, 100), (100, 100)),
    ("xyxy_pixel", (100, 100), (100, -1)),
    ("xyxy_1000", (100, 100), (100.0, 100)),
    ("xyxy_1000", (100, 100), (100,)),
])
def test_to_pixels_rejects_bad_convention_or_size(convention, sent, original):
    with pytest.raises(ValueError):
        to_pixels([0, 0, 1, 1], convention, sent, original)


# --------------------------------------------------------------------------------------------
# from_pixels
# --------------------------------------------------------------------------------------------

FROM_PIXELS_CASES = [
    pytest.param([400, 200, 2000, 2800], "xyxy_pixel", (1000, 750), (4000, 3000),
                 [100, 50, 500, 700], id="pixel-downscaled"),
    pytest.param([0, 0, 1001, 667], "xyxy_pixel", (500, 333), (1001, 667), [0, 0, 500, 333],
                 id="pixel-full-odd"),
    pytest.param([480, 540, 1440, 1080], "xyxy_1000", (960, 540), (1920, 1080),
                 [250, 500, 750, 1000], id="xyxy1000"),
    pytest.param([384, 108, 1536, 540], "yxyx_1000", (960, 540), (1920, 1080),
                 [100, 200, 500, 800], id="yxyx1000"),
    pytest.param([1536, 540, 384, 108], "yxyx_1000", (960, 540), (1920, 1080),
                 [100, 200, 500, 800], id="swapped-reordered"),
    pytest.param([-50, -10, 2500, 1200], "xyxy_1000", (960, 540), (1920, 1080),
                 [0, 0, 1000, 1000], id="clamped-normalized"),
    pytest.param([-50, -10, 2500, 1200], "xyxy_pixel", (960, 540), (1920, 1080),
                 [0, 0, 960, 540], id="clamped-pixel"),
    pytest.param([1, 3, 5, 7], "xyxy_pixel", (5, 5), (10, 10), [1, 2, 3, 4],
                 id="round-half-up"),
]


@pytest.mark.parametrize(("box", "convention", "sent", "original", "expected"),
                         FROM_PIXELS_CASES)
def test_from_pixels(box, convention, sent, original, expected):
    got = from_pixels(box, convention, sent, original)
    assert got == expected
    assert all(type(v) is int for v in got)


def test_from_pixels_exact_is_unrounded_and_unclipped():
    assert from_pixels_exact([1, 3, 5, 7], "xyxy_pixel", (5, 5), (10, 10)) == (0.5, 1.5, 2.5, 3.5)
    assert from_pixels_exact([-10, 0, 20, 10], "yxyx_1000", (7, 7), (10, 10)) == (
        0.0, -1000.0, 1000.0, 2000.0)


def test_from_pixels_rejects_bad_input():
    with pytest.raises(ValueError):
        from_pixels([0, 0, 1], "xyxy_1000", (10, 10), (10, 10))
    with pytest.raises(ValueError):
        from_pixels([0, 0, 1, float("nan")], "xyxy_1000", (10, 10), (10, 10))
    with pytest.raises(ValueError):
        from_pixels([0, 0, 1, 1], "pixels", (10, 10), (10, 10))


def test_grid_unit():
    assert grid_unit("xyxy_pixel", (1000, 750), (4000, 3000)) == (4.0, 4.0)
    assert grid_unit("xyxy_1000", (1000, 750), (4000, 3000)) == (4.0, 3.0)
    assert grid_unit("yxyx_1000", (10, 10), (500, 2000)) == (0.5, 2.0)


# --------------------------------------------------------------------------------------------
# finalize_box
# --------------------------------------------------------------------------------------------

FINALIZE_CASES = [
    pytest.param([0.4, 0.5, 99.5, 100.49], 200, 200, [0, 1, 100, 100], id="round-half-up"),
    pytest.param([0, 0, 640, 480], 640, 480, [0, 0, 640, 480], id="full-image"),
    pytest.param([-20, -0.2, 700.7, 481], 640, 480, [0, 0, 640, 480], id="clipped"),
    pytest.param([10, 10, 10.4, 50], 640, 480, None, id="zero-width-after-rounding"),
    pytest.param([700, 10, 800, 50], 640, 480, None, id="entirely-right-of-image"),
    pytest.param([10, -50, 50, -1], 640, 480, None, id="entirely-above-image"),
    pytest.param([50, 10, 10, 50], 640, 480, None, id="swapped-x"),
    pytest.param([10, 50, 50, 10], 640, 480, None, id="swapped-y"),
    pytest.param([639.4, 479.4, 640, 480], 640, 480, [639, 479, 640, 480], id="last-pixel"),
]


@pytest.mark.parametrize(("box", "width", "height", "expected"), FINALIZE_CASES)
def test_finalize_box(box, width, height, expected):
    got = finalize_box(box, width, height)
    assert got == expected
    if got is not None:
        assert all(type(v) is int for v in got)


@pytest.mark.parametrize(("box", "width", "height"), [
    ([0, 0, 1], 10, 10), ([0, 0, 1, float("nan")], 10, 10), ([0, 0, 1, 1], 0, 10),
    ([0, 0, 1, 1], 10, -3),
])
def test_finalize_box_rejects_bad_input(box, width, height):
    with pytest.raises(ValueError):
        finalize_box(box, width, height)


# --------------------------------------------------------------------------------------------
# iou
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "expected"), [
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
    ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching edges
    ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
    ([0, 0, 10, 10], [2, 2, 8, 8], 0.36),
    ([0, 0, 0, 10], [0, 0, 0, 10], 0.0),  # no area
    ([10, 10, 0, 0], [0, 0, 10, 10], 0.0),  # swapped corners have no area
])
def test_iou(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


def test_iou_rejects_bad_input():
    with pytest.raises(ValueError):
        iou([0, 0, 1], [0, 0, 1, 1])
    with pytest.raises(ValueError):
        iou([0, 0, 1, 1], [0, 0, 1, math.inf])


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


def sent_size_for(original: tuple[int, int], longest: int) -> tuple[int, int]:
    """What a backend sends: the longest side scaled to `longest`, each side rounded, min 1."""
    ow, oh = original
    scale = longest / max(ow, oh)
    return max(1, round(ow * scale)), max(1, round(oh * scale))


@st.composite
def scenes(draw, float_boxes: bool = False):
    ow = draw(st.integers(1, 8000))
    oh = draw(st.integers(1, 8000))
    sent = sent_size_for((ow, oh), draw(st.integers(1, 4096)))
    convention = draw(st.sampled_from(CONVENTIONS))
    if float_boxes:
        ow, oh = max(ow, 2), max(oh, 2)
        x1 = draw(st.floats(0, ow - 2))
        y1 = draw(st.floats(0, oh - 2))
        x2 = draw(st.floats(x1 + 2, ow))
        y2 = draw(st.floats(y1 + 2, oh))
    else:
        x1 = draw(st.integers(0, ow - 1))
        y1 = draw(st.integers(0, oh - 1))
        x2 = draw(st.integers(x1 + 1, ow))
        y2 = draw(st.integers(y1 + 1, oh))
    return (x1, y1, x2, y2), convention, sent, (ow, oh)


@given(scenes())
def test_float_round_trip_of_integer_boxes_is_exact(scene):
    box, convention, sent, original = scene
    written = from_pixels_exact(box, convention, sent, original)
    back = finalize_box(to_pixels(written, convention, sent, original), *original)
    assert back == list(box)


@given(scenes(float_boxes=True))
def test_float_round_trip_within_one_pixel(scene):
    box, convention, sent, original = scene
    written = from_pixels_exact(box, convention, sent, original)
    back = finalize_box(to_pixels(written, convention, sent, original), *original)
    assert back is not None
    assert all(abs(b - v) <= 1 for b, v in zip(back, box, strict=True))


@given(scenes())
def test_integer_round_trip_within_one_grid_unit(scene):
    box, convention, sent, original = scene
    written = from_pixels(box, convention, sent, original)
    assert all(type(v) is int and v >= 0 for v in written)
    limit = (*sent, *sent) if convention == "xyxy_pixel" else (1000,) * 4
    assert all(v <= hi for v, hi in zip(written, limit, strict=True))

    ux, uy = grid_unit(convention, sent, original)
    back = finalize_box(to_pixels(written, convention, sent, original), *original)
    x1, y1, x2, y2 = box
    if back is None:
        # only a box about one grid unit wide can collapse when written as ints
        assert x2 - x1 < ux + 2 or y2 - y1 < uy + 2
        return
    tolerances = (ux + 1, uy + 1, ux + 1, uy + 1)
    assert all(abs(b - v) <= t + 1e-9 for b, v, t in zip(back, box, tolerances, strict=True))


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=4, max_size=4),
    st.integers(1, 10_000),
    st.integers(1, 10_000),
)
def test_finalize_box_is_inside_the_image_or_none(box, width, height):
    got = finalize_box(box, width, height)
    if got is None:
        return
    x1, y1, x2, y2 = got
    assert all(type(v) is int for v in got)
    assert 0 <= x1 < x2 <= width
    assert 0 <= y1 < y2 <= height


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=4, max_size=4),
    st.sampled_from(CONVENTIONS),
    st.tuples(st.integers(1, 5000), st.integers(1, 5000)),
    st.tuples(st.integers(1, 5000), st.integers(1, 5000)),
)
def test_to_pixels_orders_corners(values, convention, sent, original):
    x1, y1, x2, y2 = to_pixels(values, convention, sent, original)
    assert x1 <= x2
    assert y1 <= y2


@given(
    st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=4, max_size=4),
    st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=4, max_size=4),
)
def test_iou_is_symmetric_and_bounded(a, b):
    value = iou(a, b)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(iou(b, a))
