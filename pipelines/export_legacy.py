"""The legacy export: per-image text files under `results_dir/step_N_<name>/labels/`, the layout
of the original 2D Data Engine, projected from the ledger like annotations.jsonl.

Each file is written atomically (temporary file + rename); a file whose step result no longer
holds is removed, so the folder always matches the ledger.
"""

from __future__ import annotations

from pathlib import Path

from auto_label.pipelines.atomic_file import write_atomic


def save_legacy_files(files: dict[str, str | None], results_dir: Path) -> int:
    """Write (or remove, for None) each file; returns how many were written."""
    written = 0
    for relative, text in files.items():
        path = results_dir / relative
        if text is None:
            path.unlink(missing_ok=True)
            continue
        if path.exists() and path.read_text(encoding="utf-8") == text:
            written += 1
            continue
        write_atomic(path, [text])
        written += 1
    return written
