"""JSONL inputs, and the image_grounding input: `{image_path, caption[, image_id, width, height]}`.

The whole file is checked before any request is made; a problem is one `InputError` naming the file
and line. Problems with an image file itself (missing, corrupt) are not found here: they fail that
image's steps when it is seeded, and the run goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from auto_label.errors import InputError
from auto_label.pipelines.steps import ImageInput, Inputs


def resolve_image_path(image_path: str, image_root: str) -> Path:
    path = Path(image_path).expanduser()
    if path.is_absolute() or not image_root:
        return path
    return Path(image_root).expanduser() / path


def _positive_int(value: Any, where: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{where}: {key} must be a positive integer")
    return value


def iter_json_lines(path: Path, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`file:line`, object) for each non-blank line; InputError naming the line otherwise."""
    try:
        handle = path.open(encoding="utf-8")
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


def read_grounding_inputs(input_jsonl: Path, image_root: str) -> Inputs:
    """Every image listed in `input_jsonl`, in file order."""
    if image_root and not Path(image_root).expanduser().is_dir():
        raise InputError(f"{image_root}: image_root is not a directory")
    images = [_grounding_item(item, where, image_root)
              for where, item in iter_json_lines(input_jsonl, "input_jsonl")]
    if not images:
        raise InputError(f"{input_jsonl}: no images listed (the file is empty)")
    check_unique(images)
    return Inputs(images)


def _grounding_item(item: dict[str, Any], where: str, image_root: str) -> ImageInput:
    image_path = item.get("image_path")
    if not isinstance(image_path, str) or not image_path.strip():
        raise InputError(f"{where}: image_path is missing or not a string")
    caption = item.get("caption")
    if not isinstance(caption, str):
        raise InputError(f"{where}: caption is missing or not a string")
    if not caption.strip():
        raise InputError(f"{where}: caption is empty")
    path = resolve_image_path(image_path, image_root)
    return ImageInput(
        image_id=image_id_of(item, image_path, where),
        path=path,
        image_path=str(path),
        caption=caption,
        source=where,
        width=_positive_int(item.get("width"), where, "width"),
        height=_positive_int(item.get("height"), where, "height"),
    )


def image_id_of(item: dict[str, Any], image_path: str, where: str) -> str:
    image_id = item.get("image_id")
    if image_id is None:
        return Path(image_path).stem
    if not isinstance(image_id, str | int) or isinstance(image_id, bool) or not str(image_id):
        raise InputError(f"{where}: image_id must be a non-empty string")
    return str(image_id)
