"""How an event is stored: its JSON body, compact.

`body()` is what the ledger stores. For a class with `compact_body` set it leaves out every field
that holds its default (the model's default fills it back when the body is read), and what the
class says it derives (`derived`, put back by `expand`); `model_dump` and `model_dump_json` still
give every field. `expand` reads bodies written at the class's current version: when the class
moves on to a new version, that version's upcaster takes over what `expand` did (older bodies
reach the model through their upcasters, whole). A field's default is part of the stored format:
changing one needs a new class_version whose upcaster writes the old default into bodies that
lack it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel


class Compact(BaseModel):
    """A model with a compact stored `body()`: `v` and `type` first (an instance's `v` is its
    class's version), then the fields that do not hold their default."""

    compact_body: ClassVar[bool] = True
    _body_head: ClassVar[bytes] = b""
    _body_first: ClassVar[set[str]] = set()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        fields = cls.model_fields
        first = {"v": str(getattr(cls, "class_version", 1)), "type": ""}
        if "type" in fields:
            first["type"] = f'"{fields["type"].default}"'
        names = [name for name in ("v", "type") if name in fields]
        cls._body_first = set(names)
        cls._body_head = ("{" + ",".join(f'"{n}":{first[n]}' for n in names)).encode() \
            if names else b""

    def body(self) -> str:
        """The JSON the ledger stores (serialized by pydantic-core, defaults left out)."""
        cls = type(self)
        if not cls.compact_body:
            return self.model_dump_json()
        derived = self.derived()
        rest = self.__pydantic_serializer__.to_json(
            self, exclude_defaults=True,
            exclude=cls._body_first | derived if derived else cls._body_first)
        if not cls._body_head:
            return rest.decode()
        return (cls._body_head + (b"," + rest[1:] if rest != b"{}" else b"}")).decode()

    def derived(self) -> set[str]:
        """The fields `body()` leaves out because `expand` derives them from the others."""
        return set()

    @classmethod
    def expand(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """A body stored at the class's current version, with what `derived` left out put
        back."""
        return raw

