"""Opening and decoding an image file: formats recognised by content (HEIC/HEIF through
pillow-heif, AVIF through Pillow), the pixel limit, EXIF orientation, and every pixel mode turned
into 8-bit RGB (or gray) the way a person would see it.

Problems are `ImageProblem`s naming the file: not an image, over `data.max_image_pixels`, corrupt
or truncated (judged by decoding, so data after a JPEG's end marker, like the motion-photo trailer
phones write, is fine).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Literal, cast

from PIL import Image, UnidentifiedImageError

INGEST_VERSION = 1
"""Bumped when the way an image becomes what is sent changes (images are then seeded again)."""
BACKGROUND = (255, 255, 255)
"""Transparent pixels are composited over white, so a dark object on a transparent background
stays visible (servers' plain RGB conversion flattens onto black)."""
PILLOW_MAX_IMAGE_PIXELS = 1024 * 1024 * 1024 // 4 // 3
"""Pillow's own default limit (PIL.Image.MAX_IMAGE_PIXELS, 89,478,485): our default too."""
ORIENTATION_TAG = 0x0112
TRANSPOSES: dict[int, Image.Transpose] = {
    # EXIF orientation -> the transpose that shows the picture upright (as Pillow's
    # ImageOps.exif_transpose and the EXIF 2.3 spec, tag 0x0112, define them)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_HIGH_DEPTH = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_ALPHA = {"RGBA", "RGBa", "LA", "La", "PA"}
_open_lock = threading.Lock()
_heif_registered = False


def _register_heif(data: bytes) -> None:
    """pillow-heif's opener (HEIC/HEIF by content, whatever the file is named), registered before
    the first file it could accept: an ISO base media file (`ftyp` at byte 4; pillow-heif's own
    test, `pillow_heif.as_plugin._is_supported_heif`, only accepts such files). Importing it costs
    about 10 ms that a run of JPEGs and PNGs need not wait for (launch time, issue 12). It is put
    first in Pillow's order of openers, where registering it at import put it, so a file both it
    and Pillow's AVIF opener accept goes to it first, as before. Call with `_open_lock` held."""
    global _heif_registered
    if _heif_registered or data[4:8] != b"ftyp":
        return
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.ID.remove("HEIF")
    Image.ID.insert(0, "HEIF")
    _heif_registered = True


class ImageProblem(Exception):
    """The image file cannot be used. `kind` goes into the failed step's event; the message is
    one line naming the file."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class IngestSettings:
    """`data.exif_orientation` and `data.max_image_pixels`."""

    exif_orientation: Literal["apply", "ignore"] = "apply"
    max_image_pixels: int = PILLOW_MAX_IMAGE_PIXELS
    """0: no limit"""

    @property
    def key(self) -> str:
        """What, of ingestion, a seed depends on: a changed key seeds the image again."""
        return f"v{INGEST_VERSION}:exif={self.exif_orientation}"


@dataclass(frozen=True)
class Header:
    """What the file says before its pixels are decoded."""

    format: str
    """Pillow's name of the format found in the content: JPEG, PNG, WEBP, HEIF, AVIF, GIF..."""
    mode: str
    stored_size: tuple[int, int]
    orientation_tag: int
    """the EXIF orientation found (1 when absent or not 1-8)"""
    orientation: int
    """the orientation applied: the tag, or 1 when data.exif_orientation is ignore"""
    frames: int

    @property
    def upright_size(self) -> tuple[int, int]:
        width, height = self.stored_size
        return (height, width) if self.orientation in (5, 6, 7, 8) else (width, height)


def open_image(data: bytes, name: str, settings: IngestSettings) -> tuple[Image.Image, Header]:
    """Open the bytes (no pixels decoded yet) and read the header. Raises ImageProblem."""
    try:
        with _open_lock:  # our own limit replaces Pillow's bomb check (and its warning)
            _register_heif(data)
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except UnidentifiedImageError:
        raise ImageProblem("image_invalid", f"{name}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem("image_corrupt", f"{name}: corrupt or truncated image ({exc})") from None
    width, height = image.size
    if settings.max_image_pixels and width * height > settings.max_image_pixels:
        image.close()
        raise ImageProblem(
            "image_too_large",
            f"{name}: {width}x{height} is {width * height / 1e6:.1f} megapixels, more than "
            f"data.max_image_pixels ({settings.max_image_pixels:,}); raise it, or set 0 for no "
            "limit")
    try:
        tag = image.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError) as exc:
        image.close()
        raise ImageProblem("image_corrupt", f"{name}: corrupt or truncated image ({exc})") from None
    tag = tag if isinstance(tag, int) and 1 <= tag <= 8 else 1
    applied = tag if settings.exif_orientation == "apply" else 1
    return image, Header(format=image.format or "", mode=image.mode, stored_size=image.size,
                         orientation_tag=tag, orientation=applied,
                         frames=int(getattr(image, "n_frames", 1) or 1))


def verify(image: Image.Image, header: Header, name: str) -> None:
    """Decode the whole file to prove it complete, as cheaply as the format allows (a JPEG at an
    eighth of its size: every coefficient is still read). Raises ImageProblem."""
    if header.format in ("JPEG", "MPO"):
        width, height = header.stored_size
        image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
    _load(image, name)


def decode(image: Image.Image, header: Header, target: tuple[int, int],
           name: str) -> tuple[Image.Image, list[str]]:
    """The pixels to send: the first frame, 8-bit RGB or gray, upright, at `target` (w, h).

    Also what was done that changes what the model sees (for the seed event): empty when the
    model sees the pixels it would have seen from the file itself. Raises ImageProblem.
    """
    notes: list[str] = []
    if header.frames > 1:
        image.seek(0)
        notes.append(f"first frame of {header.frames}")
    if header.format in ("JPEG", "MPO"):  # decode at a reduced size when that is all we send
        width, height = target if header.orientation not in (5, 6, 7, 8) else target[::-1]
        image.draft(image.mode, (width, height))
    _load(image, name)
    pixels = _eight_bit(image, notes)
    transpose = TRANSPOSES.get(header.orientation)
    if transpose is not None:
        pixels = pixels.transpose(transpose)
    elif header.orientation_tag != 1:
        notes.append(f"EXIF orientation {header.orientation_tag} not applied "
                     "(data.exif_orientation: ignore)")
    if pixels.size != target:  # bicubic, as Qwen2-VL's processor resizes (transformers'
        # Qwen2VLImageProcessor, resample=BICUBIC); reducing_gap keeps big downscales cheap
        pixels = pixels.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return pixels, notes


def _load(image: Image.Image, name: str) -> None:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageProblem("image_corrupt",
                           f"{name}: corrupt or truncated image ({exc})") from None
    except Image.DecompressionBombError as exc:  # a frame larger than the header said
        raise ImageProblem("image_too_large", f"{name}: {exc}") from None


def _eight_bit(image: Image.Image, notes: list[str]) -> Image.Image:
    """RGB or L, 8 bits per channel, as a person sees the image (notes say what changed)."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return image
    if mode in _HIGH_DEPTH:  # scaled by the range the pixels really use (12-bit in 16...)
        wide = image.convert("F")
        low, high = cast(tuple[float, float], wide.getextrema())
        scale = 255.0 / (high - low) if high > low else 0.0
        notes.append(f"{mode} scaled to 8-bit by its range {low:g}-{high:g}")
        return wide.point(lambda v: (v - low) * scale).convert("L")
    if (mode == "P" and "transparency" in image.info) or mode in _ALPHA:
        rgba = image.convert("RGBA")
        alpha = rgba.getchannel("A")
        if cast(tuple[int, int], alpha.getextrema())[0] < 255:
            notes.append(f"{mode} transparency composited over white")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=alpha)
        return flat
    if mode == "1":
        return image.convert("L")
    notes.append(f"{mode} converted to RGB")
    return image.convert("RGB")
