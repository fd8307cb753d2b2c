"""The image_referring_expression steps: images + KITTI boxes -> grounded, verified expressions.

Step 0 describes each seeded box and step 1 captions the image (both need only the seed, so they
run side by side); step 2 groups the regions into expressions; step 3 checks each expression's
boxes and keeps, removes or re-aligns them, never adding any.

Every box in a step output is one of the image's seeded boxes: a box the model writes in step 2 or
3 is snapped to the seeded box it overlaps most when their IoU is at least 0.5, and dropped
otherwise (the output counts it). Regions stay anchored to the labels that define them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from auto_label.boxes import best_match, from_pixels
from auto_label.pipelines.answers import ParseError
from auto_label.pipelines.contract import Immediate, Step, StepInput
from auto_label.pipelines.referring import prompts
from auto_label.pipelines.referring.kitti import clip_boxes
from auto_label.pipelines.referring.outputs import (
    CaptionOutput,
    CheckedOutput,
    DroppedExpression,
    ExpressionGroup,
    GroupsOutput,
    Instance,
    Region,
    RegionsOutput,
    RemovedBox,
)
from auto_label.pipelines.referring.parsers import (
    parse_caption,
    parse_phrase_lines,
    parse_regions,
)

SNAP_IOU = 0.5


def seeded_boxes(ctx: StepInput) -> list[list[int | str]]:
    """The image's KITTI boxes as whole pixels inside the image: [x1, y1, x2, y2, class]."""
    width, height = ctx.original_size
    return clip_boxes(ctx.extra.get("kitti", []), ctx.extra.get("kitti_lines", []), width,
                      height)[0]


def _model_box(box: Sequence[Any], ctx: StepInput) -> list[int]:
    return from_pixels([float(v) for v in box[:4]], ctx.convention, ctx.sent_size,
                       ctx.original_size)


def _pixels(values: list[float], ctx: StepInput) -> list[float]:
    return list(ctx.to_pixels(values))


def snap(box: Sequence[float], regions: Sequence[Sequence[Any]]) -> tuple[int, float] | None:
    """(index, IoU) of the seeded box that `box` overlaps most, if the IoU reaches SNAP_IOU."""
    return best_match(box, [[float(v) for v in r[:4]] for r in regions], SNAP_IOU)


# -- step 0: a description per box -------------------------------------------------------------

def build_regions(ctx: StepInput) -> str | Immediate:
    boxes = seeded_boxes(ctx)
    if not boxes:
        return Immediate(RegionsOutput(regions=[], undescribed=0))
    return prompts.describe_regions([_model_box(b, ctx) for b in boxes], ctx.convention,
                                    *ctx.sent_size)


def parse_region_answer(text: str, ctx: StepInput) -> RegionsOutput:
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
    if parsed and not assigned:  # never a silent empty: descriptions of no given box
        raise ParseError(f"none of the {len(parsed)} region(s) in the answer lies on one of the "
                         f"{len(boxes)} boxes asked about (IoU >= {SNAP_IOU})")
    regions = []
    for index, box in enumerate(boxes):
        found: dict[str, Any] = assigned.get(index) or {}
        cls = str(box[4])
        regions.append(Region(
            bbox=[int(v) for v in box[:4]], type=found.get("type") or cls,
            color=found.get("color") or "unknown", description=found.get("description") or cls))
    return RegionsOutput(regions=regions, undescribed=len(boxes) - len(assigned))


# -- step 1: the caption -----------------------------------------------------------------------

def build_caption(ctx: StepInput) -> str:
    return prompts.caption_image()


def parse_caption_answer(text: str, ctx: StepInput) -> CaptionOutput:
    return CaptionOutput(caption=parse_caption(text))


# -- step 2: grouping into expressions ---------------------------------------------------------

def build_groups(ctx: StepInput) -> str | Immediate:
    regions = ctx.output("0", RegionsOutput).regions
    if not regions:
        return Immediate(GroupsOutput(expressions=[], dropped_boxes=0, dropped_expressions=[]))
    listed = [{"bbox_2d": _model_box(r.bbox, ctx), "type": r.type, "color": r.color,
               "description": r.description} for r in regions]
    return prompts.group_expressions(listed, ctx.output("1", CaptionOutput).caption,
                                     ctx.convention, *ctx.sent_size)


def _snapped_instances(boxes: list[list[float]], ctx: StepInput,
                       regions: Sequence[Sequence[int]]) -> tuple[list[Instance], int]:
    instances: list[Instance] = []
    dropped = 0
    for values in boxes:
        match = snap(_pixels(values, ctx), regions)
        if match is None or any(i.region == match[0] for i in instances):
            dropped += match is None
            continue
        index, overlap = match
        instances.append(Instance(region=index, bbox=[int(v) for v in regions[index][:4]],
                                  score=round(overlap, 4)))
    return instances, dropped


