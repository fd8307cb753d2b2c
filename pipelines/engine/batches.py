"""Planning a run a batch of images at a time, with memory flat in the number of images.

`read_batch` reads what planning needs of a batch of images from the ledger's projections (three
indexed queries per batch, never a whole table) and splits it into each image's own `Projections`,
so an image still being worked on keeps only its own rows. `InFlight` bounds the images planned
but not finished, so the planner never runs far ahead of the workers: it waits for a slot before
planning each image, and an image gives its slot back when its last task ends.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from auto_label.ledger import queries
from auto_label.ledger.queries import CurrentRow, ImageRow
from auto_label.pipelines.engine.planning import Projections

BATCH = 500
"""images planned per read of the projections"""
IN_FLIGHT = 2000
"""images planned whose tasks have not all ended, at most"""


@dataclass(frozen=True)
class Known:
    """What the ledger holds of one image: its latest seed, and its projections."""

    row: ImageRow | None = None
    projections: Projections = field(default_factory=Projections)


def read_batch(conn: sqlite3.Connection, image_ids: Sequence[str],
               steps: Sequence[str]) -> dict[str, Known]:
    """image_id -> what the ledger holds of it, for the images of `image_ids` it knows (three
    queries, whatever the batch's size); `steps`: the pipeline's step numbers."""
    rows = queries.images_of(conn, image_ids)
    completions: dict[str, dict[tuple[str, str, str], tuple[int, str]]] = {}
    for key, value in queries.completions_of(conn, image_ids, steps).items():
        completions.setdefault(key[0], {})[key] = value
    current: dict[str, dict[tuple[str, str], CurrentRow]] = {}
    for pair, row in queries.current_of(conn, image_ids).items():
        current.setdefault(pair[0], {})[pair] = row
    return {image_id: Known(rows.get(image_id),
                            Projections(completions.get(image_id, {}),
                                        current.get(image_id, {})))
            for image_id in set(rows) | set(completions) | set(current)}


class InFlight:
    """At most `limit` images between `enter` and `leave`."""

    def __init__(self, limit: int, stop: threading.Event) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._stop = stop

    def enter(self) -> bool:
        """Wait for a slot; False when the run stops meanwhile."""
        while not self._slots.acquire(timeout=0.2):
            if self._stop.is_set():
                return False
        return True

    def leave(self) -> None:
        self._slots.release()
