"""Reading inputs, for every pipeline: JSONL lines with their `file:line`, image paths, image ids.

A problem is one `InputError` naming the file and line. Problems with an image file itself
(missing, corrupt) are not found here: they fail that image's steps when it is seeded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from auto_label.errors import InputError
from auto_label.pipelines.contract import ImageInput


def resolve_image_path(image_path: str, image_root: str) -> Path:
    """`image_path` under `image_root` when it is relative and a root is set."""
    path = Path(image_path).expanduser()
    if path.is_absolute() or not image_root:
        return path
    return Path(image_root).expanduser() / path


def positive_int(value: Any, where: str, key: str) -> int | None:
    """None, or a positive int; InputError naming `where` and `key` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{where}: {key} must be a positive integer")
    return value


def iter_json_lines(path: Path, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`file:line`, object) for each non-blank line; InputError naming the line otherwise."""
    try:
        handle = path.open(encoding="utf-8-sig")  # a BOM (Windows exports) is not data
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: {what} is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror})") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
                if not isinstance(item, dict):
                    raise InputError(f"{where}: expected a JSON object")
                yield where, item
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None


def check_unique(items: list[ImageInput]) -> None:
    """InputError naming the second listing of any image_id."""
    first: dict[str, str] = {}
    for item in items:
        if item.image_id in first:
            line = first[item.image_id].rsplit(":", 1)[-1]
            raise InputError(f"{item.source}: duplicate image_id {item.image_id!r} "
                             f"(first at line {line})")
        first[item.image_id] = item.source


def image_id_of(item: dict[str, Any], image_path: str, where: str) -> str:
    """The item's `image_id`, else the file name stem; InputError naming `where` if unusable."""
    image_id = item.get("image_id")
    if image_id is None:
        return Path(image_path).stem
    if not isinstance(image_id, str | int) or isinstance(image_id, bool) or not str(image_id):
        raise InputError(f"{where}: image_id must be a non-empty string")
    return str(image_id)
