"""How an event is stored: its JSON body, compact.

`body()` is what the ledger stores. For a class with `compact_body` set it leaves out what the
event's row holds in its own columns (`ROW_FIELDS`: type, v, run_id, image_id, step, at; the reader
passes them back, `auto_label.ledger.events.parse_event`), every field that holds its default (the
model's default fills it back when the body is read), and what the class says it derives
(`derived`, put back by `expand`); `model_dump` and `model_dump_json` still give every field. A
class without `compact_body` stores its whole dump. `expand` reads bodies written at the class's
current version: when the class moves on to a new version, that version's upcaster takes over what
`expand` did (older bodies reach the model through their upcasters, whole). A field's default is
part of the stored format: changing one needs a new class_version whose upcaster writes the old
default into bodies that lack it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

ROW_FIELDS = ("type", "v", "run_id", "image_id", "step", "at")
"""The fields the `events` table holds in columns of an event's row (image_id and step NULL for an
event without them): a compact body leaves them out."""


class Compact(BaseModel):
    """A model with a compact stored `body()`: the fields that are neither in the row's columns
    nor at their default."""

    compact_body: ClassVar[bool] = True
    _in_row: ClassVar[set[str]] = set()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._in_row = {name for name in ROW_FIELDS if name in cls.model_fields}

    def body(self) -> str:
        """The JSON the ledger stores (serialized by pydantic-core)."""
        cls = type(self)
        if not cls.compact_body:
            return self.model_dump_json()
        derived = self.derived()
        return self.__pydantic_serializer__.to_json(
            self, exclude_defaults=True,
            exclude=cls._in_row | derived if derived else cls._in_row).decode()

    def derived(self) -> set[str]:
        """The fields `body()` leaves out because `expand` derives them from the others."""
        return set()

    @classmethod
    def expand(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """A compact body stored at the class's current version (its row's columns put back),
        with what `derived` or `body` left out put back. Not called for a whole body (one that
        names its type, e.g. a model dump)."""
        return raw
