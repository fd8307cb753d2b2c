"""auto-label: build vision-language grounding datasets with a VLM on a resumable SQLite ledger.

The public API (the CLI is a thin layer over it):

    from auto_label import load_spec, generate, export, records

Names are loaded on first use, so that `import auto_label.<subpackage>` stays light.
"""

from __future__ import annotations

from typing import Any

from auto_label.version import __version__

_API = {
    "ExportResult": "auto_label.api",
    "export": "auto_label.api",
    "generate": "auto_label.api",
    "load_spec": "auto_label.api",
    "records": "auto_label.api",
    "AutoLabelError": "auto_label.errors",
    "LedgerStatus": "auto_label.status",
    "ProbeReport": "auto_label.probing",
    "probe": "auto_label.probing",
    "ledger_status": "auto_label.status",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'auto_label' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
