"""The image_grounding input: JSONL lines `{image_path, caption[, image_id, width, height]}`."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

from auto_label.errors import InputError
from auto_label.pipelines.contract import ImageInput, Inputs
from auto_label.pipelines.grounding.config import GroundingData
from auto_label.pipelines.inputs import (
    check_unique,
    image_id_of,
    iter_json_lines,
    positive_int,
    resolve_image_path,
    shown_path,
)


def read_grounding_inputs(data: GroundingData) -> Inputs:
    """Every image listed in `data.input_jsonl`, in file order. Raises InputError naming the
    file and line of the first bad line (the whole file is checked before any request)."""
    input_jsonl, image_root = data.input_jsonl, data.image_root
    if image_root and not Path(image_root).expanduser().is_dir():
        raise InputError(f"{shown_path(Path(image_root).expanduser())}: image_root is not a "
                         "directory")
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
    caption = unicodedata.normalize("NFC", caption)  # spans count code points of composed text
    path = resolve_image_path(image_path, image_root)
    return ImageInput(
        image_id=image_id_of(item, image_path, where),
        path=path,
        image_path=str(path),
        caption=caption,
        source=where,
        width=positive_int(item.get("width"), where, "width"),
        height=positive_int(item.get("height"), where, "height"),
    )
