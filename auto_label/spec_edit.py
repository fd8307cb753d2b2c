"""Writing a few keys of one block into a spec file, keeping its comments and layout.

`auto_label probe --write` uses it to put the box convention it measured into the spec, so that an
agent (or a person) does not have to edit YAML by hand. ruamel.yaml's round-trip mode reads and
writes the file (comments, key order, quoting and flow style kept); the result must load as a
spec and read back the values written, or the file is left untouched.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from auto_label.errors import SpecError
from auto_label.spec_loader import load_spec


def _value(value: Any) -> Any:
    """`value` as ruamel writes it: a mapping in flow style (one line), anything else as is."""
    if isinstance(value, Mapping):
        flow = CommentedMap(value)
        flow.fa.set_flow_style()
        return flow
    return value


def _null(representer: Any, _: None) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def set_block_keys(path: str | Path, block: tuple[str, ...], values: Mapping[str, Any],
                   overrides: Sequence[str] = ()) -> None:
    """Set `values` (key -> a YAML-able value) in the mapping at `block` (e.g. ("image_grounding",
    "vlm", "openai")) of the spec file `path`, creating the block's missing levels and keeping
    every other line as it is.

    Raises SpecError (one line naming the file) when the file cannot be read, parsed or written,
    holds something other than a mapping on the way to `block`, or would not load as a spec
    afterwards (with `overrides`, as the command that measured the values loaded it); the file is
    then unchanged. Written atomically (a temporary file beside it, then renamed)."""
    path = Path(path)
    rt = YAML()  # round-trip: comments and layout survive
    rt.preserve_quotes = True
    rt.width = 100
    rt.representer.add_representer(type(None), _null)  # `null` stays `null`, not an empty value
    try:
        tree = rt.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except YAMLError as exc:
        raise SpecError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    node = tree
    for depth, part in enumerate(block):
        if not isinstance(node, dict):
            raise SpecError(f"{path}: {'.'.join(block[:depth]) or 'the file'} is not a mapping; "
                            "add the lines printed above by hand")
        if node.get(part) is None:
            node[part] = CommentedMap()
        node = node[part]
    if not isinstance(node, dict):
        raise SpecError(f"{path}: {'.'.join(block)} is not a mapping; add the lines printed "
                        "above by hand")
    for key, value in values.items():
        node[key] = _value(value)
    text = io.StringIO()
    rt.dump(tree, text)
    edited = text.getvalue()
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(edited, encoding="utf-8")
        try:
            load_spec(partial, overrides)
        except SpecError as exc:
            raise SpecError(f"{path}: the edited spec would not load "
                            f"({str(exc).replace(str(partial), path.name)}); add the lines "
                            "printed above by hand") from None
        check: Any = yaml.safe_load(edited)
        for part in block:
            check = check[part]
        for key, value in values.items():
            if check.get(key) != value:
                raise SpecError(f"{path}: writing {'.'.join((*block, key))} did not read back "
                                f"as {value!r}; add the lines printed above by hand")
        partial.replace(path)
    except OSError as exc:
        raise SpecError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    finally:
        partial.unlink(missing_ok=True)
