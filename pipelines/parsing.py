"""Tolerant, pure parsers of raw VLM answers, one per pipeline step.

Models wrap their JSON in markdown fences, write prose around it, think aloud in ``<think>`` blocks,
leave trailing commas, answer in NDJSON instead of an array, or get cut off mid-answer. These
parsers accept all of that and return plain builtins (JSON-serialisable). Anything they cannot make
sense of raises `ParseError` with a short one-line reason, so that the caller can fail the step,
keep the raw text and ask again.

Truncated JSON is salvaged one level deep only: the complete elements of a top-level array, or the
complete key/value pairs of a top-level object, are kept; the entry that was being written when the
text ended is dropped whole, however much of it was there. A number at the very end counts as
incomplete (``12`` may have been ``123``).

No I/O; stdlib only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "MAX_BOXES_PER_EXPRESSION",
    "ParseError",
    "extract_json",
    "parse_caption",
    "parse_extraction",
    "parse_grounding",
    "parse_phrase_lines",
    "parse_regions",
]

MAX_BOXES_PER_EXPRESSION: Final[int] = 10

_BOX_KEYS: Final[tuple[str, ...]] = ("bboxes", "boxes", "bbox_2d", "box_2d", "bbox", "box")
_SCORE_KEYS: Final[tuple[str, ...]] = ("scores", "score", "confidences", "confidence")
_LABEL_KEYS: Final[tuple[str, ...]] = ("text", "expression", "label", "phrase")
_REGION_BOX_KEYS: Final[tuple[str, ...]] = ("bbox_2d", "box_2d", "bbox", "box")
_REGION_TEXT_FIELDS: Final[tuple[str, ...]] = ("type", "color", "description")
_REGION_WRAPPERS: Final[tuple[str, ...]] = ("objects", "regions", "results", "items", "annotations")
_MAX_DEPTH: Final[int] = 64


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
    """Every top-level JSON object/array in `text`, in order, skipping what does not parse."""
    found: list[_Candidate] = []
    pos = 0
    while match := _START.search(text, pos):
        start = match.start()
        try:
            value, end = _parse_container(text, start, 0)
        except _Truncated as exc:
            if exc.partial:
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


def _strip_thinking(text: str) -> str:
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
    body = _strip_thinking(text)
    if not body.strip():
        raise ParseError("empty response after removing the thinking block")
    whole = _whole_json(body)
    if whole is not None:
        return whole
    found = _scan(body)
    if not found:
        raise ParseError("no JSON object or array found")
    return _pick(found, body)


# --------------------------------------------------------------------------------------------
# Small helpers on parsed values
# --------------------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _as_box(value: Any) -> list[float] | None:
    """Four finite numbers as floats, else None."""
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None
    out: list[float] = []
    for v in value:
        if not _is_number(v):
            return None
        try:
            f = float(v)
        except OverflowError:
            return None
        if not math.isfinite(f):
            return None
        out.append(f)
    return out


def _as_score(value: Any, default: float = 1.0) -> float:
    """A confidence in [0, 1]; numbers, numeric strings and percentages; else `default`."""
    score: float | None = None
    if _is_number(value):
        try:
            score = float(value)
        except OverflowError:
            score = None
    elif isinstance(value, str):
        s = value.strip()
        scale = 1.0
        if s.endswith("%"):
            s, scale = s[:-1].strip(), 100.0
        try:
            score = float(s) / scale
        except ValueError:
            score = None
    if score is None or not math.isfinite(score):
        return default
    return min(1.0, max(0.0, score))


def _first_present(d: dict[str, Any], keys: Iterable[str]) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return None


def _label(item: dict[str, Any]) -> str | None:
    for k in _LABEL_KEYS:
        v = item.get(k)
        if isinstance(v, str):
            return v
    return None


def _norm_key(s: str) -> str:
    return " ".join(s.split()).casefold()


def _clean_str(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value).strip()


# --------------------------------------------------------------------------------------------
# Grounding step 0: expression extraction
# --------------------------------------------------------------------------------------------


def _as_span(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    out: list[int] = []
    for v in value:
        if isinstance(v, bool):
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int):
            return None
        out.append(v)
    return out[0], out[1]


def _find(haystack: str, needle: str, start: int) -> tuple[int, int] | None:
    """First occurrence of `needle` at/after `start`: exact, else case-insensitive."""
    i = haystack.find(needle, start)
    if i >= 0:
        return i, i + len(needle)
    match = re.compile(re.escape(needle), re.IGNORECASE).search(haystack, start)
    if match:
        return match.start(), match.end()
    return None


def parse_extraction(text: str, caption: str) -> dict:
    """Grounding step 0 -> ``{"cleaned_caption": str, "expressions": [{text, char_span,
    noun_chunk}]}``.

    Accepts the reference object, a bare list of expressions, and expressions written as plain
    strings. The cleaned caption defaults to `caption` when missing or empty. A ``char_span`` is
    kept when ``cleaned_caption[s:e] == text``; otherwise the text is looked up in the cleaned
    caption (from the previous expression's start on, exact then case-insensitive, then from the
    start of the caption) and the span is None when it is not there. When only a case-insensitive
    match exists, ``text`` takes the caption's spelling, so ``cleaned_caption[s:e] == text``
    whenever the span is not None. Empty texts are dropped; a repeated text is kept once (first).
    """
    data = extract_json(text)
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict) \
            and "expressions" in data[0]:
        data = data[0]
    cleaned: Any = None
    if isinstance(data, dict):
        if not isinstance(data.get("expressions"), list):
            raise ParseError("expected a JSON object with 'expressions'")
        items: list[Any] = data["expressions"]
        cleaned = data.get("cleaned_caption")
    elif isinstance(data, list):
        items = data
    else:
        raise ParseError("expected a JSON object with 'expressions'")
    cleaned_caption = cleaned.strip() if isinstance(cleaned, str) and cleaned.strip() else caption

    raw: list[tuple[str, tuple[int, int] | None, str | None]] = []
    usable_shape = 0
    for item in items:
        if isinstance(item, str):
            usable_shape += 1
            raw.append((item.strip(), None, None))
        elif isinstance(item, dict) and _label(item) is not None:
            usable_shape += 1
            noun = item.get("noun_chunk")
            noun_chunk = (noun.strip() or None) if isinstance(noun, str) else None
            raw.append((_label(item) or "", _as_span(item.get("char_span")), noun_chunk))
    if items and not usable_shape:
        raise ParseError("expected expressions as strings or objects with 'text'")

    expressions: list[dict[str, Any]] = []
    seen: set[str] = set()
    prev_start = 0
    for expr_text, span, noun_chunk in raw:
        expr_text = expr_text.strip()
        if not expr_text:
            continue
        resolved: tuple[int, int] | None = None
        if span is not None and 0 <= span[0] <= span[1] <= len(cleaned_caption) \
                and cleaned_caption[span[0]:span[1]] == expr_text:
            resolved = span
        else:
            resolved = _find(cleaned_caption, expr_text, prev_start)
            if resolved is None and prev_start > 0:
                resolved = _find(cleaned_caption, expr_text, 0)
        if resolved is not None:
            expr_text = cleaned_caption[resolved[0]:resolved[1]]
            prev_start = resolved[0]
        if expr_text in seen:
            continue
        seen.add(expr_text)
        expressions.append({
            "text": expr_text,
            "char_span": list(resolved) if resolved is not None else None,
            "noun_chunk": noun_chunk,
        })
    return {"cleaned_caption": cleaned_caption, "expressions": expressions}


# --------------------------------------------------------------------------------------------
# Grounding step 1: boxes per expression
# --------------------------------------------------------------------------------------------

Instance = tuple[list[float], float]


def _pair_boxes(boxes: Any, scores: Any) -> list[Instance]:
    if not isinstance(boxes, list):
        return []
    if boxes and not isinstance(boxes[0], list | dict):
        boxes = [boxes]  # a single box instead of a list of boxes
    if isinstance(scores, list):
        score_list: list[Any] = scores
    else:
        score_list = [] if scores is None else [scores]
    out: list[Instance] = []
    for i, item in enumerate(boxes):
        if isinstance(item, dict):
            out.extend(_instances(item))
            continue
        box = _as_box(item)
        if box is not None:
            out.append((box, _as_score(score_list[i]) if i < len(score_list) else 1.0))
    return out


def _instances(value: Any) -> list[Instance]:
    """(box, score) pairs of one expression's entry, in whichever shape it came."""
    if isinstance(value, dict):
        boxes = _first_present(value, _BOX_KEYS)
        if boxes is None:
            return []
        return _pair_boxes(boxes, _first_present(value, _SCORE_KEYS))
    if isinstance(value, list):
        return _pair_boxes(value, None)
    return []


