"""The backends, as registered through the `auto_label.backends` entry-point group.

Built-in backends are listed in pyproject.toml exactly as a third-party package would list its own,
so a new backend is one module (its config model, its class and a `BackendPlugin`) and one
entry-point line. The `vlm` block of the spec is composed from the registered backends' configs.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from auto_label.backends.base import Backend, BackendConfig, BackendPlugin
from auto_label.errors import SpecError

GROUP = "auto_label.backends"
DEFAULT_BACKEND = "gemini"
"""The product spec's default for `vlm.backend`."""


@functools.cache
def _discover() -> tuple[dict[str, BackendPlugin], dict[str, str]]:
    """(name -> plugin, name -> why it failed to load) for every entry point of the group."""
    plugins: dict[str, BackendPlugin] = {}
    broken: dict[str, str] = {}
    for point in entry_points(group=GROUP):
        try:
            plugin = point.load()
        except Exception as exc:  # a broken third-party package must not break the others
            broken[point.name] = f"{type(exc).__name__}: {exc}"
            continue
        if not isinstance(plugin, BackendPlugin) or plugin.name != point.name:
            broken[point.name] = f"{point.value} is not a BackendPlugin named {point.name!r}"
            continue
        plugins[point.name] = plugin
    return dict(sorted(plugins.items())), broken


def plugins() -> dict[str, BackendPlugin]:
    """The registered backends by name. Raises SpecError when none is (auto-label not
    installed, only imported from a source tree)."""
    found, _ = _discover()
    if not found:
        raise SpecError("no VLM backend is registered: install auto-label (pip install -e .) so "
                        f"that its {GROUP} entry points exist")
    return found


class VLMConfigBase(BaseModel):
    """The `vlm` block: `backend` and one `vlm.<name>` block per registered backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = DEFAULT_BACKEND
    """which vlm.<backend> block the run uses"""

    @field_validator("backend", mode="before")
    @classmethod
    def _loadable(cls, value: object) -> object:
        _, broken = _discover()
        if isinstance(value, str) and value in broken:
            raise ValueError(f"backend {value!r} is installed but cannot be loaded "
                             f"({broken[value]})")
        return value

    def selected(self) -> BackendConfig:
        """The block of the chosen backend."""
        return cast(BackendConfig, getattr(self, self.backend))


@functools.cache
def vlm_config_model() -> type[VLMConfigBase]:
    """The `vlm` block's model, with a field per registered backend (its config, defaults)."""
    found = plugins()
    names = Literal.__getitem__(tuple(found))  # the registered names, as a Literal type
    default = DEFAULT_BACKEND if DEFAULT_BACKEND in found else next(iter(found))
    backend = Field(default=default, description="which vlm.<backend> block the run uses: "
                                                 + " or ".join(found))
    fields: dict[str, Any] = {"backend": (names, backend)}
    fields.update({name: (plugin.config, plugin.config.model_validate({}))
                   for name, plugin in found.items()})
    return create_model("VLMConfig", __base__=VLMConfigBase, **fields)


def create_backend(vlm: VLMConfigBase) -> Backend:
    """The backend `vlm.backend` names, configured from its block. Raises SpecError when the
    block is unusable (no model name, no key)."""
    return plugins()[vlm.backend].create(vlm.selected())
