"""Comparing exported boxes with ground truth: how many true boxes a dataset found (IoU >= t).

Used by the demo against the simulator's ground truth, and handy against any labelled subset.
Matching is one-to-one and greedy by IoU, per image.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auto_label.boxes import greedy_matches, iou


@dataclass(frozen=True)
class MatchReport:
    images: int
    truth: int
    predicted: int
    matched: int

    @property
    def recall(self) -> float:
        return self.matched / self.truth if self.truth else 1.0


def record_boxes(record: dict[str, Any]) -> list[list[int]]:
    """The distinct boxes of a unified record (expression instances, else regions)."""
    boxes: list[list[int]] = []
    for expression in record.get("expressions", []):
        for instance in expression.get("instances", []):
            if instance["bbox"] not in boxes:
                boxes.append(instance["bbox"])
    return boxes


def match_count(predicted: list[list[int]], truth: list[list[int]], threshold: float) -> int:
    """How many truth boxes a one-to-one greedy matching at IoU >= `threshold` finds."""
    return len(greedy_matches(predicted, truth, threshold))


def match_ground_truth(records: Iterable[dict[str, Any]], truth: Iterable[dict[str, Any]], *,
                       threshold: float = 0.5) -> MatchReport:
    """`truth` rows hold `image_id` and `objects: [{bbox}]`."""
    by_id = {r["image_id"]: r for r in records}
    images = n_truth = n_pred = matched = 0
    for row in truth:
        record = by_id.get(row["image_id"])
        true_boxes = [o["bbox"] for o in row["objects"]]
        predicted = record_boxes(record) if record is not None else []
        images += 1
        n_truth += len(true_boxes)
        n_pred += len(predicted)
        matched += match_count(predicted, true_boxes, threshold)
    return MatchReport(images, n_truth, n_pred, matched)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass(frozen=True)
class RegionReport:
    regions: int
    correct: int
    """regions whose colour and type are those of the true object under the box"""
    expressions: int
    verified: int


def check_regions(records: Iterable[dict[str, Any]],
                  truth: Iterable[dict[str, Any]]) -> RegionReport:
    """`truth` rows hold `image_id` and `objects: [{bbox, color, shape}]`."""
    by_id = {r["image_id"]: r for r in records}
    regions = correct = expressions = verified = 0
    for row in truth:
        record = by_id.get(row["image_id"])
        if record is None:
            continue
        for region in record["regions"]:
            regions += 1
            best = max(row["objects"], key=lambda o: iou(o["bbox"], region["bbox"]))
            correct += (region["color"], region["type"]) == (best["color"], best["shape"])
        expressions += len(record["expressions"])
        verified += sum(1 for e in record["expressions"] if e["verified"])
    return RegionReport(regions, correct, expressions, verified)