class _ExpressionKeys:
    """Matches a model's key to a given expression: exactly, then case/whitespace-insensitively."""

    def __init__(self, expressions: Sequence[str]) -> None:
        self.exact = set(expressions)
        self.loose: dict[str, str] = {}
        for e in expressions:
            self.loose.setdefault(_norm_key(e), e)

    def resolve(self, key: Any) -> str | None:
        if not isinstance(key, str):
            return None
        if key in self.exact:
            return key
        return self.loose.get(_norm_key(key))


def _labelled_items(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [x for x in value if isinstance(x, dict) and _label(x) is not None]


def _grounding_entries(data: Any, keys: _ExpressionKeys,
                       expressions: Sequence[str]) -> list[tuple[Any, Any]]:
    """(key, entry) pairs from any accepted answer shape."""
    if isinstance(data, list):
        if not any(isinstance(x, dict) for x in data):
            raise ParseError("expected a JSON object keyed by expression")
        entries: list[tuple[Any, Any]] = []
        for item in data:
            if not isinstance(item, dict):
                continue
            label = _label(item)
            if label is not None:
                entries.append((label, item))
            else:
                entries.extend(item.items())
        return entries
    if not isinstance(data, dict):
        raise ParseError("expected a JSON object keyed by expression")
    if any(keys.resolve(k) is not None for k in data):
        return list(data.items())
    if _label(data) is not None:  # one labelled instance on its own
        return [(_label(data), data)]
    for wrapped in data.values():  # {"results": [{"label": ..., "bbox_2d": ...}, ...]}
        items = _labelled_items(wrapped)
        if items:
            return [(_label(x), x) for x in items]
    unique = set(expressions)
    if len(unique) == 1 and _first_present(data, _BOX_KEYS) is not None:
        return [(next(iter(unique)), data)]  # the only expression's entry, without its key
    return []


def parse_grounding(
    text: str, expressions: Sequence[str]
) -> dict[str, list[tuple[list[float], float]]]:
    """Grounding step 1 -> ``{expression: [(box, score), ...]}`` for every given expression.

    Accepts ``{"<expr>": {"bboxes": [[a, b, c, d], ...], "scores": [...]}}`` with ``boxes``,
    ``bbox``, ``bbox_2d`` or ``box_2d`` for ``bboxes``, a single box for a list of boxes, a bare
    list of boxes as the entry, and lists of ``{"text"|"expression"|"label": ..., "bbox_2d": [...],
    "score": ...}``. Scores default to 1.0, may be strings, and are clamped to [0, 1]. Boxes that
    are not 4 finite numbers are skipped; at most 10 per expression, in the model's order. Box
    values are as the model wrote them, as floats (no coordinate conversion, no reordering).
    """
    data = extract_json(text)
    keys = _ExpressionKeys(expressions)
    result: dict[str, list[Instance]] = {e: [] for e in expressions}
    for key, entry in _grounding_entries(data, keys, expressions):
        expr = keys.resolve(key)
        if expr is None:
            continue
        bucket = result[expr]
        for instance in _instances(entry):
            if len(bucket) >= MAX_BOXES_PER_EXPRESSION:
                break
            bucket.append(instance)
    return result


# --------------------------------------------------------------------------------------------
# Referring step 0: region descriptions
# --------------------------------------------------------------------------------------------


def _region_box(item: dict[str, Any]) -> list[float] | None:
    value = _first_present(item, _REGION_BOX_KEYS)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]  # [[a, b, c, d]]
    return _as_box(value)