def parse_group_answer(text: str, ctx: StepInput) -> GroupsOutput:
    regions = [r.bbox for r in ctx.output("0", RegionsOutput).regions]
    expressions = []
    dropped_boxes = 0
    dropped_expressions = []
    lines = parse_phrase_lines(text)
    for phrase, boxes in lines:
        instances, dropped = _snapped_instances(boxes, ctx, regions)
        dropped_boxes += dropped
        if instances:
            expressions.append(ExpressionGroup(text=phrase, instances=instances))
        else:
            dropped_expressions.append(DroppedExpression(text=phrase,
                                                         reason="no box on a seeded region"))
    if lines and not expressions:  # never a silent empty: boxes, none on a seeded one
        raise ParseError(f"none of the {dropped_boxes} box(es) in the answer lies on a seeded "
                         f"box (IoU >= {SNAP_IOU}): are they in another convention?")
    return GroupsOutput(expressions=expressions, dropped_boxes=dropped_boxes,
                        dropped_expressions=dropped_expressions)


# -- step 3: double check ----------------------------------------------------------------------

def _norm(phrase: str) -> str:
    return re.sub(r"\s+", " ", phrase).strip().strip(".,;:").casefold()


def build_verify(ctx: StepInput) -> str | Immediate:
    expressions = ctx.output("2", GroupsOutput).expressions
    if not expressions:
        return Immediate(CheckedOutput(expressions=[], removed=[], dropped_expressions=[],
                                       ignored_boxes=0))
    lines = [(e.text, [_model_box(i.bbox, ctx) for i in e.instances]) for e in expressions]
    return prompts.verify_expressions(lines, ctx.convention, *ctx.sent_size)


def _answered_nothing(text: str) -> bool:
    """An empty answer means every line lost all its boxes (the prompt says to omit them)."""
    return not re.sub(r"```[\w-]*|<think>.*?</think>", "", text, flags=re.S).strip()


def _regions_of_step2(groups: GroupsOutput) -> list[list[int]]:
    """The boxes step 2 snapped to, by region index (step 3 does not see step 0)."""
    regions: dict[int, list[int]] = {}
    for expression in groups.expressions:
        for instance in expression.instances:
            regions[instance.region] = instance.bbox
    size = max(regions, default=-1) + 1
    return [regions.get(i, [0, 0, 0, 0]) for i in range(size)]


def parse_verify_answer(text: str, ctx: StepInput) -> CheckedOutput:
    groups = ctx.output("2", GroupsOutput)
    regions = _regions_of_step2(groups)
    verified: dict[str, list[list[float]]] = {}
    if not _answered_nothing(text):
        for phrase, boxes in parse_phrase_lines(text):
            verified.setdefault(phrase, []).extend(boxes)
    by_norm = {_norm(p): boxes for p, boxes in verified.items()}
    kept: list[ExpressionGroup] = []
    removed: list[RemovedBox] = []
    dropped: list[DroppedExpression] = []
    ignored = 0
    for expression in groups.expressions:
        answered = verified.get(expression.text)
        if answered is None:
            answered = by_norm.get(_norm(expression.text))
        if answered is None:
            dropped.append(DroppedExpression(text=expression.text, reason="every box removed"))
            removed.extend(RemovedBox(text=expression.text, bbox=i.bbox)
                           for i in expression.instances)
            continue
        confirmed, _ = _snapped_instances(answered, ctx, regions)
        confirmed_regions = {i.region for i in confirmed}
        original_regions = {i.region for i in expression.instances}
        ignored += len(confirmed_regions - original_regions)  # never add a box
        instances = [i for i in expression.instances if i.region in confirmed_regions]
        removed.extend(RemovedBox(text=expression.text, bbox=i.bbox)
                       for i in expression.instances if i.region not in confirmed_regions)
        if instances:
            kept.append(ExpressionGroup(text=expression.text, instances=instances))
        else:
            dropped.append(DroppedExpression(text=expression.text, reason="every box removed"))
    if verified and not any(_norm(e.text) in by_norm for e in groups.expressions):
        raise ParseError("the answer names none of the expressions it was asked to check")
    return CheckedOutput(expressions=kept, removed=removed, dropped_expressions=dropped,
                         ignored_boxes=ignored)


STEP_REGIONS = Step(number="0", name="step0_region_expr", prompt=prompts.REGION, needs=(),
                    output=RegionsOutput, build=build_regions, parse=parse_region_answer,
                    uses_extra=("kitti",))
STEP_CAPTION = Step(number="1", name="step1_image_caption", prompt=prompts.CAPTION, needs=(),
                    output=CaptionOutput, build=build_caption, parse=parse_caption_answer,
                    json_output=False)
STEP_GROUP = Step(number="2", name="step2_grounding_expr", prompt=prompts.GROUP,
                  needs=("0", "1"), output=GroupsOutput, build=build_groups,
                  parse=parse_group_answer, json_output=False)
STEP_VERIFY = Step(number="3", name="step3_double_check", prompt=prompts.VERIFY, needs=("2",),
                   output=CheckedOutput, build=build_verify, parse=parse_verify_answer,
                   json_output=False)
STEPS = (STEP_REGIONS, STEP_CAPTION, STEP_GROUP, STEP_VERIFY)
