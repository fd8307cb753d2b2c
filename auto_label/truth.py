"""Ground truth for `auto_label eval`, read from the formats people have it in.

- our unified schema (annotations.jsonl's shape, one JSON object per line): `expressions[]` with
  `text` and `instances[].bbox`, `regions[]` with `bbox`, `type`, `color`;
- COCO JSON (what `export --format coco` writes, RefCOCO-style `sentences` or MDETR-style
  `tokens_positive` into the image's `caption` naming the phrases): an annotation's phrases are
  its sentences (`raw`, else `sent`), else the caption spans of `tokens_positive`; its category
  name is its region type;
- ODVG JSONL (Grounding DINO's): `grounding.regions[]` (`phrase`, `bbox`) and
  `detection.instances[]` (`bbox`, `category`).

The format is told by the content: a JSON document with `images` and `annotations` is COCO; JSON
lines with `filename` are ODVG; JSON lines with `image_id` are unified. Boxes are `[x1, y1, x2,
y2]` in pixels (COCO's `[x, y, w, h]` converted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auto_label.errors import InputError

Box = tuple[int, int, int, int]


@dataclass
class TruthImage:
    image_id: str
    """our image_id (COCO: `original_id`, else the file name's stem)"""
    file_name: str
    phrases: dict[str, list[Box]] = field(default_factory=dict)
    """phrase text -> the boxes it refers to"""
    regions: list[tuple[Box, str | None, str | None]] = field(default_factory=list)
    """(box, type, colour) of every object"""


def _box(values: Any) -> Box:
    x1, y1, x2, y2 = (round(float(v)) for v in values)
    return x1, y1, x2, y2


def read_truth(path: str | Path) -> dict[str, TruthImage]:
    """The truth of `path`, by image_id. Raises InputError (one line naming the file, and the
    line where one is at fault) for a file that is missing or in none of the formats."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path} ({path.resolve()}): cannot read the truth file "
                         f"({exc.strerror or exc})") from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict) and "images" in document and "annotations" in document:
            return _coco(document)
    images: dict[str, TruthImage] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg}); the truth must be "
                             "COCO JSON, ODVG JSONL or annotations.jsonl-shaped JSONL") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number}: expected a JSON object")
        try:
            image = _odvg(row) if "filename" in row else _unified(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}:{number}: not a truth line this tool reads "
                             f"({type(exc).__name__}: {exc})") from None
        images[image.image_id] = image
    return images


def _unified(row: dict[str, Any]) -> TruthImage:
    image = TruthImage(str(row["image_id"]), str(row.get("image_path", "")))
    for expression in row.get("expressions", []):
        boxes = [_box(i["bbox"]) for i in expression.get("instances", [])]
        image.phrases.setdefault(str(expression["text"]), []).extend(boxes)
    for region in row.get("regions", []):
        image.regions.append((_box(region["bbox"]), region.get("type"), region.get("color")))
    return image


def _odvg(row: dict[str, Any]) -> TruthImage:
    file_name = str(row["filename"])
    image = TruthImage(Path(file_name).stem, file_name)
    for region in (row.get("grounding") or {}).get("regions", []):
        image.phrases.setdefault(str(region["phrase"]), []).append(_box(region["bbox"]))
    for instance in (row.get("detection") or {}).get("instances", []):
        image.regions.append((_box(instance["bbox"]), instance.get("category"), None))
    return image


def _coco(document: dict[str, Any]) -> dict[str, TruthImage]:
    categories = {c["id"]: c.get("name") for c in document.get("categories", [])}
    by_id: dict[Any, TruthImage] = {}
    captions: dict[Any, str] = {}
    for entry in document["images"]:
        file_name = str(entry.get("file_name", ""))
        image_id = str(entry.get("original_id") or Path(file_name).stem)
        by_id[entry["id"]] = TruthImage(image_id, file_name)
        captions[entry["id"]] = str(entry.get("caption") or "")
    for ann in document["annotations"]:
        image = by_id.get(ann["image_id"])
        if image is None:
            continue
        x, y, w, h = ann["bbox"]
        box = _box((x, y, x + w, y + h))
        image.regions.append((box, categories.get(ann.get("category_id")), None))
        phrases = [str(s.get("raw") or s.get("sent")) for s in ann.get("sentences", [])
                   if s.get("source", "expression") == "expression"]
        caption = captions[ann["image_id"]]
        phrases += [caption[s:e] for s, e in ann.get("tokens_positive", []) if caption[s:e]]
        for phrase in dict.fromkeys(phrases):
            image.phrases.setdefault(phrase, []).append(box)
    return {image.image_id: image for image in by_id.values()}