def _is_region(item: dict[str, Any]) -> bool:
    return any(k in item for k in (*_REGION_BOX_KEYS, *_REGION_TEXT_FIELDS))


def parse_regions(text: str, count: int) -> list[dict]:
    """Referring step 0 -> ``[{"bbox_2d": [4 floats] | None, "type", "color", "description"}]``.

    Accepts a JSON array, NDJSON, a wrapper object (``{"objects": [...]}``, also ``regions``,
    ``results``, ``items``, ``annotations``) and a single region object; ``box_2d``, ``bbox`` or
    ``box`` for ``bbox_2d``. Strings are stripped (missing ones are ""); a box that is not 4 finite
    numbers is None; entries with no box and no text are dropped. The list is returned as parsed,
    not matched against the `count` boxes asked about; an empty list is only accepted when `count`
    is 0.
    """
    data = extract_json(text)
    items: Any
    if isinstance(data, dict):
        if _is_region(data):
            items = [data]
        else:
            wrapped = _first_present(data, _REGION_WRAPPERS)
            if wrapped is None:
                lists = [v for v in data.values() if isinstance(v, list)]
                wrapped = lists[0] if len(lists) == 1 else None
            items = wrapped
    else:
        items = data
    if not isinstance(items, list):
        raise ParseError("expected a JSON array of regions")
    regions: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        region: dict[str, Any] = {"bbox_2d": _region_box(item)}
        for field in _REGION_TEXT_FIELDS:
            region[field] = _clean_str(item.get(field))
        if region["bbox_2d"] is None and not any(region[f] for f in _REGION_TEXT_FIELDS):
            continue
        regions.append(region)
    if not regions and (count > 0 or items):
        raise ParseError("no region with a box or a description found")
    return regions


