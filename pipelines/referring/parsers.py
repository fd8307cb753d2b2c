"""Pure parsers of the image_referring_expression steps' raw answers (table-tested over real
answer styles): regions (step 0), a caption (step 1) and `<phrase>: [[x1, y1, x2, y2], ...]` lines
(steps 2 and 3).

They return plain builtins; the steps snap boxes to the seeded ones and build typed outputs.
Anything they cannot make sense of raises `ParseError` with a one-line reason.
"""

from __future__ import annotations

import re
from typing import Any, Final

from auto_label.boxes import as_box
from auto_label.pipelines.answers import ParseError, extract_json, json_value_at, strip_thinking
from auto_label.pipelines.coerce import clean_str, first_present

_REGION_BOX_KEYS: Final[tuple[str, ...]] = ("bbox_2d", "box_2d", "bbox", "box")
_REGION_TEXT_FIELDS: Final[tuple[str, ...]] = ("type", "color", "description")
_REGION_WRAPPERS: Final[tuple[str, ...]] = ("objects", "regions", "results", "items", "annotations")


def _box_list(value: Any) -> list[float] | None:
    box = as_box(value)
    return list(box) if box is not None else None


def _region_box(item: dict[str, Any]) -> list[float] | None:
    value = first_present(item, _REGION_BOX_KEYS)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]  # [[a, b, c, d]]
    return _box_list(value)


def _is_region(item: dict[str, Any]) -> bool:
    return any(k in item for k in (*_REGION_BOX_KEYS, *_REGION_TEXT_FIELDS))


def parse_regions(text: str, count: int) -> list[dict[str, Any]]:
    """Referring step 0 -> ``[{"bbox_2d": [4 floats] | None, "type", "color", "description"}]``.

    Accepts a JSON array, NDJSON, a wrapper object (``{"objects": [...]}``, also ``regions``,
    ``results``, ``items``, ``annotations``) and a single region object; ``box_2d``, ``bbox`` or
    ``box`` for ``bbox_2d``. Strings are stripped (missing ones are ""); a box that is not 4 finite
    numbers is None; entries with no box and no text are dropped. The list is returned as parsed,
    not matched against the `count` boxes asked about; an explicit empty answer (``[]``) is an
    empty list, an answer whose entries are all unusable a ParseError.
    """
    data = extract_json(text)
    items: Any
    if isinstance(data, dict):
        if _is_region(data):
            items = [data]
        else:
            wrapped = first_present(data, _REGION_WRAPPERS)
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
            region[field] = clean_str(item.get(field))
        if region["bbox_2d"] is None and not any(region[f] for f in _REGION_TEXT_FIELDS):
            continue
        regions.append(region)
    if not regions and items:
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
    body = strip_thinking(text)
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
    return [box for box in (_box_list(v) for v in value) if box is not None]


def _parse_phrase_line(line: str) -> tuple[str, list[list[float]]] | None:
    line = line.strip().replace("**", "").replace("__", "")
    line = _BULLET.sub("", line).strip()
    for colon in _BOXES_AFTER_COLON.finditer(line):
        found = json_value_at(line, colon.end())
        if found is None:
            continue
        value, end = found
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
    no line parses, a JSON object ``{"<phrase>": [[...], ...]}`` is accepted instead, and an
    explicit empty answer (``[]``, ``{}``) is no line at all.
    """
    if not text or not text.strip():
        raise ParseError("empty response")
    body = strip_thinking(text)
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
    if data in ([], {}):
        return []  # an explicit empty answer: no group, nothing there
    if isinstance(data, dict):
        for phrase, value in data.items():
            boxes = _boxes_of(value)
            if phrase.strip() and boxes:
                out.append((phrase.strip(), boxes))
    if not out:
        raise ParseError("no '<phrase>: [[x1, y1, x2, y2], ...]' line found")
    return out
