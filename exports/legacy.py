"""The legacy export of image_referring_expression: per-image text files under
`results_dir/step_N_<name>/labels/<stem>.txt.stepN`, the layout of the original 2D Data Engine.

- `.txt.step0`: a JSON array (indent 2) of `{bbox_2d, type, color, description}`
- `.txt.step1`: the caption
- `.txt.step2`, `.txt.step3`: one line per expression with boxes, `<text>: [[x1, y1, x2, y2], ...]`
- `Failed to obtain answer via API.` for a step whose latest attempt failed.

Pure half: `record_to_legacy_files`. I/O half: `save_legacy_files` (and `LegacyFiles`, the same
as a sink): each file written atomically; a file whose step result no longer holds is removed, so
the folders always match the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from auto_label.exports.atomic import write_atomic
from auto_label.exports.base import Written
from auto_label.pipelines.contract import StepOutput
from auto_label.pipelines.records import ImageRecord
from auto_label.pipelines.referring.outputs import (
    CaptionOutput,
    CheckedOutput,
    GroupsOutput,
    RegionsOutput,
)

PIPELINES = frozenset({"image_referring_expression"})
LEGACY_DIRS = {"0": "step_0_region_expr", "1": "step_1_image_caption",
               "2": "step_2_grounding_expr", "3": "step_3_double_check"}
FAILED_MARK = "Failed to obtain answer via API."


def _text(output: StepOutput) -> str:
    if isinstance(output, RegionsOutput):
        return json.dumps([{"bbox_2d": r.bbox, "type": r.type, "color": r.color,
                            "description": r.description} for r in output.regions],
                          indent=2, ensure_ascii=False)
    if isinstance(output, CaptionOutput):
        return output.caption
    if isinstance(output, GroupsOutput | CheckedOutput):
        return "\n".join(f"{e.text}: {json.dumps([i.bbox for i in e.instances])}"
                         for e in output.expressions if e.instances)
    raise TypeError(f"no legacy file for a {type(output).__name__}")


def record_to_legacy_files(record: ImageRecord) -> dict[str, str | None]:
    """`step_N_<name>/labels/<stem>.txt.stepN` -> content (None: no file should be there)."""
    if record.seed is None:
        return {}
    stem = Path(record.image_path).stem
    files: dict[str, str | None] = {}
    for number, folder in LEGACY_DIRS.items():
        path = f"{folder}/labels/{stem}.txt.step{number}"
        if number in record.outputs:
            files[path] = _text(record.outputs[number])
        elif number in record.failed:
            files[path] = FAILED_MARK
        else:
            files[path] = None
    return files


class LegacyFiles:
    """A sink writing (or removing) the legacy files of each record under `results_dir`."""

    def __init__(self, results_dir: Path) -> None:
        self.results_dir = results_dir
        self._files = 0

    def add(self, record: ImageRecord) -> None:
        for relative, text in record_to_legacy_files(record).items():
            path = self.results_dir / relative
            if text is None:
                path.unlink(missing_ok=True)
                continue
            self._files += 1
            if not (path.exists() and path.read_text(encoding="utf-8") == text):
                write_atomic(path, [text])

    def close(self) -> Written:
        folders = sorted(self.results_dir / folder for folder in LEGACY_DIRS.values()
                         if (self.results_dir / folder).is_dir())
        return Written(folders, 0, self._files)

    def discard(self) -> None:
        """Files already written stay: each is a true projection of the ledger."""


def save_legacy_files(records: Iterable[ImageRecord], results_dir: Path) -> Written:
    """Write the legacy files of `records` under `results_dir`."""
    sink = LegacyFiles(results_dir)
    for record in records:
        sink.add(record)
    return sink.close()
