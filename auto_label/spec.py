"""The experiment spec, composed from the registered pipelines and backends.

`spec_model()` builds the model: `results_dir`, `autolabel_type` (a registered pipeline) and one
optional block per pipeline with `vlm` (one sub-block per registered backend), the pipeline's own
`workflow` and `data`. Only the block `autolabel_type` names is validated and kept: the block of
another pipeline may sit in the same file, complete or not, and is left out (its settings would be
unused). Loading a YAML file and applying overrides is `auto_label.spec_loader`; `keys_at` lists
the keys a block takes, for "did you mean" in its errors.
"""

from __future__ import annotations

import functools
import types
import typing
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, create_model, model_validator

from auto_label.backends.registry import vlm_config_model
from auto_label.pipelines.config import ConfigBlock, PipelineBlock
from auto_label.pipelines.contract import Pipeline
from auto_label.pipelines.registry import PIPELINES, get_pipeline


class Spec(ConfigBlock):
    """A validated spec (an instance of the model `spec_model()` composes)."""

    results_dir: Path
    autolabel_type: str

    @model_validator(mode="before")
    @classmethod
    def _selected_block_only(cls, data: Any) -> Any:
        """Drop the blocks of the pipelines `autolabel_type` does not select (never validated)."""
        if not isinstance(data, dict) or data.get("autolabel_type") not in PIPELINES:
            return data
        return {key: value for key, value in data.items()
                if key not in PIPELINES or key == data["autolabel_type"]}

    @model_validator(mode="after")
    def _block_present(self) -> Spec:
        if getattr(self, self.autolabel_type, None) is None:
            raise ValueError(
                f"autolabel_type is {self.autolabel_type!r} but the spec has no "
                f"{self.autolabel_type} block"
            )
        return self

    @property
    def block(self) -> PipelineBlock:
        """The block of the selected pipeline."""
        return cast(PipelineBlock, getattr(self, self.autolabel_type))

    @property
    def pipeline(self) -> Pipeline:
        return get_pipeline(self.autolabel_type)

    def dump(self) -> dict[str, Any]:
        """The spec as JSON-able values, API keys masked (what run_started records)."""
        return self.model_dump(mode="json")


@functools.cache
def spec_model(selected: str | None = None) -> type[Spec]:
    """The spec's model, from the pipeline and backend registries. `selected` (a pipeline's
    name): the model for specs whose autolabel_type names it, the same keys with every other
    pipeline's block typed None (those blocks are dropped before validation anyway), so that the
    other pipelines' modules are not imported (launch time, issue 12); None: every block."""
    vlm = vlm_config_model()
    names = Literal.__getitem__(tuple(PIPELINES))  # the registered names, as a Literal type
    fields: dict[str, Any] = {"autolabel_type": (names, ...)}
    for name in PIPELINES:
        if selected is not None and name != selected:
            fields[name] = (None, None)
            continue
        pipeline = PIPELINES[name]
        title = "".join(part.title() for part in name.split("_")) + "Block"
        block = create_model(title, __base__=PipelineBlock, vlm=(vlm, vlm()),
                             workflow=(pipeline.workflow, pipeline.workflow.model_validate({})),
                             data=(pipeline.data, ...))
        fields[name] = (block | None, None)
    return create_model("Spec", __base__=Spec, **fields)


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation admits (`Block | None` -> [Block])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_of(arg)]
    return []


def keys_at(path: tuple[str, ...]) -> list[str]:
    """The keys the block at dotted `path` takes (`()`: the top level; `("image_grounding",
    "workflow")`: its workflow keys), in declaration order; [] when `path` is not a block."""
    models: list[type[BaseModel]] = [spec_model()]
    for part in path:
        models = [m for model in models if part in model.model_fields
                  for m in _models_of(model.model_fields[part].annotation)]
    return list(dict.fromkeys(key for model in models for key in model.model_fields))
