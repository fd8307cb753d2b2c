"""What every training format may leave out of a record: boxes under a score, expressions that a
check did not confirm. Pure functions over unified records (the schema of annotations.jsonl).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from auto_label.pipelines.contract import Pipeline
from auto_label.pipelines.records import ImageRecord


@dataclass(frozen=True)
class RecordFilter:
    """Which parts of a unified record a format exports."""

    min_score: float | None = None
    """instances with a `bbox_score` below this are left out (None: all)"""
    verified_only: bool = False
    """only expressions a check confirmed (`verified: true`; referring step 3)"""

    @property
    def keeps_everything(self) -> bool:
        return self.min_score is None and not self.verified_only

    def describe(self) -> str:
        parts = []
        if self.min_score is not None:
            parts.append(f"score >= {self.min_score:g}")
        if self.verified_only:
            parts.append("verified only")
        return ", ".join(parts) or "everything"

    def apply(self, record: dict[str, Any]) -> dict[str, Any]:
        """A copy of `record` with what the filter leaves out removed: low-score instances, and
        (verified_only) unverified expressions. Expressions left with no instance stay (with
        none), as in annotations.jsonl; regions are kept. A filter that keeps everything
        returns `record` itself."""
        if self.keeps_everything:
            return record
        kept = copy.deepcopy(record)
        expressions = []
        for expression in kept.get("expressions", []):
            if self.verified_only and expression.get("verified") is not True:
                continue
            if self.min_score is not None:
                expression["instances"] = [
                    i for i in expression.get("instances", [])
                    if i.get("bbox_score") is None or i["bbox_score"] >= self.min_score]
            expressions.append(expression)
        kept["expressions"] = expressions
        return kept


def grounded(record: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(expression, instance) pairs of a record, in order."""
    for expression in record.get("expressions", []):
        for instance in expression.get("instances", []):
            yield expression, instance


def category_of(record: dict[str, Any], expression: dict[str, Any] | None,
                bbox: Sequence[int]) -> str:
    """The category name of a box: the type of the region with that very box (referring), else
    the expression's noun chunk, else its text; lower case."""
    for region in record.get("regions", []):
        if list(region.get("bbox", [])) == list(bbox) and region.get("type"):
            return str(region["type"]).strip().lower()
    if expression is not None:
        noun = expression.get("noun_chunk") or expression.get("text") or "object"
        return str(noun).strip().lower()
    return "object"


def as_of_step(record: ImageRecord, pipeline: Pipeline, step: str) -> ImageRecord:
    """The image's record made of one step's output and the outputs that step builds on (its
    upstream, transitively): e.g. referring step 2's grouped expressions before step 3 checked
    them. No record when that step has no output for the image."""
    wanted = {step}
    pending = [step]
    while pending:
        for need in pipeline.step(pending.pop()).needs:
            if need not in wanted:
                wanted.add(need)
                pending.append(need)
    outputs = {n: o for n, o in record.outputs.items() if n in wanted}
    unified = (pipeline.to_record(record.seed, record.image_id, outputs)
               if step in outputs and record.seed is not None else None)
    return replace(record, outputs=outputs, record=unified)
