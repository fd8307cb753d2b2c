"""Comparing exported boxes with ground truth: how many true boxes a dataset found (IoU >= t).

Used by the demo against the simulator's ground truth, and handy against any labelled subset.
Matching is one-to-one and greedy by IoU, per image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from auto_label.boxes import greedy_matches, iou
from auto_label.errors import InputError
from auto_label.pipelines.coerce import norm_phrase
from auto_label.truth import Box


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


# -- auto_label eval ---------------------------------------------------------------------------

THRESHOLDS = (0.3, 0.5, 0.7)
"""IoU thresholds phrase-grounding accuracy is reported at (Acc@0.5 is the standard one)."""
TOP_K = (1, 5, 10)


@dataclass(frozen=True)
class PhraseOutcome:
    image_id: str
    phrase: str
    truth: list[list[int]]
    predicted: list[list[int]]
    """the boxes of the matching expression, best score first (empty: none, or not extracted)"""
    extracted: bool
    """an expression of the record has this phrase's text (case, punctuation and a leading
    article aside)"""
    top_iou: float
    """IoU of the top-scoring box with its best truth box (0: no box)"""


@dataclass(frozen=True)
class GroundingScore:
    """Phrase grounding: a phrase is correct at t when its top-scoring box has IoU >= t with a
    truth box of that phrase (Acc@0.5 as in Flickr30k Entities and MDETR); recall@k when any of
    its k best boxes does at 0.5."""

    outcomes: list[PhraseOutcome]

    @property
    def phrases(self) -> int:
        return len(self.outcomes)

    @property
    def extracted(self) -> int:
        return sum(o.extracted for o in self.outcomes)

    def accuracy(self, threshold: float = 0.5) -> float:
        correct = sum(o.top_iou >= threshold for o in self.outcomes)
        return correct / self.phrases if self.phrases else 0.0

    def recall_at(self, k: int, threshold: float = 0.5) -> float:
        hits = sum(any(iou(p, t) >= threshold for p in o.predicted[:k] for t in o.truth)
                   for o in self.outcomes)
        return hits / self.phrases if self.phrases else 0.0

    @property
    def mean_iou(self) -> float:
        return sum(o.top_iou for o in self.outcomes) / self.phrases if self.phrases else 0.0

    def misses(self, threshold: float = 0.5) -> list[PhraseOutcome]:
        return [o for o in self.outcomes if o.top_iou < threshold]


def score_grounding(records: Iterable[dict[str, Any]], truth: dict[str, Any]) -> GroundingScore:
    """Every truth phrase of every truth image against the records (`truth`: image_id ->
    `truth.TruthImage`). A phrase whose image has no record, or whose text no expression has,
    counts as a miss."""
    by_id = {r["image_id"]: r for r in records}
    outcomes = []
    for image_id, image in sorted(truth.items()):
        record = by_id.get(image_id) or {}
        expressions = {norm_phrase(e["text"]): e for e in record.get("expressions", [])}
        for phrase, boxes in image.phrases.items():
            expression = expressions.get(norm_phrase(phrase))
            instances = sorted((expression or {}).get("instances", []),
                               key=lambda i: -(i.get("bbox_score") or 0.0))
            predicted = [list(i["bbox"]) for i in instances]
            truth_boxes = [list(b) for b in boxes]
            top = max((iou(predicted[0], t) for t in truth_boxes), default=0.0) \
                if predicted else 0.0
            outcomes.append(PhraseOutcome(image_id, phrase, truth_boxes, predicted,
                                          expression is not None, top))
    return GroundingScore(outcomes)


@dataclass(frozen=True)
class ReferringScore:
    """Referring: how many truth objects a region covers (IoU >= 0.5) with the right type (and
    colour, when the truth has one), and how many of the generated expressions point at the
    right boxes (`referents`)."""

    objects: int
    covered: int
    described: int
    """covered objects whose region has the truth's type (and colour)"""
    expressions: int
    """expressions the records hold"""
    judged: int
    """of them, those naming a type or colour the image's truth objects have"""
    correct: int
    """of the judged, those whose boxes are the objects their words name (`referents`)"""
    misses: list[str]

    @property
    def coverage(self) -> float:
        return self.covered / self.objects if self.objects else 0.0

    @property
    def expression_accuracy(self) -> float:
        return self.correct / self.judged if self.judged else 0.0


