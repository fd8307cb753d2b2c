"""Synthetic scenes for the VLM SIMULATOR: coloured shapes on a plain background, with exact truth.

This is test and demo data, not a dataset of real images. Each scene is deterministic from
(seed, index): a grid of cells, at most one shape per cell with padding around it (so shapes never
touch and per-colour XY-cuts always separate them), a caption in slightly noisy natural language,
and the exact pixel box of every drawn shape, taken from the mask it was drawn with. Pixel boxes
use exclusive right/bottom edges like PIL's `getbbox()`: a full-image box is [0, 0, W, H].
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from .language import BACKGROUND, COLORS, PALETTE, SHAPES, counted, join_list

Box = tuple[int, int, int, int]
Size = tuple[int, int]

DEFAULT_SIZES: tuple[Size, ...] = (
    (320, 240), (480, 360), (640, 480), (800, 600), (1024, 768), (1280, 960), (1600, 1200),
    (480, 640), (600, 800),
)

JPEG_QUALITY = 90
_PAD = 0.12  # fraction of a cell kept empty on each side of its shape

_TEMPLATES: tuple[str, ...] = (
    "In the image we can see {list}.",
    "There {be} {list} in the image.",
    "We can see {list}.",
    "{List}.",
    "in this picture there {be} {list}",
    "I can see {list} in this photo.",
    "In this image we can see {list}.",
)


@dataclass(frozen=True)
class SceneObject:
    """One drawn shape and its exact pixel box (exclusive right/bottom edges)."""

    color: str
    shape: str
    bbox: Box

    def to_dict(self) -> dict[str, object]:
        return {"color": self.color, "shape": self.shape, "bbox": list(self.bbox)}


@dataclass
class Scene:
    """A rendered scene: the image, its caption and its ground truth."""

    image_id: str
    image: Image.Image
    caption: str
    objects: list[SceneObject] = field(default_factory=list)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def encode(self, image_format: str = "png") -> bytes:
        """The image as PNG or JPEG (quality 90) bytes."""
        return encode_image(self.image, image_format)


def encode_image(image: Image.Image, image_format: str = "png") -> bytes:
    """PNG or JPEG bytes of `image` (`image_format` "png", "jpg" or "jpeg")."""
    fmt = image_format.lower()
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, "PNG")
    elif fmt in ("jpg", "jpeg"):
        image.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY)
    else:
        raise ValueError(f"unsupported image format {image_format!r}: use png or jpg")
    return buf.getvalue()


def _grid(rng: random.Random, n: int, width: int, height: int) -> tuple[int, int]:
    """Rows and columns of the layout grid, with at least `n` cells, cells roughly square."""
    options = [(r, c) for r in (1, 2, 3) for c in (1, 2, 3, 4) if r * c >= n]
    aspect = width / height

    def badness(rc: tuple[int, int]) -> float:
        cell_aspect = (aspect * rc[0]) / rc[1]
        return max(cell_aspect, 1 / cell_aspect) + 0.15 * (rc[0] * rc[1] - n)

    options.sort(key=badness)
    return rng.choice(options[:2])


def _kinds(rng: random.Random, n: int) -> list[tuple[str, str, int]]:
    """Distinct (colour, shape) kinds with multiplicities adding up to `n`."""
    kinds: list[tuple[str, str, int]] = []
    used: set[tuple[str, str]] = set()
    remaining = n
    while remaining > 0:
        count = 1 if rng.random() < 0.6 else rng.choice((2, 2, 3))
        count = min(count, remaining)
        while True:
            kind = (rng.choice(COLORS), rng.choice(SHAPES))
            if kind not in used:
                break
        used.add(kind)
        kinds.append((kind[0], kind[1], count))
        remaining -= count
    return kinds


def _draw_shape(draw: ImageDraw.ImageDraw, rng: random.Random, shape: str,
                cell: tuple[float, float, float, float]) -> None:
    """Draw `shape` in white at a random size and place inside `cell` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = cell
    avail_w = (x1 - x0) * (1 - 2 * _PAD)
    avail_h = (y1 - y0) * (1 - 2 * _PAD)
    if shape == "rectangle":
        ratio = rng.uniform(1.8, 2.6)
        if rng.random() < 0.6:  # lying
            w = rng.uniform(0.75, 1.0) * min(avail_w, avail_h * ratio)
            h = w / ratio
        else:  # standing
            h = rng.uniform(0.75, 1.0) * min(avail_h, avail_w * ratio)
            w = h / ratio
    else:
        side = rng.uniform(0.55, 1.0) * min(avail_w, avail_h)
        w = h = side
        if shape == "triangle":
            h = side * rng.uniform(0.8, 1.0)
    w, h = max(int(w), 8), max(int(h), 8)
    left = int(x0 + (x1 - x0) * _PAD + rng.uniform(0, max(0.0, avail_w - w)))
    top = int(y0 + (y1 - y0) * _PAD + rng.uniform(0, max(0.0, avail_h - h)))
    right, bottom = left + w - 1, top + h - 1
    if shape == "circle":
        draw.ellipse((left, top, right, bottom), fill=255)
    elif shape in ("square", "rectangle"):
        draw.rectangle((left, top, right, bottom), fill=255)
    elif rng.random() < 0.5:  # triangle, apex up
        draw.polygon([(left, bottom), ((left + right) / 2, top), (right, bottom)], fill=255)
    else:  # triangle, apex down
        draw.polygon([(left, top), (right, top), ((left + right) / 2, bottom)], fill=255)


