"""The images as they are sent, kept for an image's next steps.

An image is read and prepared (maybe downscaled) once when it is seeded, and kept while its steps
run; the cache holds a few images per worker, least recently used out first, so memory stays flat
whatever the dataset's size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from auto_label.backends.base import PreparedImage
from auto_label.backends.imageprep import prepare_bytes, prepare_image


class ImageCache:
    def __init__(self, capacity: int, max_image_side: int) -> None:
        self.capacity = capacity
        self.max_image_side = max_image_side
        self._images: OrderedDict[str, PreparedImage] = OrderedDict()
        self._lock = threading.Lock()

    def from_bytes(self, image_id: str, data: bytes, *, sha256: str,
                   size: tuple[int, int]) -> PreparedImage:
        """Prepare the bytes just read for seeding and keep them. Raises OSError, ValueError or
        SyntaxError (Pillow's errors) when they cannot be decoded for a resize."""
        prepared = prepare_bytes(data, sha256=sha256, original_size=size,
                                 max_image_side=self.max_image_side)
        self._keep(image_id, prepared)
        return prepared

    def get(self, image_id: str, path: Path, *, sha256: str,
            size: tuple[int, int]) -> PreparedImage:
        """The image as sent, read from `path` when it is not kept. Raises OSError when the file
        cannot be read."""
        with self._lock:
            prepared = self._images.get(image_id)
            if prepared is not None:
                self._images.move_to_end(image_id)
                return prepared
        prepared = prepare_image(path, sha256=sha256, original_size=size,
                                 max_image_side=self.max_image_side)
        self._keep(image_id, prepared)
        return prepared

    def _keep(self, image_id: str, prepared: PreparedImage) -> None:
        with self._lock:
            self._images[image_id] = prepared
            while len(self._images) > self.capacity:
                self._images.popitem(last=False)
