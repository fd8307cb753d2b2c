"""The image_grounding steps: step 0 extracts referring expressions (with char spans into the
cleaned caption), step 1 grounds each one to up to 10 boxes, converted to pixels of the original
image."""

from __future__ import annotations

from auto_label.boxes import finalize_box
from auto_label.pipelines.answers import ParseError
from auto_label.pipelines.contract import Immediate, Step, StepInput
from auto_label.pipelines.grounding import prompts
from auto_label.pipelines.grounding.outputs import (
    ExtractionOutput,
    GroundedInstance,
    Grounding,
    GroundingOutput,
)
from auto_label.pipelines.grounding.parsers import parse_extraction, read_grounding


def _build_extract(ctx: StepInput) -> str:
    return prompts.extract_expressions(ctx.caption or "")


def _parse_extract(text: str, ctx: StepInput) -> ExtractionOutput:
    return ExtractionOutput.model_validate(parse_extraction(text, ctx.caption or ""))


def _expression_texts(ctx: StepInput) -> list[str]:
    return [e.text for e in ctx.output("0", ExtractionOutput).expressions]


def _build_ground(ctx: StepInput) -> str | Immediate:
    texts = _expression_texts(ctx)
    if not texts:
        return Immediate(GroundingOutput(groundings=[], dropped_boxes=0))
    width, height = ctx.sent_size
    return prompts.ground_expressions(texts, ctx.convention, width, height)


def _parse_ground(text: str, ctx: StepInput) -> GroundingOutput:
    texts = _expression_texts(ctx)
    answer = read_grounding(text, texts)
    raw = answer.boxes
    if answer.unattributed and not any(raw.values()):
        # never a silent empty: boxes that belong to no asked expression are not "nothing there"
        labels = ", ".join(repr(label) for label in answer.labels[:3])
        raise ParseError(f"the answer's {answer.unattributed} box(es) name none of the "
                         f"expressions asked (labels {labels or 'none'})")
    width, height = ctx.original_size
    groundings = []
    dropped = 0
    for expression in texts:
        instances: list[GroundedInstance] = []
        seen: set[tuple[int, ...]] = set()
        for values, score in raw.get(expression, []):  # at most 10, as parsed
            box = finalize_box(ctx.to_pixels(values), width, height)
            if box is None or tuple(box) in seen:
                dropped += 1
                continue
            seen.add(tuple(box))
            instances.append(GroundedInstance(bbox=box, score=round(float(score), 4)))
        groundings.append(Grounding(text=expression, instances=instances))
    return GroundingOutput(groundings=groundings, dropped_boxes=dropped + answer.unattributed)


STEP_EXTRACT = Step(
    number="0",
    name="step0_expression_extraction",
    prompt=prompts.EXTRACT,
    needs=(),
    output=ExtractionOutput,
    build=_build_extract,
    parse=_parse_extract,
    uses_caption=True,
)
STEP_GROUND = Step(
    number="1",
    name="step1_grounding",
    prompt=prompts.GROUND,
    needs=("0",),
    output=GroundingOutput,
    build=_build_ground,
    parse=_parse_ground,
)
STEPS = (STEP_EXTRACT, STEP_GROUND)
