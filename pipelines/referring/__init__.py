"""The image_referring_expression pipeline: images + KITTI boxes -> grounded, verified expressions
(see `steps`). Its legacy per-image text files are an export format (`auto_label.exports.legacy`).
"""

from __future__ import annotations

from auto_label.pipelines.contract import Pipeline
from auto_label.pipelines.referring.config import ReferringData, ReferringWorkflow
from auto_label.pipelines.referring.inputs import read_referring_inputs
from auto_label.pipelines.referring.record import SOURCE, check_seed, to_record
from auto_label.pipelines.referring.steps import STEPS

IMAGE_REFERRING = Pipeline(
    name=SOURCE,
    steps=STEPS,
    workflow=ReferringWorkflow,
    data=ReferringData,
    read_inputs=read_referring_inputs,
    to_record=to_record,
    check_seed=check_seed,
)

__all__ = ["IMAGE_REFERRING"]
