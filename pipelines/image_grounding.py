"""The image_grounding pipeline: image + caption -> referring expressions -> boxes.

Step 0 extracts expressions (with char spans into the cleaned caption); step 1 grounds each one to
up to 10 boxes. Step outputs hold boxes already in pixels of the original image; `to_record`
projects an image's state onto the unified record.
"""

from __future__ import annotations

from typing import Any

from auto_label.backends.coords import finalize_box, to_pixels
from auto_label.ledger.fold import ImageState
from auto_label.pipelines import prompts
from auto_label.pipelines.jsonl_inputs import read_grounding_inputs
from auto_label.pipelines.parsing import parse_extraction, parse_grounding
from auto_label.pipelines.steps import Immediate, Pipeline, Step, StepInput


def _build_extract(ctx: StepInput) -> str:
    return prompts.extract_expressions(ctx.caption or "")


def _parse_extract(text: str, ctx: StepInput) -> dict[str, Any]:
    return parse_extraction(text, ctx.caption or "")


def _expression_texts(ctx: StepInput) -> list[str]:
    return [e["text"] for e in ctx.upstream["0"]["expressions"]]


def _build_ground(ctx: StepInput) -> str | Immediate:
    texts = _expression_texts(ctx)
    if not texts:
        return Immediate({"groundings": [], "dropped_boxes": 0})
    width, height = ctx.sent_size
    return prompts.ground_expressions(texts, ctx.convention, width, height)


def _parse_ground(text: str, ctx: StepInput) -> dict[str, Any]:
    texts = _expression_texts(ctx)
    raw = parse_grounding(text, texts)
    width, height = ctx.original_size
    groundings = []
    dropped = 0
    for expression in texts:
        instances: list[dict[str, Any]] = []
        seen: set[tuple[int, ...]] = set()
        for values, score in raw.get(expression, []):  # at most 10, as parsed
            box = finalize_box(
                to_pixels(values, ctx.convention, ctx.sent_size, ctx.original_size), width, height
            )
            if box is None or tuple(box) in seen:
                dropped += 1
                continue
            seen.add(tuple(box))
            instances.append({"bbox": box, "score": round(float(score), 4)})
        groundings.append({"text": expression, "instances": instances})
    return {"groundings": groundings, "dropped_boxes": dropped}


def to_record(state: ImageState) -> dict[str, Any] | None:
    """The unified record of an image, or None when no step has completed for it."""
    seed = state.seed
    extraction = state.completion("0")
    grounding = state.completion("1")
    if extraction is None or seed is None:
        return None
    if grounding is not None and grounding.upstream.get("0") != extraction.output_hash:
        grounding = None  # grounded a different extraction; step 1 will run again for it
    groundings = grounding.output["groundings"] if grounding is not None else []
    expressions = []
    box_number = 0
    for index, expression in enumerate(extraction.output["expressions"]):
        instances = []
        found = groundings[index]["instances"] if index < len(groundings) else []
        for instance in found:
            instances.append({
                "bbox_id": f"box_{box_number:05d}",
                "bbox": instance["bbox"],
                "bbox_score": instance["score"],
            })
            box_number += 1
        expressions.append({
            "expression_id": f"expr_{index:05d}",
            "text": expression["text"],
            "char_span": expression["char_span"],
            "noun_chunk": expression["noun_chunk"],
            "instances": instances,
            "verified": None,
        })
    steps = [STEP_EXTRACT.name] + ([STEP_GROUND.name] if grounding is not None else [])
    return {
        "image_id": state.image_id,
        "image_path": seed.extra.get("image_path", seed.path),
        "width": seed.width,
        "height": seed.height,
        "caption": seed.caption,
        "cleaned_caption": extraction.output["cleaned_caption"],
        "regions": [],
        "expressions": expressions,
        "source": IMAGE_GROUNDING.name,
        "pipeline_steps": steps,
    }


STEP_EXTRACT = Step(
    number="0",
    name="step0_expression_extraction",
    task="grounding.extract",
    needs=(),
    build=_build_extract,
    parse=_parse_extract,
    uses_caption=True,
)
STEP_GROUND = Step(
    number="1",
    name="step1_grounding",
    task="grounding.ground",
    needs=("0",),
    build=_build_ground,
    parse=_parse_ground,
)

IMAGE_GROUNDING = Pipeline(
    name="image_grounding",
    steps=(STEP_EXTRACT, STEP_GROUND),
    read_inputs=lambda block: read_grounding_inputs(block.data.input_jsonl,
                                                    block.data.image_root),
    to_record=to_record,
)
