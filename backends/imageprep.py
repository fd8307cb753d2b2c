"""Read an image file and get it ready to send: the original bytes, or a downscaled copy.

With `max_image_side` 0 (the default) the original bytes go out untouched. Otherwise an image whose
longest side is larger is resized with LANCZOS so that its longest side is `max_image_side`, each
side rounded, and re-encoded (PNG stays PNG, anything else becomes JPEG). The sent size is recorded
so that boxes come back to pixels of the original exactly.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from auto_label.backends.base import PreparedImage

MIME_BY_FORMAT = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp",
                  "GIF": "image/gif", "BMP": "image/bmp"}
SENDABLE = {"image/png", "image/jpeg", "image/webp"}


def scaled_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size an image of `size` is sent at: unchanged unless its longest side exceeds max."""
    width, height = size
    longest = max(width, height)
    if max_side <= 0 or longest <= max_side:
        return size
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def prepare_image(path: str | Path, *, sha256: str, original_size: tuple[int, int],
                  max_image_side: int = 0) -> PreparedImage:
    """Load `path` for sending. Raises OSError for unreadable files (the caller names the image)."""
    return prepare_bytes(Path(path).read_bytes(), sha256=sha256, original_size=original_size,
                         max_image_side=max_image_side)


def sniff_mime(data: bytes) -> str | None:
    """The MIME type of PNG, JPEG and WebP files, from their first bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def prepare_bytes(data: bytes, *, sha256: str, original_size: tuple[int, int],
                  max_image_side: int = 0) -> PreparedImage:
    """An image file's bytes, ready to send (see `prepare_image`)."""
    mime = sniff_mime(data)
    if mime is not None and scaled_size(original_size, max_image_side) == original_size:
        return PreparedImage(data, mime, original_size, original_size, sha256)  # as they are
    with Image.open(io.BytesIO(data)) as image:
        mime = MIME_BY_FORMAT.get(image.format or "", "")
        target = scaled_size(image.size, max_image_side)
        if target == image.size and mime in SENDABLE:
            return PreparedImage(data, mime, image.size, original_size, sha256)
        fmt = "PNG" if image.format == "PNG" else "JPEG"
        converted = image.convert("RGBA" if fmt == "PNG" and "A" in image.mode else "RGB")
        if target != image.size:
            converted = converted.resize(target, Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        converted.save(buffer, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return PreparedImage(buffer.getvalue(), MIME_BY_FORMAT[fmt], target, original_size, sha256)
