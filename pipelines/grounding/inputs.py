"""The image_grounding input: JSONL lines `{image_path, caption[, image_id, width, height]}`."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from auto_label.errors import InputError
from auto_label.pipelines.contract import ImageInput, Inputs, InputScan
from auto_label.pipelines.grounding.config import GroundingData
from auto_label.pipelines.inputs import (
    check_unique,
    check_unique_ids,
    image_id_of,
    iter_json_lines,
    positive_int,
    resolve_image_path,
    shown_path,
)


def read_grounding_inputs(data: GroundingData) -> Inputs:
    """Every image listed in `data.input_jsonl`, in file order. Raises InputError naming the
    file and line of the first bad line (the whole file is checked before any request)."""
    input_jsonl, image_root = data.input_jsonl, _checked_root(data.image_root)
    images = [_grounding_item(item, where, image_root)
              for where, item in iter_json_lines(input_jsonl, "input_jsonl")]
    if not images:
        raise InputError(f"{input_jsonl}: no images listed (the file is empty)")
    check_unique(images)
    return Inputs(images)


def scan_grounding_inputs(data: GroundingData, keep_ids: bool = False) -> InputScan:
    """`read_grounding_inputs` without holding the images: the whole file is checked first (the
    same InputErrors, before any request), then read again in batches; the image ids are kept
    when asked."""
    input_jsonl, image_root = data.input_jsonl, _checked_root(data.image_root)

    def ids() -> Iterator[tuple[str, str]]:
        for where, item in iter_json_lines(input_jsonl, "input_jsonl"):
            yield _checked(item, where)[0], where

    kept: set[str] | None = set() if keep_ids else None
    count = check_unique_ids(ids(), ids, kept)
    if not count:
        raise InputError(f"{input_jsonl}: no images listed (the file is empty)")

    def batches(size: int) -> Iterator[list[ImageInput]]:
        batch: list[ImageInput] = []
        for where, item in iter_json_lines(input_jsonl, "input_jsonl"):
            batch.append(_grounding_item(item, where, image_root))
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    return InputScan(count, [], batches, frozenset(kept) if kept is not None else None)


def _checked_root(image_root: str) -> str:
    if image_root and not Path(image_root).expanduser().is_dir():
        raise InputError(f"{shown_path(Path(image_root).expanduser())}: image_root is not a "
                         "directory")
    return image_root


def _checked(item: dict[str, Any], where: str) -> tuple[str, str, str]:
    """(image_id, image_path, caption NFC) of a line; InputError naming `where` if unusable."""
    image_path = item.get("image_path")
    if not isinstance(image_path, str) or not image_path.strip():
        raise InputError(f"{where}: image_path is missing or not a string")
    caption = item.get("caption")
    if not isinstance(caption, str):
        raise InputError(f"{where}: caption is missing or not a string")
    if not caption.strip():
        raise InputError(f"{where}: caption is empty")
    caption = unicodedata.normalize("NFC", caption)  # spans count code points of composed text
    image_id = image_id_of(item, image_path, where)
    positive_int(item.get("width"), where, "width")
    positive_int(item.get("height"), where, "height")
    return image_id, image_path, caption


def _grounding_item(item: dict[str, Any], where: str, image_root: str) -> ImageInput:
    image_id, image_path, caption = _checked(item, where)
    path = resolve_image_path(image_path, image_root)
    return ImageInput(
        image_id=image_id,
        path=path,
        image_path=str(path),
        caption=caption,
        source=where,
        width=item.get("width"),
        height=item.get("height"),
    )