def _caption(rng: random.Random, kinds: list[tuple[str, str, int]]) -> str:
    phrases = [counted(count, color, shape) for color, shape, count in kinds]
    listed = join_list(phrases)
    template = rng.choice(_TEMPLATES)
    return template.format(
        list=listed, List=listed[:1].upper() + listed[1:], be="is" if kinds[0][2] == 1 else "are"
    )


def make_scene(seed: int = 0, index: int = 0, size: Size | None = None,
               image_id: str | None = None) -> Scene:
    """Scene number `index` of the series `seed`; `size` (W, H) or one of DEFAULT_SIZES."""
    rng = random.Random(f"auto-label-sim-scene:{seed}:{index}")
    width, height = size if size is not None else rng.choice(DEFAULT_SIZES)
    n = rng.randint(2, 6)
    rows, cols = _grid(rng, n, width, height)
    n = min(n, rows * cols)
    kinds = _kinds(rng, n)
    cells = rng.sample(range(rows * cols), n)
    image = Image.new("RGB", (width, height), BACKGROUND)
    objects: list[SceneObject] = []
    cell_iter = iter(cells)
    for color, shape, count in kinds:
        for _ in range(count):
            cell = next(cell_iter)
            r, c = divmod(cell, cols)
            # drawn on a mask of the cell only (fast), then pasted at the cell's origin
            ox, oy = int(c * width / cols), int(r * height / rows)
            cw, ch = int((c + 1) * width / cols) - ox, int((r + 1) * height / rows) - oy
            bounds = (c * width / cols - ox, r * height / rows - oy,
                      (c + 1) * width / cols - ox, (r + 1) * height / rows - oy)
            mask = Image.new("L", (cw, ch), 0)
            _draw_shape(ImageDraw.Draw(mask), rng, shape, bounds)
            local = mask.getbbox()
            if local is None:  # pragma: no cover - shapes are at least 8 px
                continue
            image.paste(PALETTE[color], (ox, oy), mask=mask)
            bbox = (local[0] + ox, local[1] + oy, local[2] + ox, local[3] + oy)
            objects.append(SceneObject(color, shape, bbox))
    return Scene(
        image_id=image_id if image_id is not None else f"scene_{index:04d}",
        image=image,
        caption=_caption(rng, kinds),
        objects=objects,
    )


def pick_size(sizes: Size | Sequence[Size] | None, seed: int, index: int) -> Size | None:
    """The size for scene `index` given a writer's `sizes` argument (None: the scene chooses)."""
    if sizes is None:
        return None
    if len(sizes) == 2 and all(isinstance(v, int) for v in sizes):
        return (int(sizes[0]), int(sizes[1]))  # type: ignore[arg-type]
    choices = list(sizes)
    rng = random.Random(f"auto-label-sim-size:{seed}:{index}")
    chosen = rng.choice(choices)
    return (int(chosen[0]), int(chosen[1]))  # type: ignore[index]
