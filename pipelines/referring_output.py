"""image_referring_expression outputs: the unified record and the legacy per-image text files,
both projections of an image's folded state, and the pipeline's definition.

A step's result is shown only while it still follows from what is shown upstream: a step 2 computed
from older regions is left out until step 2 runs again for the current ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auto_label.ledger.events import ImageSeeded, StepCompleted
from auto_label.ledger.fold import ImageState
from auto_label.pipelines.image_referring import (
    STEP_CAPTION,
    STEP_GROUP,
    STEP_REGIONS,
    STEP_VERIFY,
)
from auto_label.pipelines.kitti import clip_boxes
from auto_label.pipelines.referring_inputs import read_referring_inputs
from auto_label.pipelines.steps import Pipeline

STEPS = (STEP_REGIONS, STEP_CAPTION, STEP_GROUP, STEP_VERIFY)
LEGACY_DIRS = {"0": "step_0_region_expr", "1": "step_1_image_caption",
               "2": "step_2_grounding_expr", "3": "step_3_double_check"}
FAILED_MARK = "Failed to obtain answer via API."


def valid_steps(state: ImageState) -> dict[str, StepCompleted]:
    """The current completions whose upstream outputs are the ones currently shown."""
    valid: dict[str, StepCompleted] = {}
    for step in STEPS:
        done = state.completion(step.number)
        if done is None:
            continue
        if all(n in valid and done.upstream.get(n) == valid[n].output_hash for n in step.needs):
            valid[step.number] = done
    return valid


def to_record(state: ImageState) -> dict[str, Any] | None:
    seed = state.seed
    valid = valid_steps(state)
    if seed is None or not valid:
        return None
    kitti, _ = clip_boxes(seed.extra.get("kitti", []), seed.extra.get("kitti_lines", []),
                          seed.width, seed.height)
    caption = valid["1"].output["caption"] if "1" in valid else None
    final = valid.get("3") or valid.get("2")
    expressions = []
    box_number = 0
    for index, expression in enumerate(final.output["expressions"] if final else []):
        instances = []
        for instance in expression["instances"]:
            instances.append({"bbox_id": f"box_{box_number:05d}", "bbox": instance["bbox"],
                              "bbox_score": instance["score"]})
            box_number += 1
        expressions.append({
            "expression_id": f"expr_{index:05d}", "text": expression["text"],
            "char_span": None, "noun_chunk": None, "instances": instances,
            "verified": True if "3" in valid else None,
        })
    return {
        "image_id": state.image_id,
        "image_path": seed.extra.get("image_path", seed.path),
        "width": seed.width,
        "height": seed.height,
        "caption": caption,
        "cleaned_caption": caption,
        "regions": valid["0"].output["regions"] if "0" in valid else [],
        "expressions": expressions,
        "kitti_bboxes": kitti,
        "source": IMAGE_REFERRING.name,
        "pipeline_steps": [s.name for s in STEPS if s.number in valid],
    }


def _legacy_text(step: str, output: dict[str, Any]) -> str:
    if step == "0":
        return json.dumps([{"bbox_2d": r["bbox"], "type": r["type"], "color": r["color"],
                            "description": r["description"]} for r in output["regions"]],
                          indent=2, ensure_ascii=False)
    if step == "1":
        return output["caption"]
    return "\n".join(f"{e['text']}: {json.dumps([i['bbox'] for i in e['instances']])}"
                     for e in output["expressions"] if e["instances"])


def legacy_files(state: ImageState) -> dict[str, str | None]:
    """`step_N_<name>/labels/<stem>.txt.stepN` -> content (None: no file should be there)."""
    if state.seed is None:
        return {}
    stem = Path(state.seed.extra.get("image_path", state.seed.path)).stem
    valid = valid_steps(state)
    files: dict[str, str | None] = {}
    for step in STEPS:
        path = f"{LEGACY_DIRS[step.number]}/labels/{stem}.txt.step{step.number}"
        if step.number in valid:
            files[path] = _legacy_text(step.number, valid[step.number].output)
        elif step.number in state.failed:
            files[path] = FAILED_MARK
        else:
            files[path] = None
    return files


def check_seed(seed: ImageSeeded) -> list[str]:
    return clip_boxes(seed.extra.get("kitti", []), seed.extra.get("kitti_lines", []),
                      seed.width, seed.height)[1]


IMAGE_REFERRING = Pipeline(
    name="image_referring_expression",
    steps=STEPS,
    read_inputs=lambda block: read_referring_inputs(block.data),
    to_record=to_record,
    legacy_files=legacy_files,
    check_seed=check_seed,
)
