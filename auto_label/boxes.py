"""Boxes: what a box is, the coordinate conventions of VLMs with exact conversion to and from
pixels, IoU and matching. Shared vocabulary of every layer; imports nothing of ours.

A model writes boxes in its own convention, relative to the image *as sent* to it (which may be a
downscaled copy of the original). Everything we store is in pixels of the ORIGINAL image, as
``[x1, y1, x2, y2]`` with exclusive right/bottom edges (a full-image box is ``[0, 0, W, H]``).

Conventions:

- ``xyxy_pixel``: ``[x1, y1, x2, y2]`` in pixels of the image as sent, of size ``sent_size``
  (Qwen2.5-VL).
- ``xyxy_1000``: ``[x1, y1, x2, y2]`` normalized to 0-1000 (Qwen3-VL).
- ``yxyx_1000``: ``[y_min, x_min, y_max, x_max]`` normalized to 0-1000 (Gemini's ``box_2d``).

Pixel boxes scale by ``original / sent`` per axis; normalized boxes scale by ``original / 1000``
per axis, whatever the sent size. Each conversion multiplies before it divides, so integer inputs
that land on whole pixels convert exactly. Sizes are ``(width, height)``.

Pure functions, no I/O. Invalid input (wrong length, non-numbers, NaN or infinity, unknown
convention, non-positive sizes) raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Final, Literal, cast

Convention = Literal["xyxy_pixel", "xyxy_1000", "yxyx_1000"]
CONVENTIONS: Final[tuple[Convention, ...]] = ("xyxy_pixel", "xyxy_1000", "yxyx_1000")

NORMALIZED_RANGE: Final[int] = 1000
"""The extent of the normalized conventions: 0 is the left/top edge, 1000 the right/bottom."""

Box4 = tuple[float, float, float, float]


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown box convention {convention!r}; expected one of {CONVENTIONS}")


def as_box(value: object) -> Box4 | None:
    """Four finite numbers (not bools) as floats, else None: the one test of "is this a box"
    used for model answers, label files, input annotations and ground truth alike."""
    if type(value) is not list and type(value) is not tuple and (
            isinstance(value, str | bytes) or not isinstance(value, Sequence)):
        return None
    items = cast(Sequence[object], value)
    if len(items) != 4:
        return None
    out: list[float] = []
    for v in items:
        if type(v) is not float and type(v) is not int and (  # plain numbers skip the ABC check
                isinstance(v, bool) or not isinstance(v, Real)):
            return None
        try:
            f = float(cast(float, v))
        except OverflowError:
            return None
        if not math.isfinite(f):
            return None
        out.append(f)
    return out[0], out[1], out[2], out[3]


def is_ordered(box: Sequence[float]) -> bool:
    """``x1 < x2`` and ``y1 < y2``: the box has an area."""
    return box[0] < box[2] and box[1] < box[3]


def _four_numbers(values: Sequence[float], what: str = "box") -> Box4:
    """The four values as finite floats, or ValueError naming `what`."""
    box = as_box(values)
    if box is None:
        raise ValueError(f"{what} must be a sequence of 4 finite numbers, got {values!r}")
    return box


def _check_size(size: tuple[int, int], what: str) -> tuple[int, int]:
    if type(size) is tuple and len(size) == 2 and type(size[0]) is int and \
            type(size[1]) is int and size[0] > 0 and size[1] > 0:
        return size
    if isinstance(size, str | bytes) or not isinstance(size, Sequence) or len(size) != 2:
        raise ValueError(f"{what} must be a (width, height) pair, got {size!r}")
    w, h = size
    for v in (w, h):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{what} must be two positive ints, got {size!r}")
    return w, h


def _scales(convention: Convention, sent_size: tuple[int, int],
            original_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x numerator, x denominator, y numerator, y denominator): original = value * num / den."""
    _check_convention(convention)
    ow, oh = _check_size(original_size, "original_size")
    sw, sh = _check_size(sent_size, "sent_size")
    if convention == "xyxy_pixel":
        return ow, sw, oh, sh
    return ow, NORMALIZED_RANGE, oh, NORMALIZED_RANGE


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


def _clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


def grid_unit(convention: Convention, sent_size: tuple[int, int],
              original_size: tuple[int, int]) -> tuple[float, float]:
    """Original-image pixels per unit of `convention`, along x and along y.

    One step of the integers a model writes moves a box edge by this much in the original image:
    ``original / sent`` for pixel boxes, ``original / 1000`` for normalized ones.
    """
    nx, dx, ny, dy = _scales(convention, sent_size, original_size)
    return nx / dx, ny / dy


