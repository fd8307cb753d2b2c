"""The unified record of an image_referring_expression image: its regions, caption and the
expressions of step 3 (else step 2), with the seeded KITTI boxes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auto_label.ledger.events import ImageSeeded
from auto_label.pipelines.contract import StepOutput
from auto_label.pipelines.records import Expression, unified_record
from auto_label.pipelines.referring.kitti import clip_boxes
from auto_label.pipelines.referring.outputs import (
    CaptionOutput,
    CheckedOutput,
    GroupsOutput,
    RegionsOutput,
)
from auto_label.pipelines.referring.steps import STEPS

SOURCE = "image_referring_expression"


def seeded_kitti(seed: ImageSeeded) -> tuple[list[list[int | str]], list[str]]:
    """The seed's KITTI boxes clipped to the image, and the rows that fell outside it."""
    return clip_boxes(seed.extra.get("kitti", []), seed.extra.get("kitti_lines", []),
                      seed.width, seed.height)


def to_record(seed: ImageSeeded, image_id: str,
              outputs: Mapping[str, StepOutput]) -> dict[str, Any]:
    regions = outputs.get("0")
    caption = outputs.get("1")
    final = outputs.get("3") or outputs.get("2")
    assert regions is None or isinstance(regions, RegionsOutput)
    assert caption is None or isinstance(caption, CaptionOutput)
    assert final is None or isinstance(final, GroupsOutput | CheckedOutput)
    text = caption.caption if caption is not None else None
    verified = True if "3" in outputs else None
    expressions = [Expression(text=e.text, boxes=[(i.bbox, i.score) for i in e.instances],
                              verified=verified)
                   for e in (final.expressions if final is not None else [])]
    return unified_record(
        seed, image_id, source=SOURCE,
        steps=[s.name for s in STEPS if s.number in outputs],
        caption=text, cleaned_caption=text,
        regions=[r.model_dump() for r in regions.regions] if regions is not None else [],
        expressions=expressions, kitti_bboxes=seeded_kitti(seed)[0])


def check_seed(seed: ImageSeeded) -> list[str]:
    """The KITTI rows of a seeded image that lie outside it (its size is known only now)."""
    return seeded_kitti(seed)[1]
