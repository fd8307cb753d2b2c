"""Exports: one module per format, each a pure half (records -> objects) and an I/O half
(`save_*`, or a sink fed record by record). The API and the CLI only call `write_exports`.

Formats: `jsonl` (annotations.jsonl, every pipeline), `legacy` (image_referring_expression's
per-image text files; `both` means the two), and the training formats `coco` (COCO detection
JSON with RefCOCO-style sentences and MDETR-style tokens_positive), `odvg` (Grounding DINO's
JSONL) and `sft` (chat JSONL for fine-tuning a VLM).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from auto_label.errors import ExportError
from auto_label.exports import coco, jsonl, legacy, odvg, sft
from auto_label.exports.base import ExportFormat, ExportOptions, Sink, Written
from auto_label.exports.filters import RecordFilter, as_of_step
from auto_label.pipelines.contract import Pipeline
from auto_label.pipelines.records import ImageRecord

FORMATS: dict[str, ExportFormat] = {
    "jsonl": ExportFormat("jsonl", "annotations.jsonl in the unified schema",
                          lambda d, o: jsonl.AnnotationsJsonl(d, o.filter)),
    "legacy": ExportFormat("legacy", "the 2D Data Engine's per-image text files",
                           lambda d, o: legacy.LegacyFiles(d), legacy.PIPELINES, filters=False),
    "coco": ExportFormat("coco", "coco.json: COCO detection with referring sentences and "
                         "tokens_positive", lambda d, o: coco.CocoFile(d, o.filter)),
    "odvg": ExportFormat("odvg", "odvg.jsonl (+ label_map.json): Grounding DINO's ODVG",
                         lambda d, o: odvg.OdvgFiles(d, o.filter)),
    "sft": ExportFormat("sft", "sft.jsonl: chat samples to fine-tune a VLM to ground",
                        lambda d, o: sft.SftJsonl(d, o.filter, o.convention, o.sent_size)),
}
ALIASES: dict[str, tuple[str, ...]] = {"both": ("jsonl", "legacy")}


def formats_for(names: Sequence[str], pipeline: str) -> list[ExportFormat]:
    """The formats `names` asks for (`both` = jsonl and legacy), checked against the pipeline.

    Raises ExportError (exit code 2) for an unknown format or one that does not fit the pipeline.
    """
    chosen: list[ExportFormat] = []
    for name in names:
        for part in ALIASES.get(name, (name,)):
            fmt = FORMATS.get(part)
            if fmt is None:
                known = ", ".join([*FORMATS, *ALIASES])
                raise ExportError(f"unknown export format {name!r}; the formats are {known}")
            if fmt.pipelines is not None and pipeline not in fmt.pipelines:
                fits = ", ".join(sorted(fmt.pipelines))
                raise ExportError(f"the {part} format is for {fits} results, and this "
                                  f"results_dir holds {pipeline} results (use jsonl)")
            if fmt not in chosen:
                chosen.append(fmt)
    return chosen


def write_exports(records: Iterable[ImageRecord], results_dir: Path,
                  formats: Sequence[ExportFormat], options: ExportOptions | None = None,
                  pipeline: Pipeline | None = None) -> list[Written]:
    """Feed every record to each format in one pass; what each wrote, in order. Raises
    ExportError when a filter is asked of a format it does not apply to, or `options.step` is
    not a step of `pipeline` (which it needs)."""
    options = options or ExportOptions()
    if options.step is not None:
        if pipeline is None or options.step not in {s.number for s in pipeline.steps}:
            known = ", ".join(f"{s.number} ({s.name})" for s in pipeline.steps) \
                if pipeline is not None else "none known"
            raise ExportError(f"--step {options.step}: the steps are {known}")
        step = options.step
        records = (as_of_step(r, pipeline, step) for r in records)
    if not options.filter.keeps_everything or options.step is not None:
        unfiltered = [fmt.name for fmt in formats if not fmt.filters]
        if unfiltered:
            raise ExportError(f"the {unfiltered[0]} format mirrors the steps' outputs as they "
                              "are: filters do not apply to it")
    sinks: list[Sink] = [fmt.open(results_dir, options) for fmt in formats]
    try:
        for record in records:
            for sink in sinks:
                sink.add(record)
    except BaseException:
        for sink in sinks:
            sink.discard()
        raise
    return [sink.close() for sink in sinks]


__all__ = ["ALIASES", "FORMATS", "ExportFormat", "ExportOptions", "RecordFilter", "Written",
           "formats_for", "write_exports"]