def to_pixels(values: Sequence[float], convention: Convention, sent_size: tuple[int, int],
              original_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A box as the model wrote it -> float ``(x1, y1, x2, y2)`` in pixels of the original image.

    Swapped corners are reordered (min, max). Nothing is rounded or clipped; see `finalize_box`.
    """
    a, b, c, d = _four_numbers(values)
    nx, dx, ny, dy = _scales(convention, sent_size, original_size)
    if convention == "yxyx_1000":
        x1, y1, x2, y2 = b, a, d, c
    else:
        x1, y1, x2, y2 = a, b, c, d
    px1, px2 = x1 * nx / dx, x2 * nx / dx
    py1, py2 = y1 * ny / dy, y2 * ny / dy
    return min(px1, px2), min(py1, py2), max(px1, px2), max(py1, py2)


def from_pixels_exact(box: Sequence[float], convention: Convention, sent_size: tuple[int, int],
                      original_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Pixel ``[x1, y1, x2, y2]`` of the original image -> float values in `convention`, unrounded.

    The exact inverse of `to_pixels` (up to float rounding) for boxes with ordered corners;
    swapped corners are reordered first. Nothing is clipped.
    """
    bx1, by1, bx2, by2 = _four_numbers(box)
    nx, dx, ny, dy = _scales(convention, sent_size, original_size)
    x1, x2 = min(bx1, bx2) * dx / nx, max(bx1, bx2) * dx / nx
    y1, y2 = min(by1, by2) * dy / ny, max(by1, by2) * dy / ny
    if convention == "yxyx_1000":
        return y1, x1, y2, x2
    return x1, y1, x2, y2


def from_pixels(box: Sequence[float], convention: Convention, sent_size: tuple[int, int],
                original_size: tuple[int, int]) -> list[int]:
    """Pixel ``[x1, y1, x2, y2]`` of the original image -> the ints a model of `convention` writes.

    For prompts that list boxes. Values are rounded half up and clamped to the convention's range
    (``[0, sent_w] x [0, sent_h]`` for pixels, ``[0, 1000]`` for normalized), so a box that pokes
    out of the image is shown as the model would see it.
    """
    values = from_pixels_exact(box, convention, sent_size, original_size)
    if convention == "xyxy_pixel":
        sw, sh = sent_size
        limits = (sw, sh, sw, sh)
    else:
        limits = (NORMALIZED_RANGE,) * 4
    return [_clamp(_round_half_up(v), 0, hi) for v, hi in zip(values, limits, strict=True)]


def finalize_box(box: Sequence[float], width: int, height: int) -> list[int] | None:
    """A float pixel box -> the int ``[x1, y1, x2, y2]`` we store, or None if nothing is left.

    Rounds half up, clips to ``[0, width] x [0, height]`` and requires ``x1 < x2`` and ``y1 < y2``
    (a box with swapped corners gives None; `to_pixels` already orders them).
    """
    x1, y1, x2, y2 = _four_numbers(box)
    w, h = _check_size((width, height), "image size")
    ix1, ix2 = _clamp(_round_half_up(x1), 0, w), _clamp(_round_half_up(x2), 0, w)
    iy1, iy2 = _clamp(_round_half_up(y1), 0, h), _clamp(_round_half_up(y2), 0, h)
    if ix1 < ix2 and iy1 < iy2:
        return [ix1, iy1, ix2, iy2]
    return None


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes; 0.0 when the union is empty.

    A box with swapped corners has no area.
    """
    ax1, ay1, ax2, ay2 = _four_numbers(a, "first box")
    bx1, by1, bx2, by2 = _four_numbers(b, "second box")
    area_a = max(0.0, ax2 - ax1) * max(0.0, ay2 - ay1)
    area_b = max(0.0, bx2 - bx1) * max(0.0, by2 - by1)
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih if area_a > 0 and area_b > 0 else 0.0
    union = area_a + area_b - inter
    if union <= 0 or not math.isfinite(union):
        return 0.0
    return max(0.0, min(1.0, inter / union))


def best_match(box: Sequence[float], candidates: Sequence[Sequence[float]],
               threshold: float) -> tuple[int, float] | None:
    """(index, IoU) of the candidate `box` overlaps most, when that IoU is at least `threshold`.

    Boxes are ``[x1, y1, x2, y2]`` in the same frame (only the first 4 values of a candidate are
    read, so ``[x1, y1, x2, y2, class]`` rows work). Ties go to the later candidate.
    """
    best = max(((iou(box, c[:4]), i) for i, c in enumerate(candidates)), default=(0.0, -1))
    return (best[1], best[0]) if best[1] >= 0 and best[0] >= threshold else None


def greedy_matches(predicted: Sequence[Sequence[float]], truth: Sequence[Sequence[float]],
                   threshold: float) -> list[tuple[int, int, float]]:
    """One-to-one (predicted index, truth index, IoU) pairs, taken greedily by descending IoU,
    each at least `threshold` (the matching of detection evaluations such as COCO's)."""
    pairs = sorted(((iou(p, t), i, j) for i, p in enumerate(predicted)
                    for j, t in enumerate(truth)), reverse=True)
    used_p: set[int] = set()
    used_t: set[int] = set()
    matches: list[tuple[int, int, float]] = []
    for score, i, j in pairs:
        if score < threshold:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            matches.append((i, j, score))
    return matches