NOT_QUALIFIERS = frozenset([
    "a", "an", "the", "all", "both", "each", "every", "two", "three", "four", "five", "six",
    "seven", "eight", "nine", "ten", "and", "of", "object", "objects", "shape", "shapes",
    "thing", "things"])
"""words that do not narrow which objects an expression means"""


def _said(name: str, text: str) -> bool:
    """`name` (a type or colour, possibly several words) occurs in `text` as whole words, in the
    singular or with a plural -s/-es."""
    return re.search(rf"\b{re.escape(name.lower())}(?:e?s)?\b", text) is not None


def referents(text: str, objects: list[tuple[Box, str | None, str | None]]
              ) -> tuple[list[Box], bool] | None:
    """The truth objects an expression's words name: those with every type and colour the text
    mentions (of the types and colours the image's objects have), and whether the text says
    more than that (a place, an order: "on the left", "largest"), which may narrow them to a
    subset. None when the text names no type or colour of the image (it cannot be judged)."""
    lowered = text.lower()
    kinds = {k for _, k, _ in objects if k and _said(k, lowered)}
    colours = {c for _, _, c in objects if c and _said(c, lowered)}
    if not kinds and not colours:
        return None
    named = [box for box, kind, colour in objects
             if (not kinds or kind in kinds) and (not colours or colour in colours)]
    known = {w for name in kinds | colours for w in re.findall(r"[a-z]+", name.lower())}
    words = re.findall(r"[a-z]+", lowered)
    qualified = any(w not in NOT_QUALIFIERS and w.rstrip("s") not in known
                    and w.removesuffix("es") not in known and w not in known for w in words)
    return named, qualified


def _judge(predicted: list[list[int]], named: list[Box], qualified: bool) -> bool:
    """Every box matches (IoU >= 0.5, one-to-one) an object the words name; and all of them
    when nothing narrows the words."""
    truth = [list(b) for b in named]
    matched = len(greedy_matches(predicted, truth, 0.5))
    if not predicted or matched != len(predicted):
        return False
    return qualified or matched == len(truth)


def score_referring(records: Iterable[dict[str, Any]], truth: dict[str, Any]) -> ReferringScore:
    """Every truth object of every truth image against the records' regions, and every
    expression of the records against the objects its words name (`referents`; `truth`:
    image_id -> `truth.TruthImage`)."""
    by_id = {r["image_id"]: r for r in records}
    objects = covered = described = expressions = judged = correct = 0
    misses: list[str] = []
    for image_id, image in sorted(truth.items()):
        record = by_id.get(image_id) or {}
        regions = record.get("regions", [])
        for box, kind, colour in image.regions:
            objects += 1
            best = max(regions, key=lambda r: iou(r["bbox"], box), default=None)
            if best is None or iou(best["bbox"], box) < 0.5:
                misses.append(f"{image_id}: no region on {list(box)} ({kind})")
                continue
            covered += 1
            right = (kind is None or best.get("type") == kind) and \
                (colour is None or best.get("color") == colour)
            described += right
            if not right:
                misses.append(f"{image_id}: region {list(box)} described as "
                              f"{best.get('color')} {best.get('type')}, truth {colour} {kind}")
        for expression in record.get("expressions", []):
            expressions += 1
            meant = referents(expression["text"], image.regions)
            if meant is None:
                continue
            judged += 1
            predicted = [list(i["bbox"]) for i in expression.get("instances", [])]
            if _judge(predicted, *meant):
                correct += 1
            else:
                misses.append(f"{image_id}: {expression['text']!r} points at "
                              f"{len(predicted)} box(es); its words name {len(meant[0])} "
                              f"object(s){' (or some of them)' if meant[1] else ''}")
    return ReferringScore(objects, covered, described, expressions, judged, correct, misses)


