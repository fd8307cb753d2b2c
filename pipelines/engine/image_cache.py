"""The images as they are sent, kept for an image's next steps.

An image is read and prepared once when it is seeded (or at its first step, when its seed is still
valid), and kept while its steps run; the cache holds a few images per worker, least recently used
out first, so memory stays flat whatever the dataset's size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from auto_label.backends.base import ModelFrame, PreparedImage
from auto_label.pipelines.images.decode import IngestSettings
from auto_label.pipelines.images.prepare import prepare


class ImageCache:
    def __init__(self, capacity: int, settings: IngestSettings, frame: ModelFrame) -> None:
        self.capacity = capacity
        self.settings = settings
        self.frame = frame
        self._images: OrderedDict[str, PreparedImage] = OrderedDict()
        self._reading: dict[str, threading.Event] = {}
        """images being read by one thread while others (its other steps) wait for it"""
        self._lock = threading.Lock()

    def keep(self, image_id: str, prepared: PreparedImage) -> None:
        """Keep an image prepared elsewhere (at seeding)."""
        with self._lock:
            self._images[image_id] = prepared
            self._images.move_to_end(image_id)
            while len(self._images) > self.capacity:
                self._images.popitem(last=False)

    def get(self, image_id: str, path: Path, *, sha256: str) -> PreparedImage:
        """The image as sent, read and prepared from `path` when it is not kept; steps of one
        image asked at once wait for one read. Raises OSError when the file cannot be read,
        ImageProblem when it no longer decodes."""
        while True:
            with self._lock:
                prepared = self._images.get(image_id)
                if prepared is not None:
                    self._images.move_to_end(image_id)
                    return prepared
                reading = self._reading.get(image_id)
                if reading is None:
                    self._reading[image_id] = threading.Event()
                    break
            reading.wait()  # then take it from the cache, or read it if that read failed
        try:
            data = path.read_bytes()
            prepared = prepare(data, name=str(path), sha256=sha256, settings=self.settings,
                               frame=self.frame).prepared
            self.keep(image_id, prepared)
        finally:
            with self._lock:
                self._reading.pop(image_id).set()
        return prepared
