"""Boxes as the VLM SIMULATOR reads and writes them (its own code, not shared with the client).

For tests and demos only. The simulator answers in one trained convention per protocol, whatever
the prompt says, exactly like a real model:

- ``xyxy_pixel``: [x1, y1, x2, y2] in pixels of the image as the model sees it (exclusive
  right/bottom): as received, or with `SimConfig.model_frame="qwen2.5_smart_resize"` as
  Qwen2.5-VL's processor resized it (frames.py has the sources),
- ``xyxy_1000``: [x1, y1, x2, y2] normalised to 0-1000: Qwen3-VL's convention. Source: the
  Qwen3-VL grounding cookbook, QwenLM/Qwen3-VL cookbooks/2d_grounding.ipynb
  (https://github.com/QwenLM/Qwen3-VL/blob/main/cookbooks/2d_grounding.ipynb): "Qwen3-VL's
  default coordinate system has been changed from the absolute coordinates used in Qwen2.5-VL
  to relative coordinates ranging from 0 to 1000", quoted in QwenLM/Qwen3-VL issue #1741
  (https://github.com/QwenLM/Qwen3-VL/issues/1741; which notes Alibaba Cloud's page says 0-999,
  a difference of one part in a thousand that the simulator does not play),
- ``yxyx_1000``: [y_min, x_min, y_max, x_max] normalised to 0-1000: Gemini's ``box_2d``
  (https://ai.google.dev/gemini-api/docs/image-understanding, object detection).

Normalised boxes are relative to the whole image, so they come out the same whatever frame the
model sees it in (after the EXIF orientation, they are relative to the upright picture).

Boxes it writes are ints. Internally every box is pixel xyxy with exclusive right/bottom edges.
`Context` is an analysed image seen through one convention, as every task answer needs it; the
line format `<phrase>: [[a, b, c, d], ...]` of the referring group and verify steps lives here too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .vision import Analysis, Component

# The table above: pixels (Qwen2.5-VL), 0-1000 xyxy (Qwen3-VL), 0-1000 yxyx (Gemini box_2d).
CONVENTIONS: tuple[str, ...] = ("xyxy_pixel", "xyxy_1000", "yxyx_1000")

PixelBox = tuple[float, float, float, float]


def check_convention(convention: str) -> str:
    """`convention`, or ValueError when the simulator does not know it."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown box convention {convention!r}; expected one of {CONVENTIONS}")
    return convention


def _norm(value: float, size: int) -> int:
    return max(0, min(1000, round(value * 1000 / size)))


def encode_box(box: Sequence[float], convention: str, width: int, height: int) -> list[int]:
    """A pixel box [x1, y1, x2, y2] written in `convention` for an image of width x height."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if convention == "xyxy_pixel":
        return [round(x1), round(y1), round(x2), round(y2)]
    if convention == "xyxy_1000":
        return [_norm(x1, width), _norm(y1, height), _norm(x2, width), _norm(y2, height)]
    if convention == "yxyx_1000":
        return [_norm(y1, height), _norm(x1, width), _norm(y2, height), _norm(x2, width)]
    raise ValueError(f"unknown box convention {convention!r}")


def decode_box(box: Sequence[float], convention: str, width: int, height: int) -> PixelBox:
    """A box written in `convention` back to pixel [x1, y1, x2, y2] (floats, sorted corners).

    Raises ValueError when `box` is not four numbers.
    """
    if isinstance(box, (str, bytes)) or len(box) != 4:
        raise ValueError(f"a box is four numbers, got {box!r}")
    try:
        a, b, c, d = (float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a box is four numbers, got {box!r}") from exc
    if convention == "xyxy_pixel":
        x1, y1, x2, y2 = a, b, c, d
    elif convention == "xyxy_1000":
        x1, y1, x2, y2 = a * width / 1000, b * height / 1000, c * width / 1000, d * height / 1000
    elif convention == "yxyx_1000":
        x1, y1, x2, y2 = b * width / 1000, a * height / 1000, d * width / 1000, c * height / 1000
    else:
        raise ValueError(f"unknown box convention {convention!r}")
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two pixel xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Context:
    """The received image as analysed, the convention to write boxes in, and noise settings."""

    analysis: Analysis
    convention: str
    seed: int = 0
    group_noise: float = 0.0
    extra_box: float = 0.0

    @property
    def width(self) -> int:
        return self.analysis.width

    @property
    def height(self) -> int:
        return self.analysis.height

    def encode(self, box: Sequence[float]) -> list[int]:
        """A pixel box in the configured convention."""
        return encode_box(box, self.convention, self.width, self.height)

    def decode(self, box: object) -> PixelBox:
        """A box in the configured convention as pixels; ValueError if it is not a box."""
        if not isinstance(box, (list, tuple)):
            raise ValueError(f"not a box: {box!r}")
        return decode_box(box, self.convention, self.width, self.height)

    def best(self, box: Sequence[float]) -> tuple[Component | None, float]:
        """The component that overlaps a pixel box most, with its IoU (None, 0.0 if none)."""
        best: Component | None = None
        best_iou = 0.0
        for comp in self.analysis.components:
            score = iou(comp.bbox, box)
            if score > best_iou:
                best, best_iou = comp, score
        return best, best_iou


def format_line(phrase: str, boxes: Sequence[Sequence[int]]) -> str:
    """`<phrase>: [[a, b, c, d], ...]`"""
    return f"{phrase}: {json.dumps([list(b) for b in boxes])}"


def parse_box_line(line: str) -> tuple[str, list[list[float]]] | None:
    """`<phrase>: [[a, b, c, d], ...]` -> (phrase, boxes); None when the line is not that.

    The phrase may itself hold colons: the boxes start at the first ": [" whose rest parses.
    """
    for match in re.finditer(r":\s*(?=\[)", line):
        try:
            boxes = json.loads(line[match.end():])
        except json.JSONDecodeError:
            continue
        if isinstance(boxes, list) and all(isinstance(b, list) for b in boxes):
            return line[:match.start()].strip(), boxes
    return None
