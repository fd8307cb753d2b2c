"""Load a spec from YAML plus `key.sub=value` overrides, with one-line errors that name the key.

Every problem is a `SpecError` whose message is a single line naming the file and line (or the
override), the dotted key and what it expects, in plain words (an unknown key gets the closest
known one: "did you mean"). Values are never echoed, so a mistyped API key cannot leak.

Relative paths in a spec (`results_dir`, `data.input_jsonl`, `data.image_root`, `data.image_dir`,
`data.kitti_label_dir`, ...) are kept as written and so resolve against the current directory of
the process that runs it, not against the spec file's folder: the same as on the command line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from auto_label.errors import SpecError
from auto_label.pipelines.inputs import shown_path
from auto_label.pipelines.registry import PIPELINES
from auto_label.spec import Spec, keys_at, spec_model

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _line_map(node: yaml.Node, prefix: tuple[str, ...], out: dict[tuple[str, ...], int],
              source: Path) -> None:
    """Record the 1-based line of every mapping key below `node`; SpecError for a key given
    twice in one mapping (YAML keeps the last silently, a pasted block would wipe the first)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, str(key_node.value))
            line = key_node.start_mark.line + 1
            if path in out:
                raise SpecError(f"{source}:{line}: {'.'.join(path)}: key given twice (first at "
                                f"line {out[path]}); merge the two")
            out[path] = line
            _line_map(value_node, path, out, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, str(index))
            out[path] = item.start_mark.line + 1
            _line_map(item, path, out, source)


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError(f"{shown_path(path)}: spec file not found") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, not a spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the spec file ({exc.__class__.__name__})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SpecError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the spec must be a YAML mapping of keys to values")
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _line_map(node, (), lines, path)
    return data, lines


_SECRET_HINTS = ("key", "token", "secret", "pass")
"""An override whose last key part contains one of these may hold a secret (a misspelt
`api_kye` included): its value is never shown."""


def _show(text: str) -> str:
    """An override as it may appear in a message: a value that may be secret is masked."""
    key = text.partition("=")[0]
    last = key.strip().rsplit(".", 1)[-1].lower()
    if not any(hint in last for hint in _SECRET_HINTS) and not difflib.get_close_matches(
            last, ["api_key", "token", "secret", "password"], cutoff=0.6):
        return text
    return f"{key.split()[0] if key.split() else key}=***"


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """`a.b.c=value` -> (("a", "b", "c"), value parsed as a YAML scalar or flow collection)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise SpecError(
            f"override {_show(text)!r}: expected key.sub=value, e.g. results_dir=/tmp/out")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return tuple(key.split(".")), value


def _set(data: dict[str, Any], path: Sequence[str], value: Any, source: str) -> None:
    node = data
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise SpecError(f"override {source}: {where} is a value, not a block")
        node = child
    node[path[-1]] = value


def _dotted(loc: Iterable[Any]) -> str:
    return ".".join(str(p) for p in loc)


_PLAIN = {
    "missing": "required key is missing",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number, not a fraction",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text (a string)",
    "path_type": "expected a path (a string)",
    "list_type": "expected a list, e.g. [a, b]",
    "dict_type": "expected a block of keys, not a single value",
    "model_type": "expected a block of keys, not a single value",
    "model_attributes_type": "expected a block of keys, not a single value",
}
"""pydantic's error types, in the words of a spec: what the key expects."""

_BOUNDS = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
           "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}


def _describe(error: Mapping[str, Any]) -> str:
    """What is wrong with the value of one key, as a spec's reader says it (no pydantic
    wording, no class names, never the value itself)."""
    kind = str(error["type"])
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if kind in _PLAIN:
        return _PLAIN[kind]
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"must be {words} {ctx.get(name)}"
    if kind == "literal_error" and "expected" in ctx:
        return f"expected {ctx['expected']}"
    msg = str(error["msg"])
    for prefix, plain in (("Value error, ", ""), ("Input should be ", "should be "),
                          ("Input is ", "is ")):
        if msg.startswith(prefix):
            return plain + msg[len(prefix):]
    return msg


def _unknown(loc: tuple[str, ...], selected: str | None) -> str:
    """"unknown key", with the key that was most likely meant: a close spelling among the keys
    of the same block, else the same key one block further down (`workflow.` left out)."""
    parent, name = loc[:-1], loc[-1]
    siblings = keys_at(parent)
    close = difflib.get_close_matches(name, siblings, n=1, cutoff=0.6)
    if close:
        return f"unknown key, did you mean {close[0]}?"
    children = sorted(siblings, key=lambda key: key != selected)  # the selected block first
    for child in children:
        if name in keys_at((*parent, child)):
            return f"unknown key, did you mean {child}.{name}?"
    if siblings:
        return f"unknown key (the keys here: {', '.join(siblings)})"
    return "unknown key"


def load_spec(path: str | Path | None, overrides: Sequence[str] = ()) -> Spec:
    """Read the spec at `path` (None: start from nothing), apply overrides, validate."""
    data: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    source = Path(path) if path is not None else None
    if source is not None:
        data, lines = _read_yaml(source)
    from_override: dict[tuple[str, ...], str] = {}
    for text in overrides:
        key, value = parse_override(text)
        _set(data, key, value, repr(_show(text)))
        from_override[key] = text
    selected = data.get("autolabel_type")
    known = selected if isinstance(selected, str) and selected in PIPELINES else None
    try:
        return spec_model(known).model_validate(data)
    except ValidationError as exc:
        raise SpecError(_first_error(exc, source, lines, from_override,
                                     selected if isinstance(selected, str) else None)) from None


def _first_error(
    exc: ValidationError,
    source: Path | None,
    lines: dict[tuple[str, ...], int],
    from_override: dict[tuple[str, ...], str],
    selected: str | None = None,
) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    # An unknown key explains a "missing" one (a typo), so it is the one to show.
    error = min(errors, key=lambda e: e["type"] != "extra_forbidden")
    loc = _key_path(error["loc"])
    key = _dotted(loc) or "(top level)"
    problem = _unknown(loc, selected) if error["type"] == "extra_forbidden" and loc else (
        _describe(error))
    others = list(dict.fromkeys(_dotted(_key_path(e["loc"])) for e in errors if e is not error))
    others = [k for k in others if k and k != key]
    suffix = (f" (also wrong: {', '.join(others[:3])}{', ...' if len(others) > 3 else ''})"
              if others else "")
    for depth in range(len(loc), 0, -1):
        if loc[:depth] in from_override:
            return f"override {_show(from_override[loc[:depth]])!r}: {key}: {problem}{suffix}"
    if error["type"] == "extra_forbidden":  # an unknown key an override created
        for path, text in from_override.items():
            if loc and path[:len(loc)] == loc:
                return f"override {_show(text)!r}: {key}: {problem}{suffix}"
    for depth in range(len(loc), 0, -1):
        if loc[:depth] in lines and source is not None:
            return f"{source}:{lines[loc[:depth]]}: {key}: {problem}{suffix}"
    where = f"{source}: " if source is not None else ""
    return f"{where}{key}: {problem}{suffix}"


def _key_path(loc: Iterable[Any]) -> tuple[str, ...]:
    """An error's location as spec keys: union members (e.g. "ImageGroundingBlock") dropped."""
    return tuple(p for p in (str(part) for part in loc) if not p[:1].isupper())
