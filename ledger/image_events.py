"""The events of an image's file: read and checked (`image_seeded`), or refused
(`image_rejected`). Part of the ledger's events (`auto_label.ledger.events`, which re-exports
them); versioned and stored as any event is.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Literal

from pydantic import Field

from auto_label.ledger.event_base import EventBase, columns_in_row
from auto_label.ledger.fingerprint import content_hash

_Event = EventBase


DEFAULT_INGEST = "v1:exif=apply"
"""How images are ingested under the default settings (`auto_label.pipelines.images.decode`,
`IngestSettings.key`): an image_seeded body leaves it out. A default is part of the stored format:
when the pipelines' default changes, this stays (bodies then hold theirs)."""


def near_source(source: str, path: str) -> str | None:
    """`source` (a file, or `file:line`) relative to the folder of the image file `path`, when
    both are absolute POSIX paths, the relative form is shorter and `resolve_source` reads it back
    as `source`; else None. E.g. ("/d/in.jsonl:7", "/d/images/a.png") -> "../in.jsonl:7"."""
    file, sep, line = source.rpartition(":")
    if not (sep and line.isdigit()):
        file, line = source, ""
    if not (file.startswith("/") and path.startswith("/")):
        return None
    near = posixpath.relpath(file, posixpath.dirname(path)) + (f":{line}" if line else "")
    return near if len(near) < len(source) and resolve_source(near, path) == source else None


def resolve_source(near: str, path: str) -> str:
    """The source `near` names relative to the folder of the image file `path` (`near_source`)."""
    file, sep, line = near.rpartition(":")
    if not (sep and line.isdigit()):
        file, line = near, ""
    whole = posixpath.normpath(posixpath.join(posixpath.dirname(path), file))
    return whole + (f":{line}" if line else "")


class ImageSeeded(_Event):
    """An image read and checked: its file, and the frame its boxes are stored in."""

    class_version = 5
    compact_body = True
    type: Literal["image_seeded"] = "image_seeded"
    image_id: str
    path: str
    sha256: str
    width: int = Field(description="of the upright image (EXIF orientation applied): the frame "
                                   "every box of the image is stored in")
    height: int
    size: int
    mtime_ns: int
    caption: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="pipeline inputs, e.g. boxes")
    source: str = Field(default="", description="where the image came from, e.g. input.jsonl:12")
    format: str | None = Field(default=None, description="the format found in the content")
    stored_width: int | None = Field(default=None, description="as stored in the file")
    stored_height: int | None = None
    orientation: int = Field(default=1, description="the EXIF orientation applied (1: none)")
    conversion: str | None = Field(
        default=None, description="what was done that changes what the model sees (a pixel "
                                  "mode converted, transparency composited, a first frame...)")
    ingest: str = Field(default=DEFAULT_INGEST,
                        description="how it was ingested: a change seeds it again")

    @staticmethod
    def upcast_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
        """v1 (0.1.0) sent the stored pixels: the frame is the stored size, nothing applied."""
        return {**raw, "v": 2, "format": None, "stored_width": raw.get("width"),
                "stored_height": raw.get("height"), "orientation": 1, "conversion": None,
                "ingest": ""}

    @staticmethod
    def upcast_v2_v3(raw: dict[str, Any]) -> dict[str, Any]:
        """A v3 body leaves out the stored size when it is the upright size (`derived`); a v2
        body always holds it."""
        return {**raw, "v": 3}

    @staticmethod
    def upcast_v3_v4(raw: dict[str, Any]) -> dict[str, Any]:
        """A v4 body leaves out its row's columns and the `image_path` of its extra when it is
        the file's path (a v3 body holds both); both leave out the stored size when it is the
        upright size."""
        return ImageSeeded._upright({**raw, "v": 4})

    @staticmethod
    def upcast_v4_v5(raw: dict[str, Any]) -> dict[str, Any]:
        """v5's default ingest is the default settings' (`DEFAULT_INGEST`); v4's was empty."""
        return {**raw, "v": 5, "ingest": raw.get("ingest", "")}

    def derived(self) -> set[str]:
        if (self.stored_width, self.stored_height) == (self.width, self.height):
            return {"stored_width", "stored_height"}
        return set()

    def body(self) -> str:
        """Compact (`Compact.body`), and without the image_path of `extra` (the path a record
        shows) when it is the file's path, as it is for every dataset image: a body whose extra
        has no image_path says so (`"image_path":null`, outside extra); stored sizes of None
        are written (null), since a left-out size is the upright size. From v5 on, a source
        that can be named relative to the file's folder is (`"near"`: `near_source`)."""
        left_out = type(self)._in_row | self.derived()
        exclude: set[str] | dict[str, Any] = left_out
        if self.extra.get("image_path", None) == self.path and "image_path" in self.extra:
            if len(self.extra) == 1:
                exclude = left_out | {"extra"}
            else:
                exclude = {**dict.fromkeys(left_out, True), "extra": {"image_path"}}
        near = near_source(self.source, self.path) if self.source else None
        if near is not None:
            exclude = exclude | {"source"} if isinstance(exclude, set) \
                else {**exclude, "source": True}
        text = self.__pydantic_serializer__.to_json(self, exclude_defaults=True,
                                                    exclude=exclude).decode()
        said = ['"image_path":null'] if "image_path" not in self.extra else []
        if near is not None:
            said.append('"near":' + json.dumps(near, ensure_ascii=False))
        if self.stored_width is None and self.stored_height is None:  # not the upright size
            said.append('"stored_width":null,"stored_height":null')
        if not said:
            return text
        return (text[:-1] + "," if text != "{}" else "{") + ",".join(said) + "}"

    @classmethod
    def expand(cls, raw: dict[str, Any]) -> dict[str, Any]:
        raw = cls._upright(raw)
        if "near" in raw:  # its source, relative to its file's folder (from v5 on)
            near, path = raw["near"], raw.get("path")
            source = resolve_source(near, path) if isinstance(near, str) and \
                isinstance(path, str) else near
            raw = {**{k: v for k, v in raw.items() if k != "near"}, "source": source}
        if "image_path" in raw:  # its extra has no image_path
            return {k: v for k, v in raw.items() if k != "image_path"}
        extra = raw.get("extra", {})
        if isinstance(extra, dict) and "image_path" not in extra:
            return {**raw, "extra": {**extra, "image_path": raw.get("path")}}
        return raw

    @staticmethod
    def _upright(raw: dict[str, Any]) -> dict[str, Any]:
        """A left-out stored size is the upright size (from v3 on)."""
        if "stored_width" in raw or "stored_height" in raw:
            return raw
        return {**raw, "stored_width": raw.get("width"), "stored_height": raw.get("height")}

    @property
    def image_key(self) -> str:
        """What the model is shown, as a key: the file's sha256 when it sees the file's own
        pixels (so fingerprints of such images never change), else a hash of the sha256 with
        the orientation and conversion applied."""
        if self.orientation == 1 and self.conversion is None:
            return self.sha256
        return content_hash({"sha256": self.sha256, "orientation": self.orientation,
                             "conversion": self.conversion})


class ImageRejected(_Event):
    class_version = 2
    compact_body = True
    upcast_v1_v2 = columns_in_row(2)
    type: Literal["image_rejected"] = "image_rejected"
    image_id: str
    path: str
    kind: str
    message: str
    source: str = ""
