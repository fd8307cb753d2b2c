"""Real-photo fixtures made from the simulator's scenes: every EXIF orientation, 16-bit, palette,
transparency, animation, JPEG trailers and padding, HEIC. Each comes with its truth in the upright
frame (what a person sees), which is the frame boxes must come back in."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pillow_heif
from PIL import Image, ImageDraw

from auto_label.sim import make_scene

pillow_heif.register_heif_opener()

# stored = INVERSE[o](upright): what a camera that tags orientation o writes
INVERSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@dataclass
class Photo:
    name: str
    data: bytes
    caption: str
    truth: list[dict]
    """[{color, shape, bbox}] in the upright frame"""
    upright: tuple[int, int]
    stored: tuple[int, int] = (0, 0)
    expect: dict = field(default_factory=dict)


def scene_photo(name: str, index: int, size=(480, 360), seed=91):
    scene = make_scene(seed, index, size)
    return scene, [o.to_dict() for o in scene.objects]


def jpeg(image: Image.Image, *, exif: Image.Exif | None = None, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    kwargs = {"exif": exif.tobytes()} if exif is not None else {}
    image.convert("RGB").save(buffer, "JPEG", quality=quality, **kwargs)
    return buffer.getvalue()


def oriented(orientation: int, index: int, size=(480, 360), fmt="JPEG") -> Photo:
    """A scene stored the way a camera tagging `orientation` stores it."""
    scene, truth = scene_photo(f"orient_{orientation}", index, size)
    transpose = INVERSE[orientation]
    stored = scene.image.transpose(transpose) if transpose is not None else scene.image
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    if fmt == "JPEG":
        data = jpeg(stored, exif=exif)
    else:
        stored.save(buffer, fmt, exif=exif.tobytes())
        data = buffer.getvalue()
    return Photo(f"orient_{orientation}", data, scene.caption, truth, scene.image.size,
                 stored.size)


def black_shapes(name: str, size=(420, 300)) -> tuple[Image.Image, str, list[dict]]:
    """Black shapes on the scenes' light background: what a grayscale image can show."""
    image = Image.new("RGB", size, (245, 245, 240))
    draw = ImageDraw.Draw(image)
    truth = [{"color": "black", "shape": "rectangle", "bbox": [30, 40, 210, 130]},
             {"color": "black", "shape": "circle", "bbox": [260, 120, 380, 240]}]
    draw.rectangle((30, 40, 209, 129), fill=(20, 20, 20))
    draw.ellipse((260, 120, 379, 239), fill=(20, 20, 20))
    return image, "A black rectangle and a black circle.", truth


def sixteen_bit(fmt: str) -> Photo:
    """Gray 16-bit, using 12 of its bits (0-4095), as scientific and medical images do."""
    image, caption, truth = black_shapes(f"gray16_{fmt}")
    gray = image.convert("L")
    wide = Image.new("I;16", gray.size)
    wide.putdata([v * 4095 // 255 for v in gray.get_flattened_data()])
    buffer = io.BytesIO()
    wide.save(buffer, fmt)
    return Photo(f"gray16_{fmt.lower()}", buffer.getvalue(), caption, truth, image.size,
                 image.size)


def palette_png_with_transparency(index: int) -> Photo:
    scene, truth = scene_photo("palette_trns", index)
    rgba = scene.image.convert("RGBA")
    # the background transparent, its colour black: flattened naively, it turns black
    rgba.putdata([(0, 0, 0, 0) if (r, g, b) == (245, 245, 240) else (r, g, b, 255)
                  for r, g, b, _ in rgba.get_flattened_data()])
    palette = rgba.quantize(colors=64)  # keeps the transparent entry as tRNS
    buffer = io.BytesIO()
    palette.save(buffer, "PNG")
    return Photo("palette_trns", buffer.getvalue(), scene.caption, truth, scene.image.size,
                 scene.image.size)


def rgba_webp(index: int) -> Photo:
    scene, truth = scene_photo("rgba_webp", index)
    rgba = scene.image.convert("RGBA")
    rgba.putdata([(0, 0, 0, 0) if (r, g, b) == (245, 245, 240) else (r, g, b, 255)
                  for r, g, b, _ in rgba.get_flattened_data()])
    buffer = io.BytesIO()
    rgba.save(buffer, "WEBP", lossless=True)
    return Photo("rgba_webp", buffer.getvalue(), scene.caption, truth, scene.image.size,
                 scene.image.size)


def animated_gif(index: int) -> Photo:
    scene, truth = scene_photo("animated_gif", index)
    first = scene.image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    second = Image.new("RGB", scene.image.size, (20, 20, 20)).convert("P")
    buffer = io.BytesIO()
    first.save(buffer, "GIF", save_all=True, append_images=[second], duration=100)
    return Photo("animated_gif", buffer.getvalue(), scene.caption, truth, scene.image.size,
                 scene.image.size)


def jpeg_with_tail(name: str, index: int, tail: bytes) -> Photo:
    scene, truth = scene_photo(name, index)
    return Photo(name, jpeg(scene.image) + tail, scene.caption, truth, scene.image.size,
                 scene.image.size)


MOTION_PHOTO_TRAILER = (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
                        + bytes(range(256)) * 40)
"""What Samsung and Google cameras append after a JPEG's end marker: an MP4 (ftyp box first)."""


def heic_named_jpg(index: int) -> Photo:
    scene, truth = scene_photo("heic_as_jpg", index)
    buffer = io.BytesIO()
    scene.image.save(buffer, "HEIF", quality=95)
    return Photo("heic_as_jpg", buffer.getvalue(), scene.caption, truth, scene.image.size,
                 scene.image.size, expect={"suffix": ".jpg"})


def write(root: Path, photos: list[Photo]) -> Path:
    """Images, input.jsonl and ground_truth.jsonl (upright frame) under `root`."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines, truth = [], []
    for photo in photos:
        suffix = photo.expect.get("suffix", ".img")
        rel = f"images/{photo.name}{suffix}"
        (root / rel).write_bytes(photo.data)
        lines.append({"image_path": rel, "caption": photo.caption, "image_id": photo.name})
        truth.append({"image_id": photo.name, "objects": photo.truth,
                      "width": photo.upright[0], "height": photo.upright[1]})
    (root / "input.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (root / "ground_truth.jsonl").write_text("".join(json.dumps(x) + "\n" for x in truth))
    return root
