"""The image_referring_expression pipeline: images + KITTI boxes -> grounded, verified expressions.

Step 0 describes each seeded box and step 1 captions the image (both need only the seed, so they
run side by side); step 2 groups the regions into expressions; step 3 checks each expression's
boxes and keeps, removes or re-aligns them, never adding any.

Every box in a step output is one of the image's seeded boxes: a box the model writes in step 2 or
3 is snapped to the seeded box it overlaps most when their IoU is at least 0.5, and dropped
otherwise (the output counts it). Regions stay anchored to the labels that define them.
"""

from __future__ import annotations

import re
from typing import Any

from auto_label.backends.coords import from_pixels, iou, to_pixels
from auto_label.pipelines import prompts
from auto_label.pipelines.kitti import clip_boxes
from auto_label.pipelines.parsing import (
    ParseError,
    parse_caption,
    parse_phrase_lines,
    parse_regions,
)
from auto_label.pipelines.steps import Immediate, Step, StepInput

SNAP_IOU = 0.5


def seeded_boxes(ctx: StepInput) -> list[list[int | str]]:
    """The image's KITTI boxes as whole pixels inside the image: [x1, y1, x2, y2, class]."""
    width, height = ctx.original_size
    return clip_boxes(ctx.extra.get("kitti", []), ctx.extra.get("kitti_lines", []), width,
                      height)[0]


def _model_box(box: list[Any], ctx: StepInput) -> list[int]:
    return from_pixels([float(v) for v in box[:4]], ctx.convention, ctx.sent_size,
                       ctx.original_size)


def _pixels(values: list[float], ctx: StepInput) -> list[float]:
    return list(to_pixels(values, ctx.convention, ctx.sent_size, ctx.original_size))


def snap(box: list[float], regions: list[list[Any]]) -> tuple[int, float] | None:
    """(index, IoU) of the seeded box that `box` overlaps most, if the IoU reaches SNAP_IOU."""
    best = max(((iou(box, [float(v) for v in r[:4]]), i) for i, r in enumerate(regions)),
               default=(0.0, -1))
    return (best[1], best[0]) if best[0] >= SNAP_IOU else None


# -- step 0: a description per box -------------------------------------------------------------

def build_regions(ctx: StepInput) -> str | Immediate:
    boxes = seeded_boxes(ctx)
    if not boxes:
        return Immediate({"regions": [], "undescribed": 0})
    return prompts.describe_regions([_model_box(b, ctx) for b in boxes], ctx.convention,
                                    *ctx.sent_size)


def parse_region_answer(text: str, ctx: StepInput) -> dict[str, Any]:
    boxes = seeded_boxes(ctx)
    parsed = parse_regions(text, len(boxes))
    assigned: dict[int, dict[str, Any]] = {}
    leftovers = []
    for item in parsed:
        match = snap(_pixels(item["bbox_2d"], ctx), boxes) if item["bbox_2d"] else None
        if match is not None and match[0] not in assigned:
            assigned[match[0]] = item
        else:
            leftovers.append(item)
    if len(parsed) == len(boxes):  # answers in the given order may still carry odd boxes
        for index, item in enumerate(parsed):
            if index not in assigned and item in leftovers:
                assigned[index] = item
    regions = []
    for index, box in enumerate(boxes):
        item = assigned.get(index)
        cls = str(box[4])
        regions.append({
            "bbox": [int(v) for v in box[:4]],
            "type": (item or {}).get("type") or cls,
            "color": (item or {}).get("color") or "unknown",
            "description": (item or {}).get("description") or cls,
        })
    return {"regions": regions, "undescribed": len(boxes) - len(assigned)}


# -- step 1: the caption -----------------------------------------------------------------------

def build_caption(ctx: StepInput) -> str:
    return prompts.caption_image()


def parse_caption_answer(text: str, ctx: StepInput) -> dict[str, Any]:
    return {"caption": parse_caption(text)}


# -- step 2: grouping into expressions ---------------------------------------------------------

def _regions(ctx: StepInput) -> list[dict[str, Any]]:
    return ctx.upstream["0"]["regions"]


def build_groups(ctx: StepInput) -> str | Immediate:
    regions = _regions(ctx)
    if not regions:
        return Immediate({"expressions": [], "dropped_boxes": 0, "dropped_expressions": []})
    listed = [{"bbox_2d": _model_box(r["bbox"], ctx), "type": r["type"], "color": r["color"],
               "description": r["description"]} for r in regions]
    return prompts.group_expressions(listed, ctx.upstream["1"]["caption"], ctx.convention,
                                     *ctx.sent_size)


def _snapped_instances(boxes: list[list[float]], ctx: StepInput,
                       regions: list[list[Any]]) -> tuple[list[dict[str, Any]], int]:
    instances: list[dict[str, Any]] = []
    dropped = 0
    for values in boxes:
        match = snap(_pixels(values, ctx), regions)
        if match is None or any(i["region"] == match[0] for i in instances):
            dropped += match is None
            continue
        index, overlap = match
        instances.append({"region": index, "bbox": [int(v) for v in regions[index][:4]],
                          "score": round(overlap, 4)})
    return instances, dropped


