"""The pipelines by name (`autolabel_type`)."""

from __future__ import annotations

from auto_label.errors import SpecError
from auto_label.pipelines.image_grounding import IMAGE_GROUNDING
from auto_label.pipelines.referring_output import IMAGE_REFERRING
from auto_label.pipelines.steps import Pipeline

PIPELINES: dict[str, Pipeline] = {
    IMAGE_GROUNDING.name: IMAGE_GROUNDING,
    IMAGE_REFERRING.name: IMAGE_REFERRING,
}


def get_pipeline(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        raise SpecError(f"autolabel_type: the {name} pipeline is not available yet") from None
