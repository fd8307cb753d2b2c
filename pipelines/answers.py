"""The shared answer reader: the JSON value a raw model answer holds.

Models wrap their JSON in markdown fences, write prose around it, think aloud in ``<think>`` blocks,
leave trailing commas, answer in NDJSON instead of an array, or get cut off mid-answer.
`extract_json` accepts all of that; anything it cannot make sense of raises `ParseError` with a
short one-line reason, so that the caller can fail the step, keep the raw text and ask again.

Truncated JSON is salvaged one level deep only: the complete elements of a top-level array, or the
complete key/value pairs of a top-level object, are kept; the entry that was being written when the
text ended is dropped whole, however much of it was there. A number at the very end counts as
incomplete (``12`` may have been ``123``).

No I/O; stdlib only. The step parsers of each pipeline build on this and on `coerce`.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any, Final

_MAX_DEPTH: Final[int] = 64
_MAX_LITERAL: Final[int] = 1_000_000
_NOT_JSON: Final = object()


class ParseError(ValueError):
    """A model answer that cannot be parsed; the message is one short line saying why."""


# --------------------------------------------------------------------------------------------
# Tolerant JSON scanning
# --------------------------------------------------------------------------------------------

_DECODER: Final = json.JSONDecoder(strict=False)  # strict=False: raw newlines inside strings
_WS: Final = re.compile(r"\s*")
_START: Final = re.compile(r"[\[{]")
# What a scalar cut off by the end of the text can look like (also a complete one: at the very end
# of the text it has no delimiter after it, so its entry is incomplete anyway).
_PARTIAL_SCALAR_AT_END: Final = re.compile(
    r"(?:-?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d*)?)?"
    r"|t(?:r(?:ue?)?)?|f(?:a(?:l(?:se?)?)?)?|n(?:u(?:ll?)?)?|N(?:aN?)?"
    r"|-?I(?:n(?:f(?:i(?:n(?:i(?:ty?)?)?)?)?)?)?)\s*\Z"
)
_HEX_PREFIX_AT_END: Final = re.compile(r"u[0-9a-fA-F]{0,3}\Z")


class _Truncated(Exception):
    """The text ended inside a value; `partial` holds the complete entries of that container."""

    def __init__(self, partial: dict[str, Any] | list[Any] | None = None) -> None:
        super().__init__()
        self.partial = partial


class _Invalid(Exception):
    """Not JSON at `pos` (a syntax error, not an early end)."""

    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


def _skip_ws(text: str, pos: int) -> int:
    match = _WS.match(text, pos)
    return match.end() if match else pos


def _parse_string(text: str, pos: int) -> tuple[str, int]:
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except ValueError as exc:
        err_pos = getattr(exc, "pos", None)
        msg = getattr(exc, "msg", "")
        if msg.startswith("Unterminated string"):
            raise _Truncated from None
        if err_pos is not None and _HEX_PREFIX_AT_END.match(text, err_pos):
            raise _Truncated from None  # cut inside a \\uXXXX escape
        raise _Invalid(pos if err_pos is None else err_pos) from None
    return value, end


def _parse_value(text: str, pos: int, depth: int) -> tuple[Any, int]:
    """One JSON value at `pos` (whitespace already skipped, `pos` < len(text))."""
    ch = text[pos]
    if ch in "{[":
        return _parse_container(text, pos, depth + 1)
    if ch == '"':
        return _parse_string(text, pos)
    if _PARTIAL_SCALAR_AT_END.match(text, pos):
        raise _Truncated
    try:
        return _DECODER.raw_decode(text, pos)
    except ValueError:  # JSONDecodeError, or an integer too long to convert
        raise _Invalid(pos) from None


def _parse_container(text: str, pos: int, depth: int) -> tuple[Any, int]:
    """The object or array at `pos`, tolerating trailing commas.

    Raises `_Truncated` carrying the complete entries so far when the text ends inside it.
    """
    if depth > _MAX_DEPTH:
        raise _Invalid(pos)
    n = len(text)
    is_object = text[pos] == "{"
    close = "}" if is_object else "]"
    obj: dict[str, Any] = {}
    arr: list[Any] = []
    partial: dict[str, Any] | list[Any] = obj if is_object else arr
    pos += 1
    while True:
        pos = _skip_ws(text, pos)
        if pos >= n:
            raise _Truncated(partial)
        if text[pos] == close:
            return partial, pos + 1
        key = ""
        try:
            if is_object:
                if text[pos] != '"':
                    raise _Invalid(pos)
                key, pos = _parse_string(text, pos)
                pos = _skip_ws(text, pos)
                if pos >= n:
                    raise _Truncated
                if text[pos] != ":":
                    raise _Invalid(pos)
                pos = _skip_ws(text, pos + 1)
                if pos >= n:
                    raise _Truncated
            value, pos = _parse_value(text, pos, depth)
        except _Truncated as inner:
            # One level down, a cut-off array of records (objects or boxes) keeps its complete
            # records, e.g. the expressions already written when an answer hit max tokens.
            nested = inner.partial
            if isinstance(nested, list) and nested and all(
                    isinstance(v, dict | list) for v in nested):
                if is_object:
                    obj[key] = nested
                else:
                    arr.append(nested)
            raise _Truncated(partial) from None
        pos = _skip_ws(text, pos)
        at_end = pos >= n
        if at_end and isinstance(value, int | float) and not isinstance(value, bool):
            raise _Truncated(partial)  # the number may have gone on
        if is_object:
            obj[key] = value
        else:
            arr.append(value)
        if at_end:
            raise _Truncated(partial)
        if text[pos] == ",":
            pos += 1
        elif text[pos] != close:
            raise _Invalid(pos)


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    value: Any
    truncated: bool


def _scan(text: str) -> list[_Candidate]:
    """Every top-level JSON object/array in `text`, in order, skipping what does not parse. A
    value cut off by the end of the text ends the scan (as a truncated candidate when it has
    complete entries)."""
    found: list[_Candidate] = []
    pos = 0
    while match := _START.search(text, pos):
        start = match.start()
        try:
            value, end = _parse_container(text, start, 0)
        except _Truncated as exc:
            found.append(_Candidate(start, len(text), exc.partial, truncated=True))
            break  # everything after `start` belongs to the cut-off value
        except _Invalid as exc:
            pos = max(exc.pos, start + 1)
            continue
        found.append(_Candidate(start, end, value, truncated=False))
        pos = end
    return found


def _same_stream(prev: _Candidate, cur: _Candidate, text: str) -> bool:
    """Whether `cur` continues an NDJSON stream after `prev`: next line, same kind of value."""
    gap = text[prev.end:cur.start]
    return (
        "\n" in gap
        and not gap.strip(" \t\r\n,")
        and isinstance(cur.value, dict) == isinstance(prev.value, dict)
    )


def _pick(found: list[_Candidate], text: str) -> Any:
    found = [c for c in found if not (c.truncated and not c.value)]  # cut before any entry
    if not found:
        raise ParseError("no JSON object or array found")
    groups: list[list[_Candidate]] = []
    for cand in found:
        if groups and _same_stream(groups[-1][-1], cand, text):
            groups[-1].append(cand)
        else:
            groups.append([cand])
    best = max(groups, key=lambda g: g[-1].end - g[0].start)  # first of the longest
    if len(best) == 1:
        return best[0].value
    # NDJSON: a cut-off last line is an incomplete element of the stream.
    return [c.value for c in best if not c.truncated]


_THINK_BLOCK: Final = re.compile(r"<(think|thinking|reasoning)>.*?</\1\s*>", re.S | re.I)
_THINK_CLOSE: Final = re.compile(r"</(?:think|thinking|reasoning)\s*>", re.I)
_THINK_OPEN: Final = re.compile(r"<(?:think|thinking|reasoning)>", re.I)


def strip_thinking(text: str) -> str:
    """Drop reasoning blocks: whole ones, a dangling close (opened in the prompt) and whatever
    follows a dangling open (reasoning cut off before any answer)."""
    text = _THINK_BLOCK.sub("\n", text)
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end():]
    opened = _THINK_OPEN.search(text)
    if opened:
        text = text[: opened.start()]
    return text


_FENCED: Final = re.compile(r"\A```[\w+-]*[ \t]*\n(.*)\n```\Z", re.S)


def _whole_json(body: str) -> dict[str, Any] | list[Any] | None:
    """The common case, fast: the answer is one JSON object or array, maybe fenced, and nothing
    else. None sends it to the tolerant scanner."""
    stripped = body.strip()
    fenced = _FENCED.match(stripped)
    if fenced is not None:
        stripped = fenced.group(1).strip()
    if stripped[:1] not in ("{", "[") or stripped[-1:] not in ("}", "]"):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict | list) else None


def extract_json(text: str) -> Any:
    """The JSON value a model answer holds.

    Tolerates markdown fences, prose around the JSON, ``<think>`` blocks, trailing commas and
    NDJSON (several values one per line -> a list). Truncated JSON keeps its complete top-level
    entries. When the text holds several unrelated JSON values, the longest wins.

    Raises ParseError when there is no JSON object or array (or a cut-off one with no complete
    entry).
    """
    if not text or not text.strip():
        raise ParseError("empty response")
    body = strip_thinking(text)
    if not body.strip():
        raise ParseError("empty response after removing the thinking block")
    whole = _whole_json(body)
    if whole is not None:
        return whole
    literal = _python_literal(body)
    if literal is not None:
        return literal
    found = _scan(body)
    if not any(c.truncated for c in found):
        repaired = _outer_repaired(body, found)
        if repaired is not None:
            return repaired
    return _pick(found, body)


def _outer_repaired(body: str, found: list[_Candidate]) -> dict[str, Any] | list[Any] | None:
    """When the first bracketed structure is not JSON we read and holds everything the scanner
    found (an inner array alone would lose the labels around it), that structure as json-repair
    reads it; else None."""
    first = _START.search(body)
    if first is None or (found and found[0].start == first.start()):
        return None
    close = _matching_close(body, first.start())
    if close is None or any(c.start < first.start() or c.end > close + 1 for c in found):
        return None
    return _repaired(body[first.start():close + 1])


def _matching_close(text: str, start: int) -> int | None:
    """Where the bracket opened at `start` closes, counting brackets outside quotes."""
    depth = 0
    quote: str | None = None
    escaped = False
    for index in range(start, len(text)):
        ch = text[index]
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return index
    return None


def _span(body: str) -> str | None:
    """From the first opening bracket to the last closing one, fences removed."""
    stripped = body.strip()
    fenced = _FENCED.match(stripped)
    if fenced is not None:
        stripped = fenced.group(1).strip()
    starts = [i for i in (stripped.find("["), stripped.find("{")) if i >= 0]
    end = max(stripped.rfind("]"), stripped.rfind("}"))
    if not starts or end < min(starts):
        return None
    return stripped[min(starts):end + 1]


def _python_literal(body: str) -> dict[str, Any] | list[Any] | None:
    """An answer written as a Python literal (single or mixed quotes, True/False/None), as some
    models write: unambiguous, read with `ast.literal_eval`, which evaluates literals only, never
    code. None when it is not one."""
    span = _span(body)
    if span is None or len(span) > _MAX_LITERAL:
        return None
    try:
        value = ast.literal_eval(span)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    value = _plain(value)
    return value if isinstance(value, dict | list) else None


def _plain(value: Any) -> Any:
    """Tuples as lists; None for what JSON has no word for (sets, bytes, complex numbers)."""
    if isinstance(value, dict):
        items = {str(k): _plain(v) for k, v in value.items()}
        return None if any(v is _NOT_JSON for v in items.values()) else items
    if isinstance(value, list | tuple):
        values = [_plain(v) for v in value]
        return None if any(v is _NOT_JSON for v in values) else values
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return _NOT_JSON


def _repaired(body: str) -> dict[str, Any] | list[Any] | None:
    """What json-repair (a well-kept library) reads in JSON our scanner cannot: unquoted keys,
    comments, missing commas. Only for text with no cut-off value: json-repair completes a
    truncated value (a box `[600, 700, 9` would become three numbers), which we never record.
    Imported on first use: a run does not wait for it before its first request (launch time)."""
    import json_repair

    try:
        value = json_repair.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict | list) and value else None



def json_value_at(text: str, pos: int) -> tuple[Any, int] | None:
    """The complete JSON object or array starting at `pos` and where it ends, or None (not JSON,
    or cut off). Trailing commas are tolerated."""
    try:
        return _parse_container(text, pos, 0)
    except (_Truncated, _Invalid):
        return None