def parse_group_answer(text: str, ctx: StepInput) -> dict[str, Any]:
    regions = [r["bbox"] for r in _regions(ctx)]
    expressions = []
    dropped_boxes = 0
    dropped_expressions = []
    for phrase, boxes in parse_phrase_lines(text):
        instances, dropped = _snapped_instances(boxes, ctx, regions)
        dropped_boxes += dropped
        if instances:
            expressions.append({"text": phrase, "instances": instances})
        else:
            dropped_expressions.append({"text": phrase, "reason": "no box on a seeded region"})
    return {"expressions": expressions, "dropped_boxes": dropped_boxes,
            "dropped_expressions": dropped_expressions}


# -- step 3: double check ----------------------------------------------------------------------

def _norm(phrase: str) -> str:
    return re.sub(r"\s+", " ", phrase).strip().strip(".,;:").casefold()


def build_verify(ctx: StepInput) -> str | Immediate:
    expressions = ctx.upstream["2"]["expressions"]
    if not expressions:
        return Immediate({"expressions": [], "removed": [], "dropped_expressions": [],
                          "ignored_boxes": 0})
    lines = [(e["text"], [_model_box(i["bbox"], ctx) for i in e["instances"]])
             for e in expressions]
    return prompts.verify_expressions(lines, ctx.convention, *ctx.sent_size)


def _answered_nothing(text: str) -> bool:
    """An empty answer means every line lost all its boxes (the prompt says to omit them)."""
    return not re.sub(r"```[\w-]*|<think>.*?</think>", "", text, flags=re.S).strip()


def parse_verify_answer(text: str, ctx: StepInput) -> dict[str, Any]:
    regions = [r["bbox"] for r in _regions_of_step2(ctx)]
    verified: dict[str, list[list[float]]] = {}
    if not _answered_nothing(text):
        for phrase, boxes in parse_phrase_lines(text):
            verified.setdefault(phrase, []).extend(boxes)
    by_norm = {_norm(p): boxes for p, boxes in verified.items()}
    kept_expressions, removed, dropped_expressions = [], [], []
    ignored = 0
    for expression in ctx.upstream["2"]["expressions"]:
        boxes = verified.get(expression["text"], by_norm.get(_norm(expression["text"])))
        if boxes is None:
            dropped_expressions.append({"text": expression["text"],
                                        "reason": "every box removed"})
            removed.extend({"text": expression["text"], "bbox": i["bbox"]}
                           for i in expression["instances"])
            continue
        confirmed, _ = _snapped_instances(boxes, ctx, regions)
        confirmed_regions = {i["region"] for i in confirmed}
        original_regions = {i["region"] for i in expression["instances"]}
        ignored += len(confirmed_regions - original_regions)  # never add a box
        instances = [i for i in expression["instances"] if i["region"] in confirmed_regions]
        removed.extend({"text": expression["text"], "bbox": i["bbox"]}
                       for i in expression["instances"] if i["region"] not in confirmed_regions)
        if instances:
            kept_expressions.append({"text": expression["text"], "instances": instances})
        else:
            dropped_expressions.append({"text": expression["text"],
                                        "reason": "every box removed"})
    asked = ctx.upstream["2"]["expressions"]
    if verified and not any(_norm(e["text"]) in by_norm for e in asked):
        raise ParseError("the answer names none of the expressions it was asked to check")
    return {"expressions": kept_expressions, "removed": removed,
            "dropped_expressions": dropped_expressions, "ignored_boxes": ignored}


def _regions_of_step2(ctx: StepInput) -> list[dict[str, Any]]:
    """The regions step 2 snapped to, from its instances (step 3 does not see step 0)."""
    regions: dict[int, dict[str, Any]] = {}
    for expression in ctx.upstream["2"]["expressions"]:
        for instance in expression["instances"]:
            regions[instance["region"]] = {"bbox": instance["bbox"]}
    size = max(regions, default=-1) + 1
    return [regions.get(i, {"bbox": [0, 0, 0, 0]}) for i in range(size)]


STEP_REGIONS = Step(number="0", name="step0_region_expr", task="referring.region", needs=(),
                    build=build_regions, parse=parse_region_answer, uses_extra=("kitti",))
STEP_CAPTION = Step(number="1", name="step1_image_caption", task="referring.caption", needs=(),
                    build=build_caption, parse=parse_caption_answer, json_output=False)
STEP_GROUP = Step(number="2", name="step2_grounding_expr", task="referring.group",
                  needs=("0", "1"), build=build_groups, parse=parse_group_answer,
                  json_output=False)
STEP_VERIFY = Step(number="3", name="step3_double_check", task="referring.verify", needs=("2",),
                   build=build_verify, parse=parse_verify_answer, json_output=False)
