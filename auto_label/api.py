"""The Python API: everything the CLI does, callable from a notebook.

    from auto_label import load_spec, generate, export
    spec = load_spec("spec.yaml", ["results_dir=/tmp/out"])
    summary = generate(spec)
    export("/tmp/out")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auto_label.backends.registry import create_backend
from auto_label.errors import LedgerError
from auto_label.ledger.events import RunStarted
from auto_label.ledger.store import Ledger
from auto_label.pipelines.contract import Pipeline
from auto_label.pipelines.engine.budget import run_price
from auto_label.pipelines.engine.options import RunOptions
from auto_label.pipelines.engine.pacing import Pacer
from auto_label.pipelines.engine.progress import OUTCOMES, ProgressSink, RunSummary
from auto_label.pipelines.engine.runner import run_pipeline
from auto_label.pipelines.engine.snapshot import RunInfo, Snapshot, StepFigures, Tokens
from auto_label.pipelines.records import image_records
from auto_label.pipelines.registry import get_pipeline
from auto_label.spec import Spec
from auto_label.spec_loader import load_spec

if TYPE_CHECKING:
    from auto_label.exports import ExportOptions

# the exports are imported when first used (`export`, or these names): a run's first request
# does not wait for them (launch time, issue 12)
EXPORT_FORMATS: tuple[str, ...]
"""The names `export(output_format=...)` takes."""
ANNOTATIONS_FILE: str


def __getattr__(name: str) -> Any:
    if name == "EXPORT_FORMATS":
        from auto_label.exports import ALIASES, FORMATS

        return (*FORMATS, *ALIASES)
    if name == "ANNOTATIONS_FILE":
        from auto_label.exports.jsonl import ANNOTATIONS_FILE

        return ANNOTATIONS_FILE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class ExportResult:
    files: list[Path]
    """annotations.jsonl and/or the legacy step folders"""
    records: int
    """images with a record"""
    legacy_files: int = 0
    counts: dict[Path, int] = field(default_factory=dict)
    """file -> the entries it holds (records, images or samples), for each format's main file"""


def generate(spec: Spec | str | Path, overrides: Sequence[str] = (), *,
             progress: ProgressSink | None = None, stop: threading.Event | None = None,
             retry_failed: bool = False, limit: int | None = None) -> RunSummary:
    """Run the spec's pipeline, then export. `stop.set()` from another thread ends it early.

    `retry_failed` limits the run to the images whose latest attempt at some step failed (a plain
    run retries them too, along with every image not yet done). `limit`: only the first `limit`
    images of the input, in input order (a pilot; a later run without it reuses their answers and
    goes on with the rest); with `retry_failed`, the first `limit` failed ones. Raises an
    `AutoLabelError` (one line, with its exit code) when the spec, the inputs, the results_dir or
    the endpoint's key is unusable.
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    block = spec.block
    backend = create_backend(block.vlm)
    try:  # the price: the spec's, else the table's; a max_cost without one fails here
        price = run_price(block.vlm.selected().price, backend.model, pipeline=spec.autolabel_type,
                          backend=backend.name, max_cost=block.workflow.max_cost)
        options = RunOptions(results_dir=spec.results_dir, workflow=block.workflow,
                             data=block.data, spec=spec.dump(),
                             ingest=block.data.ingest_settings(), retry_failed=retry_failed,
                             limit=limit,
                             price=price, max_cost=block.workflow.max_cost)
        summary = run_pipeline(options, spec.pipeline, backend, progress=progress, stop=stop,
                               pacer=Pacer(block.workflow.rpm))
    finally:
        backend.close()
    result = export(spec.results_dir)
    summary.outputs, summary.records = result.files, result.records
    return summary


def _run_of(ledger: Ledger) -> tuple[Pipeline, dict[str, Any]]:
    started = ledger.latest("run_started")
    if not isinstance(started, RunStarted):
        raise LedgerError(f"{ledger.path}: no run has been recorded yet")
    return get_pipeline(started.pipeline), started.spec


def export(results_dir: str | Path, *, output_format: str | None = None,
           options: ExportOptions | None = None) -> ExportResult:
    """Write the exports of `results_dir` from its ledger (what `auto_label export` does).

    `output_format` (jsonl, legacy, both, coco, odvg or sft) defaults to the latest run's
    `workflow.output_format` (jsonl when it has none); `options` (filters, one step's output,
    the sft target's box convention: `auto_label.export_options.export_options` builds them)
    default to everything as recorded. Raises ExportError for an unknown format, one that does
    not fit the ledger's pipeline or options that do not fit the format, LedgerError when there
    is no ledger (or no run) in `results_dir`.
    """
    from auto_label.exports import formats_for
    from auto_label.exports.incremental import export_ledger

    results_dir = Path(results_dir)
    with Ledger.open(results_dir, create=False) as ledger:
        pipeline, spec = _run_of(ledger)
        block = spec.get(pipeline.name) or {}
        name = output_format or block.get("workflow", {}).get("output_format", "jsonl")
        formats = formats_for([name], pipeline.name)
        written, counted = export_ledger(ledger, pipeline, results_dir, formats, options)
    return ExportResult([p for w in written for p in w.paths], counted,
                        sum(w.files for w in written),
                        {w.paths[0]: w.records for w in written if w.paths})


def run_pipeline_name(results_dir: str | Path) -> str:
    """The pipeline whose results `results_dir` holds (its latest run's). Raises LedgerError when
    there is no ledger or no run there."""
    with Ledger.open(results_dir, create=False) as ledger:
        pipeline, _ = _run_of(ledger)
        return pipeline.name


def records(results_dir: str | Path) -> Iterator[dict[str, Any]]:
    """The unified records of `results_dir`, straight from its ledger (nothing written)."""
    with Ledger.open(results_dir, create=False) as ledger:
        pipeline, _ = _run_of(ledger)
        for record in image_records(ledger, pipeline):
            if record.record is not None:
                yield record.record


__all__ = ["ANNOTATIONS_FILE", "EXPORT_FORMATS", "OUTCOMES", "ExportResult", "ProgressSink",
           "RunInfo", "RunSummary", "Snapshot", "StepFigures", "Tokens", "export", "generate",
           "load_spec", "records"]
