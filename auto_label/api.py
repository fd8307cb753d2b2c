"""The Python API: everything the CLI does, callable from a notebook.

    from auto_label import load_spec, generate, export
    spec = load_spec("spec.yaml", ["results_dir=/tmp/out"])
    summary = generate(spec)
    export("/tmp/out")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auto_label.backends import create_backend
from auto_label.errors import LedgerError
from auto_label.ledger.events import RunStarted
from auto_label.ledger.store import Ledger
from auto_label.pipelines.export_jsonl import (
    ANNOTATIONS_FILE,
    ledger_records,
    ledger_states,
    save_annotations_jsonl,
)
from auto_label.pipelines.export_legacy import save_legacy_files
from auto_label.pipelines.pacing import Pacer
from auto_label.pipelines.progress import ProgressSink, RunSummary
from auto_label.pipelines.registry import get_pipeline
from auto_label.pipelines.runner import Runner
from auto_label.pipelines.steps import Pipeline
from auto_label.spec import Spec
from auto_label.spec_loader import load_spec


@dataclass(frozen=True)
class ExportResult:
    files: list[Path]
    """annotations.jsonl and/or the legacy step folders"""
    records: int
    legacy_files: int = 0


def generate(spec: Spec | str | Path, overrides: Sequence[str] = (), *,
             progress: ProgressSink | None = None, stop: threading.Event | None = None,
             retry_failed: bool = False) -> RunSummary:
    """Run the spec's pipeline, then export. `stop.set()` from another thread ends it early.

    `retry_failed` limits the run to the images whose latest attempt at some step failed (a plain
    run retries them too, along with every image not yet done).
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    pipeline = get_pipeline(spec.autolabel_type)
    backend = create_backend(spec.block.vlm)
    pacer = Pacer(spec.block.workflow.rpm)
    try:
        summary = Runner(spec, pipeline, backend, progress=progress, stop=stop, pacer=pacer,
                         retry_failed=retry_failed).run()
    finally:
        backend.close()
    result = export(spec.results_dir)
    summary.outputs, summary.records = result.files, result.records
    return summary


def _pipeline_of(ledger: Ledger) -> tuple[Pipeline, dict[str, Any]]:
    started = ledger.latest("run_started")
    if not isinstance(started, RunStarted):
        raise LedgerError(f"{ledger.path}: no run has been recorded yet")
    return get_pipeline(started.pipeline), started.spec


def export(results_dir: str | Path, *, output_format: str | None = None) -> ExportResult:
    """Write the exports of `results_dir` from its ledger (what `auto_label export` does).

    `output_format` (jsonl, legacy or both) defaults to the latest run's `workflow.output_format`.
    """
    results_dir = Path(results_dir)
    with Ledger.open(results_dir, create=False) as ledger:
        pipeline, spec = _pipeline_of(ledger)
        block = spec.get(pipeline.name) or {}
        fmt = output_format or block.get("workflow", {}).get("output_format", "jsonl")
        legacy = fmt in ("legacy", "both") and pipeline.legacy_files is not None
        files: list[Path] = []
        legacy_count = 0

        def each_record() -> Iterator[dict[str, Any]]:
            nonlocal legacy_count
            for state in ledger_states(ledger):
                if legacy and pipeline.legacy_files is not None:
                    legacy_count += save_legacy_files(pipeline.legacy_files(state), results_dir)
                record = pipeline.to_record(state)
                if record is not None:
                    yield record

        if fmt in ("jsonl", "both"):
            path = results_dir / ANNOTATIONS_FILE
            count = save_annotations_jsonl(each_record(), path)
            files.append(path)
        else:
            count = sum(1 for _ in each_record())
        if legacy:
            files.extend(sorted(p for p in results_dir.glob("step_*") if p.is_dir()))
    return ExportResult(files, count, legacy_count)


def records(results_dir: str | Path) -> Iterator[dict[str, Any]]:
    """The unified records of `results_dir`, straight from its ledger (nothing written)."""
    with Ledger.open(results_dir, create=False) as ledger:
        pipeline, _ = _pipeline_of(ledger)
        yield from ledger_records(ledger, pipeline)


__all__ = ["ANNOTATIONS_FILE", "ExportResult", "export", "generate", "load_spec", "records"]
