"""The pipelines by name (`autolabel_type`). The spec is composed from this registry: each
pipeline brings its own workflow and data models.

A pipeline's modules are imported when it is first looked up, not with the registry: a run of one
pipeline does not import the other (launch time, issue 12). The names are known without that.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

from auto_label.errors import SpecError
from auto_label.pipelines.contract import Pipeline

_MODULES: dict[str, tuple[str, str]] = {
    "image_grounding": ("auto_label.pipelines.grounding", "IMAGE_GROUNDING"),
    "image_referring_expression": ("auto_label.pipelines.referring", "IMAGE_REFERRING"),
}
"""pipeline name -> (its package, the name of its `Pipeline` there)"""


class _Registry(MutableMapping[str, Pipeline]):
    """name -> Pipeline, each imported on its first lookup (iterating gives the names only)."""

    def __init__(self, modules: dict[str, tuple[str, str]]) -> None:
        self._names = list(modules)
        self._modules = dict(modules)
        self._loaded: dict[str, Pipeline] = {}

    def __getitem__(self, name: str) -> Pipeline:
        if name not in self._loaded:
            module, attribute = self._modules[name]  # KeyError: not a pipeline
            pipeline: Pipeline = getattr(importlib.import_module(module), attribute)
            self._loaded[name] = pipeline
        return self._loaded[name]

    def __setitem__(self, name: str, pipeline: Pipeline) -> None:
        if name not in self._names:
            self._names.append(name)
        self._loaded[name] = pipeline

    def __delitem__(self, name: str) -> None:
        if name not in self._names:
            raise KeyError(name)
        self._names.remove(name)
        self._modules.pop(name, None)
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names


PIPELINES: MutableMapping[str, Pipeline] = _Registry(_MODULES)


def get_pipeline(name: str) -> Pipeline:
    """The pipeline named `name`; SpecError naming the known ones otherwise."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise SpecError(f"autolabel_type: unknown pipeline {name!r}; the pipelines are "
                        f"{sorted(PIPELINES)}") from None
