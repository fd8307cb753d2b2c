"""The legacy export: per-image text files under `results_dir/step_N_<name>/labels/`, the layout
of the original 2D Data Engine, projected from the ledger like annotations.jsonl.

Each file is written atomically (temporary file + rename); a file whose step result no longer
holds is removed, so the folder always matches the ledger.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
        write_text_atomic(path, text)
        written += 1
    return written
