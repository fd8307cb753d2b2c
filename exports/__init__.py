"""Exports: one module per format, each a pure half (records -> objects) and an I/O half
(`save_*`, or a sink fed record by record). The API and the CLI only call `write_exports`.

Formats: `jsonl` (annotations.jsonl, every pipeline) and `legacy` (image_referring_expression's
per-image text files); `both` means the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from auto_label.errors import ExportError
from auto_label.exports import jsonl, legacy
from auto_label.exports.base import ExportFormat, Sink, Written
from auto_label.pipelines.records import ImageRecord

FORMATS: dict[str, ExportFormat] = {
    "jsonl": ExportFormat("jsonl", "annotations.jsonl in the unified schema",
                          jsonl.AnnotationsJsonl),
    "legacy": ExportFormat("legacy", "the 2D Data Engine's per-image text files",
                           legacy.LegacyFiles, legacy.PIPELINES),
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
                  formats: Sequence[ExportFormat]) -> list[Written]:
    """Feed every record to each format in one pass; what each wrote, in order."""
    sinks: list[Sink] = [fmt.open(results_dir) for fmt in formats]
    try:
        for record in records:
            for sink in sinks:
                sink.add(record)
    except BaseException:
        for sink in sinks:
            sink.discard()
        raise
    return [sink.close() for sink in sinks]


__all__ = ["ALIASES", "FORMATS", "ExportFormat", "Written", "formats_for", "write_exports"]
