"""Seeding: turning a listed image into an `image_seeded` event (hash, upright frame, what was done
to show it) and the image as it is sent, from one read and one decode of the file.

Like git's index, an image whose path, size, mtime, inputs and ingestion match its latest seed is
not read again (`planning.unchanged`): resuming a large run costs one `stat` per image.
"""

from __future__ import annotations

from auto_label.backends.base import ModelFrame, PreparedImage
from auto_label.ledger.events import ImageSeeded
from auto_label.ledger.fingerprint import file_sha256
from auto_label.pipelines.contract import ImageInput
from auto_label.pipelines.engine.planning import seed_extra
from auto_label.pipelines.images.decode import ImageProblem, IngestSettings
from auto_label.pipelines.images.prepare import prepare

__all__ = ["ImageProblem", "seed_image"]


def seed_image(item: ImageInput, run_id: str, settings: IngestSettings,
               frame: ModelFrame) -> tuple[ImageSeeded, PreparedImage]:
    """Read, hash, decode and prepare the image: its seed event and the image as sent.
    Raises ImageProblem naming the file when it is unusable."""
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
    sha256 = file_sha256(data)
    ingested = prepare(data, name=str(path), sha256=sha256, settings=settings, frame=frame)
    header = ingested.header
    width, height = header.upright_size
    return ImageSeeded(
        run_id=run_id,
        image_id=item.image_id,
        path=str(path),
        sha256=sha256,
        width=width,
        height=height,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        caption=item.caption,
        extra=seed_extra(item),
        source=item.source,
        format=header.format,
        stored_width=header.stored_size[0],
        stored_height=header.stored_size[1],
        orientation=header.orientation,
        conversion=ingested.conversion,
        ingest=settings.key,
    ), ingested.prepared
