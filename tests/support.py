"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from auto_label.spec import Spec
from auto_label.spec_loader import load_spec

SIM_KEY = "sk-sim-test-key-0123456789"


def backend_overrides(block: str, backend: str, sim: Any) -> list[str]:
    """Point `block`'s vlm at the simulator through `backend` ("openai" or "gemini")."""
    if backend == "gemini":
        return [
            f"{block}.vlm.backend=gemini",
            f"{block}.vlm.gemini.base_url={sim.gemini_base_url}",
            f"{block}.vlm.gemini.api_key={SIM_KEY}",
            f"{block}.vlm.gemini.model=gemini-sim",
            f"{block}.vlm.gemini.timeout=5",
        ]
    return [
        f"{block}.vlm.backend=openai",
        f"{block}.vlm.openai.base_url={sim.openai_base_url}",
        f"{block}.vlm.openai.api_key={SIM_KEY}",
        f"{block}.vlm.openai.model_name=sim-vlm",
        f"{block}.vlm.openai.timeout=5",
    ]


def grounding_overrides(results: Path, data: Path, base_url: str, *extra: str) -> list[str]:
    return [
        f"results_dir={results}",
        "autolabel_type=image_grounding",
        "image_grounding.vlm.backend=openai",
        f"image_grounding.vlm.openai.base_url={base_url}",
        f"image_grounding.vlm.openai.api_key={SIM_KEY}",
        "image_grounding.vlm.openai.model_name=sim-vlm",
        "image_grounding.vlm.openai.timeout=5",
        f"image_grounding.data.input_jsonl={data / 'input.jsonl'}",
        f"image_grounding.data.image_root={data}",
        "image_grounding.workflow.retries.backoff_base=0.01",
        "image_grounding.workflow.retries.backoff_max=0.05",
        *extra,
    ]


def grounding_spec(results: Path, data: Path, base_url: str, *extra: str) -> Spec:
    return load_spec(None, grounding_overrides(results, data, base_url, *extra))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def referring_overrides(results: Path, data: Path, sim: Any, *extra: str,
                        backend: str = "openai") -> list[str]:
    return [
        f"results_dir={results}",
        "autolabel_type=image_referring_expression",
        *backend_overrides("image_referring_expression", backend, sim),
        f"image_referring_expression.data.image_dir={data / 'images'}",
        f"image_referring_expression.data.kitti_label_dir={data / 'labels'}",
        "image_referring_expression.workflow.retries.backoff_base=0.01",
        "image_referring_expression.workflow.retries.backoff_max=0.05",
        *extra,
    ]


def referring_spec(results: Path, data: Path, sim: Any, *extra: str,
                   backend: str = "openai") -> Spec:
    return load_spec(None, referring_overrides(results, data, sim, *extra, backend=backend))


def asked(sim: Any) -> list[Any]:
    """The requests that asked the model something (not the pre-flight's model-route GETs)."""
    return [r for r in sim.requests() if r.task != "models"]
