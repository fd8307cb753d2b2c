"""COCO detection JSON, with the referring expressions and phrase spans grounding datasets carry.

`coco.json` holds `images`, `annotations` and `categories` as the COCO format defines them
(https://cocodataset.org/#format-data: `bbox` is `[x, y, width, height]` in pixels, ids are
integers), loadable by pycocotools. On top, as the referring and phrase-grounding datasets do:

- each annotation (one per distinct box of an image) has `sentences`: the expressions that refer
  to it, as RefCOCO's refs carry them (`{"sent_id", "raw", "sent"}`, sent lower-cased; Yu et al.
  2016, the refer toolkit's refs(unc).p), with our `expression_id` and `verified` beside them;
  region descriptions of the referring pipeline come as sentences with `"source": "region"`;
- each image has `caption` (the cleaned caption the spans index into) and `original_id` (our
  image_id), and each annotation `tokens_positive`: the `[start, end)` character spans of its
  phrases in that caption, as MDETR's annotations (final_*.json, read by its and mmdetection's
  loaders) give them; `score` is the box's confidence.

Categories come from the region type of the box (referring), else the expression's noun chunk,
else its text. Pure half: `CocoBuilder.add` (record -> image and annotation entries). I/O half:
`CocoFile`, which streams entries to temporary files so that memory stays flat, then assembles
`coco.json` atomically.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import IO, Any

from auto_label.exports.atomic import AtomicTextFile
from auto_label.exports.base import Written
from auto_label.exports.filters import RecordFilter, category_of
from auto_label.pipelines.records import ImageRecord

COCO_FILE = "coco.json"


class CocoBuilder:
    """Numbers images, annotations and categories across records (pure: no I/O)."""

    def __init__(self, record_filter: RecordFilter | None = None) -> None:
        self.filter = record_filter or RecordFilter()
        self.categories: dict[str, int] = {}
        self.images = 0
        self.annotations = 0

    def category_id(self, name: str) -> int:
        if name not in self.categories:
            self.categories[name] = len(self.categories) + 1
        return self.categories[name]

    def add(self, record: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """One unified record -> its COCO image entry and annotation entries (ids continue from
        the records added before)."""
        record = self.filter.apply(record)
        self.images += 1
        image_id = self.images
        caption = record.get("cleaned_caption") or record.get("caption") or ""
        image = {"id": image_id, "file_name": record["image_path"], "width": record["width"],
                 "height": record["height"], "caption": caption,
                 "original_id": record["image_id"]}
        by_box: dict[tuple[int, ...], dict[str, Any]] = {}

        def annotation(bbox: list[int], category: str) -> dict[str, Any]:
            key = tuple(bbox)
            if key not in by_box:
                x1, y1, x2, y2 = bbox
                self.annotations += 1
                by_box[key] = {
                    "id": self.annotations, "image_id": image_id,
                    "category_id": self.category_id(category),
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0, "score": None, "sentences": [], "tokens_positive": []}
            return by_box[key]

        for region in record.get("regions", []):
            entry = annotation(list(region["bbox"]), category_of(record, None, region["bbox"]))
            if region.get("description"):
                self._sentence(entry, str(region["description"]), source="region")
        for expression in record.get("expressions", []):
            for instance in expression.get("instances", []):
                bbox = list(instance["bbox"])
                entry = annotation(bbox, category_of(record, expression, bbox))
                score = instance.get("bbox_score")
                if score is not None:
                    entry["score"] = max(score, entry["score"] or 0.0)
                self._sentence(entry, str(expression["text"]), source="expression",
                               expression_id=expression.get("expression_id"),
                               verified=expression.get("verified"))
                span = expression.get("char_span")
                if span is not None and list(span) not in entry["tokens_positive"]:
                    entry["tokens_positive"].append(list(span))
        return image, list(by_box.values())

    @staticmethod
    def _sentence(entry: dict[str, Any], text: str, **extra: Any) -> None:
        if any(s["raw"] == text for s in entry["sentences"]):
            return
        entry["sentences"].append({"sent_id": len(entry["sentences"]), "raw": text,
                                   "sent": text.lower(), **extra})

    def category_entries(self) -> list[dict[str, Any]]:
        return [{"id": cid, "name": name, "supercategory": "object"}
                for name, cid in self.categories.items()]


class CocoFile:
    """A sink writing `results_dir/coco.json`: images and annotations are streamed to two
    temporary files as records come, then joined with the categories into one document."""

    def __init__(self, results_dir: Path, record_filter: RecordFilter | None = None) -> None:
        self.path = results_dir / COCO_FILE
        self.builder = CocoBuilder(record_filter)
        results_dir.mkdir(parents=True, exist_ok=True)
        self._images: IO[str] = tempfile.TemporaryFile(  # noqa: SIM115 - closed in close/discard
            "w+", encoding="utf-8", dir=results_dir)
        self._annotations: IO[str] = tempfile.TemporaryFile(  # noqa: SIM115 - likewise
            "w+", encoding="utf-8", dir=results_dir)

    def add(self, record: ImageRecord) -> None:
        if record.record is None:
            return
        image, annotations = self.builder.add(record.record)
        self._images.write(("," if self.builder.images > 1 else "") + json.dumps(image))
        for entry in annotations:
            self._annotations.write(("" if entry["id"] == 1 else ",") + json.dumps(entry))

    def close(self) -> Written:
        out = AtomicTextFile(self.path, durable=True)
        try:
            info = {"description": "written by auto_label export --format coco",
                    "filter": self.builder.filter.describe()}
            out.write('{"info": ' + json.dumps(info) + ', "images": [')
            _copy(self._images, out)
            out.write('], "annotations": [')
            _copy(self._annotations, out)
            out.write('], "categories": ' + json.dumps(self.builder.category_entries()) + "}\n")
            out.commit()
        except BaseException:
            out.discard()
            raise
        finally:
            self.discard()
        return Written([self.path], self.builder.images)

    def discard(self) -> None:
        self._images.close()
        self._annotations.close()


def _copy(source: IO[str], out: AtomicTextFile) -> None:
    source.flush()
    source.seek(0)
    for chunk in iter(lambda: source.read(1 << 20), ""):
        out.write(chunk)
