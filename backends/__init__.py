"""VLM backends: one module each, behind the `Backend` protocol of `auto_label.backends.base`.

Backends are looked up by name in `BACKENDS` (module and class, imported on first use, so that
choosing `openai` never imports the Gemini SDK). A new backend is one module and one line here.
"""

from __future__ import annotations

import importlib

from auto_label.backends.base import Backend
from auto_label.backends.config import VLMConfig

BACKENDS: dict[str, str] = {
    "openai": "auto_label.backends.openai_backend:OpenAIBackend",
    "gemini": "auto_label.backends.gemini_backend:GeminiBackend",
}


def create_backend(vlm: VLMConfig) -> Backend:
    """The backend `vlm.backend` names, configured from its block of `vlm`."""
    module_name, _, class_name = BACKENDS[vlm.backend].partition(":")
    factory = getattr(importlib.import_module(module_name), class_name)
    return factory(getattr(vlm, vlm.backend))


__all__ = ["BACKENDS", "Backend", "create_backend"]
