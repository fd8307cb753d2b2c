"""The eyes of the VLM SIMULATOR: find the coloured shapes of a synthetic scene from its pixels.

For tests and demos only; it knows nothing but the simulator's own palette and shapes. The image
the simulator is sent (PNG or JPEG, maybe downscaled by the client) is mapped to the nearest
palette entry in one C-level pass (`quantize` onto a fixed palette holding the background, the
colours and, as "junk", each colour's half blend with the background, so anti-aliased, resampled
or JPEG edge pixels never read as a third colour). Each colour's mask is split into components by
a recursive XY-cut on its projections (BOX reductions to 1-pixel rows/columns), boxed with
`getbbox()` (pixel boxes, exclusive right/bottom edges) and classified by fill ratio and aspect:
square and rectangle fill ~1.0, circle ~0.785, triangle ~0.5. The image analysed is the one the
simulated model sees (frames.py: EXIF orientation applied, maybe resized to the model's frame).
Results are cached by sha256 of the received bytes and that preparation.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image

from .boxes import iou
from .frames import View, decode
from .language import BACKGROUND, COLORS, PALETTE

Box = tuple[int, int, int, int]

_N = len(COLORS)
_JUNK_ALPHA = 0.5
_MIN_FILL = 0.3  # below this a "component" is a ring of edge pixels, not a shape
_CACHE_SIZE = 512
_MAX_CUTS = 400  # XY-cut calls per colour; a scene needs a few dozen


@dataclass(frozen=True)
class Component:
    """One shape seen in the image: colour, shape and pixel box (exclusive right/bottom)."""

    color: str
    shape: str
    bbox: Box
    pixels: int = 0

    @property
    def area(self) -> int:
        return (self.bbox[2] - self.bbox[0]) * (self.bbox[3] - self.bbox[1])


@dataclass(frozen=True)
class Analysis:
    """What the simulator sees in one received image."""

    sha256: str
    width: int  # of the image as the model sees it (oriented, maybe resized): the model's frame
    height: int
    components: tuple[Component, ...]
    received_size: tuple[int, int] | None = None  # decoded as received, before orientation
    orientation: int | None = None  # the EXIF Orientation value found in it


def _palette_image() -> Image.Image:
    entries = [BACKGROUND, *(PALETTE[c] for c in COLORS)]
    for color in COLORS:
        rgb = PALETTE[color]
        r, g, b = (round(bg * (1 - _JUNK_ALPHA) + v * _JUNK_ALPHA)
                   for bg, v in zip(BACKGROUND, rgb, strict=True))
        entries.append((r, g, b))
    flat = [v for entry in entries for v in entry]
    flat += list(BACKGROUND) * (256 - len(entries))
    image = Image.new("P", (1, 1))
    image.putpalette(flat)
    return image


_PALETTE_IMAGE = _palette_image()
_LUTS: list[list[int]] = [[255 if i == k else 0 for i in range(256)] for k in range(_N + 1)]
_ANY: list[int] = [0] + [255] * 255


def _runs(profile: bytes, threshold: int = 0) -> list[tuple[int, int]]:
    """Runs [start, end) of entries above `threshold` in a projection profile."""
    runs: list[tuple[int, int]] = []
    start = -1
    for i, value in enumerate(profile):
        if value > threshold:
            if start < 0:
                start = i
        elif start >= 0:
            runs.append((start, i))
            start = -1
    if start >= 0:
        runs.append((start, len(profile)))
    return runs


def _profile(mask: Image.Image, horizontal: bool) -> bytes:
    """Which columns (`horizontal`) or rows of `mask` hold any set pixel, as bytes (0 = none).

    A single BOX resize to one row would average a lone pixel of a tall column down to 0, so the
    axis is reduced at most 16-fold per step, thresholding in between: "any" survives exactly.
    """
    w, h = mask.size
    while (h if horizontal else w) > 1:
        if horizontal:
            h = -(-h // 16)
        else:
            w = -(-w // 16)
        mask = mask.resize((w, h), Image.Resampling.BOX).point(_ANY)
    return mask.tobytes()


def _split(runs: list[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    """Cut [0, length) in the middle of the gaps between runs."""
    cuts = [0] + [(a[1] + b[0]) // 2 for a, b in itertools.pairwise(runs)] + [length]
    return list(itertools.pairwise(cuts))


def _xy_cut(mask: Image.Image, box: Box, out: list[Box], budget: list[int]) -> None:
    """Append to `out` the tight boxes of the separable parts of `mask` inside `box`.

    `budget` caps the number of calls, so a speckled photo cannot make it explode.
    """
    crop = mask.crop(box)
    tight = crop.getbbox()
    if tight is None:
        return
    x0, y0 = box[0] + tight[0], box[1] + tight[1]
    x1, y1 = box[0] + tight[2], box[1] + tight[3]
    budget[0] -= 1
    if budget[0] <= 0:
        out.append((x0, y0, x1, y1))
        return
    crop = mask.crop((x0, y0, x1, y1))
    w, h = x1 - x0, y1 - y0
    cols = _runs(_profile(crop, horizontal=True))
    if len(cols) > 1:
        for a, b in _split(cols, w):
            _xy_cut(mask, (x0 + a, y0, x0 + b, y1), out, budget)
        return
    rows = _runs(_profile(crop, horizontal=False))
    if len(rows) > 1:
        for a, b in _split(rows, h):
            _xy_cut(mask, (x0, y0 + a, x1, y0 + b), out, budget)
        return
    out.append((x0, y0, x1, y1))


def classify(fill: float, width: int, height: int) -> str:
    """Shape name from the fill ratio of the box and its aspect ratio."""
    aspect = max(width, height) / max(1, min(width, height))
    if fill >= 0.88:
        return "rectangle" if aspect >= 1.4 else "square"
    if fill >= 0.64:
        return "circle"
    return "triangle"


def analyse(image: Image.Image) -> list[Component]:
    """The shapes in `image`, in reading order (top to bottom, then left to right)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    indexed = rgb.quantize(palette=_PALETTE_IMAGE, dither=Image.Dither.NONE)
    counts = indexed.histogram()
    min_pixels = max(6, (width * height) // 5000)
    found: list[Component] = []
    for k, color in enumerate(COLORS, start=1):
        if counts[k] < min_pixels:
            continue
        mask = indexed.point(_LUTS[k], "L")
        boxes: list[Box] = []
        _xy_cut(mask, (0, 0, width, height), boxes, [_MAX_CUTS])
        for box in boxes:
            w, h = box[2] - box[0], box[3] - box[1]
            pixels = mask.crop(box).histogram()[255]
            fill = pixels / (w * h)
            if pixels < min_pixels or fill < _MIN_FILL:
                continue
            found.append(Component(color, classify(fill, w, h), box, pixels))
    # A ring of misread edge pixels around a bigger shape of another colour is not a shape.
    found.sort(key=lambda c: -c.pixels)
    kept: list[Component] = []
    for comp in found:
        if all(iou(comp.bbox, other.bbox) < 0.5 for other in kept):
            kept.append(comp)
    kept.sort(key=lambda c: (c.bbox[1], c.bbox[0]))
    return kept


class _Cache:
    """A bounded, thread-safe LRU of analyses keyed by sha256."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[str, Analysis] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Analysis | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, value: Analysis) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


_CACHE = _Cache(_CACHE_SIZE)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def analyse_bytes(data: bytes, sha256: str | None = None, view: View | None = None) -> Analysis:
    """Decode image bytes (PNG, JPEG, anything Pillow opens) and analyse them, with caching.

    `view` says how the simulated server prepares the image first (EXIF orientation, the model's
    resize; frames.py); the default applies the EXIF orientation and keeps the size. The
    analysis is of the prepared image: its width and height are the model's frame. Raises
    `ValueError` when the bytes are not an image, or the model's resize refuses its size.
    """
    view = view or View()
    sha = sha256 or sha256_hex(data)
    key = f"{sha}|{view.key()}"
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    seen = decode(data, view)
    image = seen.image
    result = Analysis(sha, image.width, image.height, tuple(analyse(image)),
                      seen.received_size, seen.orientation)
    _CACHE.put(key, result)
    return result
