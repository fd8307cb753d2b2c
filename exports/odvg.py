"""ODVG: the JSONL that Grounding DINO (Open-GroundingDino) and MM-Grounding-DINO train on.

One line per image, with the field names their loaders read (Open-GroundingDino
`datasets/odvg.py` and its README "ODVG Dataset Format"; mmdetection's `ODVGDataset`):
`filename`, `height`, `width`, then

- `grounding` (visual-grounding mode): `caption` and `regions`, each region one box with its
  `phrase` and `tokens_positive` (the `[start, end)` character spans of the phrase in the
  caption, when known); from the expressions of a record;
- `detection` (object-detection mode): `instances`, each `{"bbox", "label", "category"}`, with
  `label` an integer key of `label_map.json` (`{"0": "car", ...}`, which the loader takes as
  `label_map_anno`); from the referring pipeline's regions (the KITTI boxes and their types).

Boxes are `[x1, y1, x2, y2]` in pixels of the image. A referring record gives both parts; a
grounding record only `grounding`. Pure half: `odvg_line`. I/O half: `OdvgFiles`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auto_label.exports.atomic import AtomicTextFile, write_atomic
from auto_label.exports.base import Written
from auto_label.exports.filters import RecordFilter
from auto_label.pipelines.records import ImageRecord

ODVG_FILE = "odvg.jsonl"
LABEL_MAP_FILE = "label_map.json"


def odvg_line(record: dict[str, Any], labels: dict[str, int]) -> dict[str, Any] | None:
    """One unified record -> its ODVG object (None when it has no box); `labels` (category ->
    label) grows with the categories met."""
    line: dict[str, Any] = {"filename": record["image_path"], "height": record["height"],
                            "width": record["width"]}
    caption = record.get("cleaned_caption") or record.get("caption") or ""
    regions = []
    for expression in record.get("expressions", []):
        span = expression.get("char_span")
        for instance in expression.get("instances", []):
            region: dict[str, Any] = {"bbox": list(instance["bbox"]),
                                      "phrase": expression["text"]}
            if span is not None:
                region["tokens_positive"] = [list(span)]
            if instance.get("bbox_score") is not None:
                region["score"] = instance["bbox_score"]
            regions.append(region)
    if regions:
        line["grounding"] = {"caption": caption, "regions": regions}
    instances = []
    for region in record.get("regions", []):
        category = str(region.get("type") or "object").strip().lower()
        label = labels.setdefault(category, len(labels))
        instances.append({"bbox": list(region["bbox"]), "label": label, "category": category})
    if instances:
        line["detection"] = {"instances": instances}
    return line if regions or instances else None


class OdvgFiles:
    """A sink writing `results_dir/odvg.jsonl` (and `label_map.json` when detection parts exist)."""

    def __init__(self, results_dir: Path, record_filter: RecordFilter | None = None) -> None:
        self.results_dir = results_dir
        self.path = results_dir / ODVG_FILE
        self.filter = record_filter or RecordFilter()
        self.labels: dict[str, int] = {}
        self._file = AtomicTextFile(self.path, durable=True)
        self._lines = 0

    def add(self, record: ImageRecord) -> None:
        if record.record is None:
            return
        line = odvg_line(self.filter.apply(record.record), self.labels)
        if line is not None:
            self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._lines += 1

    def close(self) -> Written:
        self._file.commit()
        paths = [self.path]
        if self.labels:
            label_map = {str(label): name for name, label in self.labels.items()}
            write_atomic(self.results_dir / LABEL_MAP_FILE,
                         [json.dumps(label_map, ensure_ascii=False, indent=1) + "\n"],
                         durable=True)
            paths.append(self.results_dir / LABEL_MAP_FILE)
        return Written(paths, self._lines)

    def discard(self) -> None:
        self._file.discard()
