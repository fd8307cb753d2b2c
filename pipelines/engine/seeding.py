"""Seeding: turning a listed image into an `image_seeded` event (hash, size, checked decodable).

Like git's index, an image whose path, size, mtime and inputs match its latest seed is not read
again (`planning.unchanged`): resuming a large run costs one `stat` per image.
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from auto_label.ledger.events import ImageSeeded
from auto_label.ledger.fingerprint import file_sha256
from auto_label.pipelines.contract import ImageInput
from auto_label.pipelines.engine.planning import seed_extra


class ImageProblem(Exception):
    """The image file cannot be used. `kind` goes into the failed step's event."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _check_complete(image: Image.Image, data: bytes) -> None:
    """Catch truncated and corrupt files without paying for a full decode where we can.

    PNG: `verify()` checks every chunk's CRC and the closing IEND (40x cheaper than decoding).
    JPEG: the end-of-image marker must close the file (entropy-coded data never holds FF D9), which
    is what a truncated copy or download lacks. Other formats are decoded in full.
    """
    if image.format == "PNG":
        image.verify()
    elif image.format == "JPEG":
        if b"\xff\xd9" not in data[-1024:]:
            raise OSError("no JPEG end-of-image marker")
    else:
        image.load()


def seed_image(item: ImageInput, run_id: str) -> tuple[ImageSeeded, bytes]:
    """Read, hash and check the image: its seed event and the bytes read (to send them without
    reading the file again). Raises ImageProblem naming the file when it is unusable."""
    path = item.path
    try:
        stat = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageProblem("image_missing", f"{path}: image file not found") from None
    except IsADirectoryError:
        raise ImageProblem("image_unreadable", f"{path}: is a directory, not an image") from None
    except OSError as exc:
        raise ImageProblem("image_unreadable", f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise ImageProblem("image_empty", f"{path}: image file is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            _check_complete(image, data)
    except UnidentifiedImageError:
        raise ImageProblem("image_invalid", f"{path}: not an image Pillow can read") from None
    except Image.DecompressionBombError:
        raise ImageProblem("image_invalid", f"{path}: image too large to decode safely") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem("image_corrupt", f"{path}: corrupt or truncated image ({exc})") from None
    return ImageSeeded(
        run_id=run_id,
        image_id=item.image_id,
        path=str(path),
        sha256=file_sha256(data),
        width=width,
        height=height,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        caption=item.caption,
        extra=seed_extra(item),
        source=item.source,
    ), data