# --------------------------------------------------------------------------------------------
# Referring step 1: caption
# --------------------------------------------------------------------------------------------

_FENCE: Final = re.compile(r"```[\w+-]*")
_CAPTION_LABEL: Final = re.compile(r"^[*_#\s]*(?:image\s+)?caption[*_\s]*:[*_\s]*", re.I)
_QUOTE_PAIRS: Final[tuple[tuple[str, str], ...]] = (
    ('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"), ("`", "`"),
)


def _strip_quotes(s: str) -> str:
    for left, right in _QUOTE_PAIRS:
        if len(s) >= 2 and s.startswith(left) and s.endswith(right):
            inner = s[len(left):-len(right)]
            if left not in inner and right not in inner:
                return inner.strip()
    return s


def parse_caption(text: str) -> str:
    """Referring step 1 -> the caption as one line of text.

    Strips ``<think>`` blocks, code fences, a leading ``Caption:`` label and quotes around the whole
    caption, and collapses whitespace. A JSON object with a string ``caption`` gives that string.
    """
    if not text or not text.strip():
        raise ParseError("empty caption")
    body = _strip_thinking(text)
    stripped = body.strip()
    if stripped.startswith(("{", "```")):
        try:
            data = extract_json(stripped)
        except ParseError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("caption"), str):
            body = data["caption"]
    body = _FENCE.sub(" ", body)
    caption = " ".join(body.split())
    previous = None
    while caption != previous:
        previous = caption
        caption = _CAPTION_LABEL.sub("", caption).strip()
        caption = _strip_quotes(caption)
    if not caption:
        raise ParseError("empty caption")
    return caption


# --------------------------------------------------------------------------------------------
# Referring steps 2 and 3: "<phrase>: [[x1, y1, x2, y2], ...]" lines
# --------------------------------------------------------------------------------------------

_BULLET: Final = re.compile(r"^(?:[-*•+]\s+|\d+[.)]\s+)")
_BOXES_AFTER_COLON: Final = re.compile(r":\s*(?=\[)")
_LINE_TAIL: Final = re.compile(r"[\s.,;]*\Z")
_PHRASE_QUOTES: Final = "\"'“”‘’`"


def _boxes_of(value: Any) -> list[list[float]]:
    if not isinstance(value, list):
        return []
    if value and not isinstance(value[0], list):
        value = [value]  # a single box [a, b, c, d]
    return [box for box in (_as_box(v) for v in value) if box is not None]


def _parse_phrase_line(line: str) -> tuple[str, list[list[float]]] | None:
    line = line.strip().replace("**", "").replace("__", "")
    line = _BULLET.sub("", line).strip()
    for colon in _BOXES_AFTER_COLON.finditer(line):
        try:
            value, end = _parse_container(line, colon.end(), 0)
        except (_Truncated, _Invalid):
            continue
        if not _LINE_TAIL.match(line, end):
            continue
        phrase = line[: colon.start()].strip().strip(_PHRASE_QUOTES).strip()
        if not phrase:
            return None
        boxes = _boxes_of(value)
        return (phrase, boxes) if boxes else None
    return None


def parse_phrase_lines(text: str) -> list[tuple[str, list[list[float]]]]:
    """Referring steps 2 and 3 -> ``[(phrase, [[x1, y1, x2, y2], ...]), ...]`` in line order.

    Reads the legacy ``<phrase>: [[x1, y1, x2, y2], ...]`` lines, tolerating bullets, ``**bold**``
    and quotes around the phrase, a single box ``[a, b, c, d]``, fences, blank lines and prose lines
    (skipped). Boxes that are not 4 finite numbers are dropped, then lines left without a box. When
    no line parses, a JSON object ``{"<phrase>": [[...], ...]}`` is accepted instead.
    """
    if not text or not text.strip():
        raise ParseError("empty response")
    body = _strip_thinking(text)
    out: list[tuple[str, list[list[float]]]] = []
    for line in body.splitlines():
        if line.lstrip().startswith("```"):
            continue
        parsed = _parse_phrase_line(line)
        if parsed is not None:
            out.append(parsed)
    if out:
        return out
    try:
        data = extract_json(body)
    except ParseError:
        data = None
    if isinstance(data, dict):
        for phrase, value in data.items():
            boxes = _boxes_of(value)
            if phrase.strip() and boxes:
                out.append((phrase.strip(), boxes))
    if not out:
        raise ParseError("no '<phrase>: [[x1, y1, x2, y2], ...]' line found")
    return out