@dataclass(frozen=True)
class EvalReport:
    results_dir: Path
    pipeline: str
    truth_images: int
    with_record: int
    """truth images the results have a record of"""
    grounding: GroundingScore | None = None
    referring: ReferringScore | None = None

    def figures(self) -> dict[str, float | int]:
        """The headline figures, flat (for tables, `--compare` and `--json`): fractions in
        0-1, counts as integers."""
        figures: dict[str, float | int] = {"truth images": self.truth_images,
                                           "with a record": self.with_record}
        if self.grounding is not None:
            g = self.grounding
            figures |= {"phrases": g.phrases, "phrases extracted": g.extracted}
            figures |= {f"Acc@{t:g}": g.accuracy(t) for t in THRESHOLDS}
            figures |= {f"recall@{k}": g.recall_at(k) for k in TOP_K}
            figures["mean IoU"] = g.mean_iou
        if self.referring is not None:
            r = self.referring
            figures |= {"objects": r.objects, "objects covered": r.coverage,
                        "regions described right": (r.described / r.objects
                                                    if r.objects else 0.0),
                        "expressions": r.expressions, "expressions judged": r.judged,
                        "expressions on the right boxes": r.expression_accuracy}
        return figures

    def misses(self, limit: int | None = None) -> list[str]:
        """One line per miss (a phrase not grounded at IoU 0.5, an object not covered...)."""
        lines: list[str] = []
        if self.grounding is not None:
            for o in self.grounding.misses():
                why = ("not extracted" if not o.extracted else "no box" if not o.predicted
                       else f"top box {o.predicted[0]} IoU {o.top_iou:.2f} with the truth")
                lines.append(f"{o.image_id}: {o.phrase!r}: {why}")
        if self.referring is not None:
            lines += self.referring.misses
        return lines[:limit] if limit is not None else lines

    def to_json(self) -> dict[str, Any]:
        return {"results_dir": str(self.results_dir), "pipeline": self.pipeline,
                "figures": self.figures(), "misses": self.misses()}


def evaluate(results_dir: str | Path, truth: str | Path, *,
             only_recorded: bool = False) -> EvalReport:
    """Score the records of `results_dir` against the truth file (unified JSONL, COCO or ODVG:
    `auto_label.truth`). Grounding results get phrase-grounding figures, referring results
    region coverage and expression-to-box correctness. A truth image without a record counts as
    missed, unless `only_recorded` (a pilot on part of the data: only the truth images the
    results have a record of are scored). Raises LedgerError when there is no
    ledger (or no run) there, InputError for a truth file it cannot read."""
    from auto_label.api import records, run_pipeline_name
    from auto_label.truth import read_truth

    results_dir = Path(results_dir)
    pipeline = run_pipeline_name(results_dir)
    truth_images = read_truth(truth)
    wanted = "phrases" if pipeline == "image_grounding" else "regions"
    if not any(getattr(image, wanted) for image in truth_images.values()):
        what = ("expressions with text and boxes (annotations.jsonl's `expressions`, COCO "
                "`sentences` or `tokens_positive`, ODVG `grounding.regions`)"
                if wanted == "phrases" else "objects (annotations.jsonl's `regions`, COCO "
                "annotations, ODVG `detection.instances`)")
        raise InputError(f"{truth}: {len(truth_images)} images but no {what}: nothing to score "
                         f"{pipeline} results against")
    recs = [r for r in records(results_dir) if r["image_id"] in truth_images]
    if only_recorded:
        recorded = {r["image_id"] for r in recs}
        truth_images = {k: v for k, v in truth_images.items() if k in recorded}
    report = EvalReport(results_dir, pipeline, len(truth_images), len(recs))
    if pipeline == "image_grounding":
        return replace(report, grounding=score_grounding(recs, truth_images))
    return replace(report, referring=score_referring(recs, truth_images))
