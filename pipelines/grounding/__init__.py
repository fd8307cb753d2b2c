"""The image_grounding pipeline: image + caption -> referring expressions -> boxes.

Step 0 extracts expressions (with char spans into the cleaned caption); step 1 grounds each one to
up to 10 boxes. Step outputs hold boxes already in pixels of the original image.
"""

from __future__ import annotations

from auto_label.pipelines.contract import Pipeline
from auto_label.pipelines.grounding.config import GroundingData, GroundingWorkflow
from auto_label.pipelines.grounding.inputs import read_grounding_inputs, scan_grounding_inputs
from auto_label.pipelines.grounding.record import SOURCE, to_record
from auto_label.pipelines.grounding.steps import STEPS

IMAGE_GROUNDING = Pipeline(
    name=SOURCE,
    steps=STEPS,
    workflow=GroundingWorkflow,
    data=GroundingData,
    read_inputs=read_grounding_inputs,
    to_record=to_record,
    scan_inputs=scan_grounding_inputs,
)

__all__ = ["IMAGE_GROUNDING"]
