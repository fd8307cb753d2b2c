"""What a run needs besides the pipeline and the backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auto_label.backends.prices import Price
from auto_label.pipelines.config import WorkflowConfig
from auto_label.pipelines.images.decode import IngestSettings


@dataclass(frozen=True)
class RunOptions:
    """What a run needs besides the pipeline and the backend."""

    results_dir: Path
    workflow: WorkflowConfig
    data: Any
    """the pipeline's data config"""
    spec: dict[str, Any]
    """the whole spec, keys masked, for run_started"""
    ingest: IngestSettings = field(default_factory=IngestSettings)
    retry_failed: bool = False
    limit: int | None = None
    """only the first `limit` images of the input (a pilot); None: all"""
    price: Price | None = None
    """what the model's tokens cost (None: unknown, costs are not shown)"""
    max_cost: float | None = None
    """USD: no request starts once the run's cost would pass it (`workflow.max_cost`)"""
