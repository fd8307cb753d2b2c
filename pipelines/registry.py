"""The pipelines by name (`autolabel_type`). The spec is composed from this registry: each
pipeline brings its own workflow and data models."""

from __future__ import annotations

from auto_label.errors import SpecError
from auto_label.pipelines.contract import Pipeline
from auto_label.pipelines.grounding import IMAGE_GROUNDING
from auto_label.pipelines.referring import IMAGE_REFERRING

PIPELINES: dict[str, Pipeline] = {p.name: p for p in (IMAGE_GROUNDING, IMAGE_REFERRING)}


def get_pipeline(name: str) -> Pipeline:
    """The pipeline named `name`; SpecError naming the known ones otherwise."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise SpecError(f"autolabel_type: unknown pipeline {name!r}; the pipelines are "
                        f"{sorted(PIPELINES)}") from None
