"""An image file's bytes -> what is sent: the original bytes when they already are what the model
should see (a sendable format, 8-bit RGB or gray, no orientation tag, no resize), else the decoded,
converted, upright pixels at the sent size, re-encoded with a MIME type matching the content.

The file is decoded once (to check it is complete, or to make the pixels sent); the engine keeps
the result for an image's next steps.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from auto_label.backends.base import ModelFrame, PreparedImage
from auto_label.pipelines.images.decode import (
    Header,
    IngestSettings,
    decode,
    open_image,
    verify,
)
from auto_label.pipelines.images.frames import sent_size

SENDABLE = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
"""Formats every backend takes as they are (OpenAI-compatible servers and Gemini alike)."""
LOSSY = {"JPEG", "MPO", "WEBP", "HEIF", "AVIF"}
"""Photo formats: re-encoded as JPEG; the others (PNG, GIF, TIFF, BMP...) as PNG."""
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Ingested:
    header: Header
    conversion: str | None
    """what was done that changes what the model sees (None: the file's own pixels)"""
    prepared: PreparedImage


def prepare(data: bytes, *, name: str, sha256: str, settings: IngestSettings,
            frame: ModelFrame) -> Ingested:
    """The image as it is sent under `frame`. `name` (the path) is for messages.

    Raises ImageProblem (not an image, too large, corrupt or truncated).
    """
    image, header = open_image(data, name, settings)
    with image:
        upright = header.upright_size
        target = sent_size(upright, frame)
        mime = SENDABLE.get(header.format)
        if mime is not None and header.mode in ("RGB", "L") and header.orientation_tag == 1 \
                and header.frames == 1 and target == upright:
            verify(image, header, name)
            return Ingested(header, None, PreparedImage(data, mime, target, upright, sha256))
        pixels, notes = decode(image, header, target, name)
        encoded, mime = _encode(pixels, lossy=header.format in LOSSY)
    return Ingested(header, "; ".join(notes) or None,
                    PreparedImage(encoded, mime, target, upright, sha256))


def _encode(pixels: Image.Image, *, lossy: bool) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    if lossy:
        pixels.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue(), "image/jpeg"
    pixels.save(buffer, format="PNG")
    return buffer.getvalue(), "image/png"
