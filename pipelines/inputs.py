"""Reading inputs, for every pipeline: JSONL lines with their `file:line`, image paths, image ids.

A problem is one `InputError` naming the file and line. Problems with an image file itself
(missing, corrupt) are not found here: they fail that image's steps when it is seeded.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from auto_label.errors import InputError
from auto_label.pipelines.contract import ImageInput


def shown_path(path: Path) -> str:
    """`path` as a message shows it: as written, plus the absolute path it resolves to when it
    is relative (relative paths in a spec resolve against the current directory)."""
    return str(path) if path.is_absolute() else f"{path} ({Path.cwd() / path})"


@functools.lru_cache(maxsize=16)
def _root(image_root: str) -> Path:
    return Path(image_root).expanduser()


def resolve_image_path(image_path: str, image_root: str) -> Path:
    """`image_path` under `image_root` when it is relative and a root is set."""
    if image_root and not image_path.startswith(("~", "/")):
        return _root(image_root) / image_path  # what follows gives the same, slower
    path = Path(image_path).expanduser()
    if path.is_absolute() or not image_root:
        return path
    return _root(image_root) / path


def path_stem(image_path: str) -> str:
    """`Path(image_path).stem`, without building a Path for an ordinary file name (one dot
    inside it, or none) in an ordinary path."""
    name = image_path.rpartition("/")[2]
    dots = name.count(".")
    if dots == 0 and name:
        return name
    if dots == 1 and not name.startswith(".") and not name.endswith("."):
        return name.partition(".")[0]
    return Path(image_path).stem


def positive_int(value: Any, where: str, key: str) -> int | None:
    """None, or a positive int; InputError naming `where` and `key` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{where}: {key} must be a positive integer")
    return value


def iter_json_lines(path: Path, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`file:line`, object) for each non-blank line; InputError naming the line otherwise."""
    try:
        handle = path.open(encoding="utf-8-sig")  # a BOM (Windows exports) is not data
    except FileNotFoundError:
        raise InputError(f"{shown_path(path)}: {what} not found") from None
    except IsADirectoryError:
        raise InputError(f"{shown_path(path)}: {what} is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror})") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                text = line.rstrip("\r\n")
                try:
                    item = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{where}: not valid JSON{json_problem(text, exc)}") from None
                if not isinstance(item, dict):
                    raise InputError(f"{where}: expected a JSON object")
                yield where, item
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None


_PLAIN_JSON = {
    "Expecting ',' delimiter": "expected ',' between two items",
    "Expecting ':' delimiter": "expected ':' between a key and its value",
    "Expecting property name enclosed in double quotes": "expected a key in double quotes",
    "Expecting value": "expected a value",
    "Extra data": "more text after the end of the object",
}


def _unclosed(text: str) -> tuple[str, int] | None:
    """The innermost `{` or `[` still open at the end of `text`, with its 1-based column."""
    stack: list[tuple[str, int]] = []
    in_string = escaped = False
    for column, char in enumerate(text, start=1):
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append((char, column))
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else None


def json_problem(text: str, exc: json.JSONDecodeError) -> str:
    """What is wrong with one line of JSON, for a message that already says "not valid JSON":
    the column and the likely slip (a `}` or `"` missing at the end of the line, a `,` between
    two items), in words rather than the decoder's."""
    if exc.msg.startswith("Unterminated string"):
        return f": the string that starts at column {exc.colno} is never closed (a missing '\"')"
    opened = _unclosed(text)
    if exc.pos >= len(text.rstrip()) and opened is not None:
        bracket, column = opened
        what, closing = ("object", "}") if bracket == "{" else ("list", "]")
        return (f": the line ends (column {len(text.rstrip()) + 1}) before the {what} that starts "
                f"at column {column} is closed (a missing '{closing}')")
    inner = _unclosed(text[:exc.pos])
    if inner is not None and text[exc.pos:exc.pos + 1] in ("}", "]"):
        bracket, column = inner
        if text[exc.pos] != {"{": "}", "[": "]"}[bracket]:
            what, closing = ("object", "}") if bracket == "{" else ("list", "]")
            return (f" at column {exc.colno}: the {what} that starts at column {column} is not "
                    f"closed (a missing '{closing}')")
    if text[exc.pos:exc.pos + 1] in ("}", "]") and text[:exc.pos].rstrip().endswith(","):
        return (f" at column {exc.colno}: a ',' before '{text[exc.pos]}' (JSON takes no "
                "trailing comma)")
    return f" at column {exc.colno}: {_PLAIN_JSON.get(exc.msg, exc.msg)}"


def check_unique_ids(listed: Iterable[tuple[str, str]],
                     again: Callable[[], Iterable[tuple[str, str]]],
                     keep: set[str] | None = None) -> int:
    """The number of (image_id, `file:line`) pairs `listed` gives; InputError naming the second
    listing of any image_id (as `check_unique`). Only the ids' hashes are held (and the ids in
    `keep` when given); when two hashes match, `again()` lists the pairs once more to tell a
    true duplicate from a collision."""
    seen: set[int] = set()
    suspects: set[int] = set()
    count = 0
    for image_id, _ in listed:
        count += 1
        if keep is not None:
            keep.add(image_id)
        key = hash(image_id)
        if key in seen:
            suspects.add(key)
        seen.add(key)
    if suspects:
        seen.clear()
        first: dict[str, str] = {}
        for image_id, where in again():
            if hash(image_id) not in suspects:
                continue
            if image_id in first:
                line = first[image_id].rsplit(":", 1)[-1]
                raise InputError(f"{where}: duplicate image_id {image_id!r} "
                                 f"(first at line {line})")
            first[image_id] = where
    return count


def check_unique(items: list[ImageInput]) -> None:
    """InputError naming the second listing of any image_id."""
    first: dict[str, str] = {}
    for item in items:
        if item.image_id in first:
            line = first[item.image_id].rsplit(":", 1)[-1]
            raise InputError(f"{item.source}: duplicate image_id {item.image_id!r} "
                             f"(first at line {line})")
        first[item.image_id] = item.source


def image_id_of(item: dict[str, Any], image_path: str, where: str) -> str:
    """The item's `image_id`, else the file name stem; InputError naming `where` if unusable."""
    image_id = item.get("image_id")
    if image_id is None:
        return path_stem(image_path)
    if not isinstance(image_id, str | int) or isinstance(image_id, bool) or not str(image_id):
        raise InputError(f"{where}: image_id must be a non-empty string")
    return str(image_id)
