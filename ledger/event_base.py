"""What every ledger event has: the base class (its version, time and run) and the columns of its
row in `events`, which a compact body leaves out (`auto_label.ledger.bodies`).
"""

from __future__ import annotations

import time
from collections.abc import Container
from typing import Any, ClassVar, NamedTuple

from pydantic import ConfigDict, Field, model_validator

from auto_label.ledger.bodies import Compact
from auto_label.ledger.versioning import Versioned


class Row(NamedTuple):
    """What an event's row in `events` holds in its own columns (`bodies.ROW_FIELDS`); the body
    of a compact event leaves them out."""

    type: str
    v: int
    run_id: str
    image_id: str | None
    step: str | None
    at: float

    def fill(self, raw: dict[str, Any], fields: Container[str]) -> dict[str, Any]:
        """A compact body (`raw`) with these columns put back: type, v, run_id, at, and
        image_id and step when `fields` (the event class's) has them (what the body holds
        wins)."""
        full: dict[str, Any] = {"type": self.type, "v": self.v, "run_id": self.run_id,
                                "at": self.at}
        if self.image_id is not None and "image_id" in fields:
            full["image_id"] = self.image_id
        if self.step is not None and "step" in fields:
            full["step"] = self.step
        full.update(raw)
        return full


def columns_in_row(version: int) -> Any:
    """The upcaster to `version`, the first at which the class's bodies leave out their row's
    columns (`Row`): an older body holds them itself, so only its version changes."""

    def upcast(raw: dict[str, Any]) -> dict[str, Any]:
        return {**raw, "v": version}

    upcast.__doc__ = f"A v{version} body leaves out its row's columns; an older one holds them."
    return staticmethod(upcast)


class EventBase(Compact, Versioned):
    model_config = ConfigDict(frozen=True, extra="forbid")
    compact_body: ClassVar[bool] = False

    v: int = Field(default=1, description="the schema version it was written at: class_version")
    at: float = Field(default_factory=time.time, description="unix time it was recorded")
    run_id: str = ""

    @model_validator(mode="before")
    @classmethod
    def _stamp_version(cls, data: Any) -> Any:
        """A new event is written at its class's current version."""
        if isinstance(data, dict) and "v" not in data:
            return {**data, "v": cls.class_version}
        return data

    @model_validator(mode="after")
    def _current_version(self) -> EventBase:
        if self.v != self.class_version:
            raise ValueError(f"{self.__class__.__name__} is at v{self.class_version}, "
                             f"not v{self.v}: parse stored events with parse_event")
        return self
