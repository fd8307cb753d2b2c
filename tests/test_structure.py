"""The shape a team can carry on, held by tools: small modules, attributes born in __init__.

(The import arrows are held by import-linter and the types by mypy, both in the test command.)
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from pylint.lint import Run

import auto_label

MAX_LINES = 400


def modules() -> list[str]:
    """Every module of the package, the layers behind the symlinks included."""
    return sorted(m.name for m in pkgutil.walk_packages(auto_label.__path__, "auto_label."))


def test_every_layer_is_found():
    names = modules()
    for layer in ("ledger", "backends", "pipelines", "pipelines.engine", "exports", "cli", "sim"):
        assert f"auto_label.{layer}" in names


@pytest.mark.parametrize("name", modules())
def test_modules_stay_small(name):
    path = Path(importlib.util.find_spec(name).origin)  # type: ignore[union-attr,arg-type]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by job"


def test_no_attribute_is_first_set_outside_init(capsys):
    run = Run(["--disable=all", "--enable=attribute-defined-outside-init", "--score=n",
               *modules()], exit=False)
    assert run.linter.msg_status == 0, capsys.readouterr().out
