"""Pure parsers of the image_grounding steps' raw answers (table-tested over real answer styles).

They return plain builtins; the steps turn them into typed outputs. Anything they cannot make
sense of raises `ParseError` with a one-line reason.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from auto_label.boxes import as_box
from auto_label.pipelines.answers import ParseError, extract_json
from auto_label.pipelines.coerce import (
    as_score,
    as_span,
    first_present,
    label_of,
    norm_key,
    norm_phrase,
)

MAX_BOXES_PER_EXPRESSION: Final[int] = 10

_BOX_KEYS: Final[tuple[str, ...]] = ("bboxes", "boxes", "bbox_2d", "box_2d", "bbox", "box")
_SCORE_KEYS: Final[tuple[str, ...]] = ("scores", "score", "confidences", "confidence")


def _box_list(value: Any) -> list[float] | None:
    box = as_box(value)
    return list(box) if box is not None else None


def _find(haystack: str, needle: str, start: int) -> tuple[int, int] | None:
    """First occurrence of `needle` at/after `start`: exact, else case-insensitive."""
    i = haystack.find(needle, start)
    if i >= 0:
        return i, i + len(needle)
    match = re.compile(re.escape(needle), re.IGNORECASE).search(haystack, start)
    if match:
        return match.start(), match.end()
    return None


def parse_extraction(text: str, caption: str) -> dict[str, Any]:
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
    cleaned_caption = unicodedata.normalize("NFC", cleaned_caption)  # as the caption itself

    raw: list[tuple[str, tuple[int, int] | None, str | None]] = []
    usable_shape = 0
    for item in items:
        if isinstance(item, str):
            usable_shape += 1
            raw.append((item.strip(), None, None))
        elif isinstance(item, dict) and label_of(item) is not None:
            usable_shape += 1
            noun = item.get("noun_chunk")
            noun_chunk = (noun.strip() or None) if isinstance(noun, str) else None
            raw.append((label_of(item) or "", as_span(item.get("char_span")), noun_chunk))
    if items and not usable_shape:
        raise ParseError("expected expressions as strings or objects with 'text'")

    expressions: list[dict[str, Any]] = []
    seen: set[str] = set()
    prev_start = 0
    for expr_text, span, noun_chunk in raw:
        expr_text = unicodedata.normalize("NFC", expr_text.strip())
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
        box = _box_list(item)
        if box is not None:
            out.append((box, as_score(score_list[i]) if i < len(score_list) else 1.0))
    return out


def _instances(value: Any) -> list[Instance]:
    """(box, score) pairs of one expression's entry, in whichever shape it came."""
    if isinstance(value, dict):
        boxes = first_present(value, _BOX_KEYS)
        if boxes is None:
            return []
        return _pair_boxes(boxes, first_present(value, _SCORE_KEYS))
    if isinstance(value, list):
        return _pair_boxes(value, None)
    return []


class _ExpressionKeys:
    """Matches a model's label to a given expression: exactly, then case/whitespace-insensitively,
    then also ignoring punctuation and a leading article (Gemini labels "red box" for "A red
    box"). With one expression asked, every label is it."""

    def __init__(self, expressions: Sequence[str]) -> None:
        self.exact = set(expressions)
        self.loose: dict[str, str] = {}
        self.bare: dict[str, str] = {}
        for e in expressions:
            self.loose.setdefault(norm_key(e), e)
            self.bare.setdefault(norm_phrase(e), e)
        self.only = expressions[0] if len(set(expressions)) == 1 else None

    def resolve(self, key: Any) -> str | None:
        """The expression `key` names, if any (`only` is the caller's fallback)."""
        if not isinstance(key, str):
            return None
        if key in self.exact:
            return key
        return self.loose.get(norm_key(key)) or self.bare.get(norm_phrase(key))


def _labelled_items(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [x for x in value if isinstance(x, dict) and label_of(x) is not None]


def _grounding_entries(data: Any, keys: _ExpressionKeys,
                       expressions: Sequence[str]) -> list[tuple[Any, Any]]:
    """(key, entry) pairs from any accepted answer shape."""
    if isinstance(data, list):
        if not data:
            return []  # an explicit empty answer: nothing there
        if not any(isinstance(x, dict) for x in data):
            if keys.only is not None and _instances(data):
                return [(keys.only, data)]  # the only expression's boxes, bare
            raise ParseError("expected a JSON object keyed by expression")
        entries: list[tuple[Any, Any]] = []
        for item in data:
            if not isinstance(item, dict):
                continue
            label = label_of(item)
            if label is not None:
                entries.append((label, item))
            else:
                entries.extend(item.items())
        return entries
    if not isinstance(data, dict):
        raise ParseError("expected a JSON object keyed by expression")
    if any(keys.resolve(k) is not None for k in data):
        return list(data.items())
    if label_of(data) is not None:  # one labelled instance on its own
        return [(label_of(data), data)]
    for wrapped in data.values():  # {"results": [{"label": ..., "bbox_2d": ...}, ...]}
        items = _labelled_items(wrapped)
        if items:
            return [(label_of(x), x) for x in items]
    unique = set(expressions)
    if len(unique) == 1 and first_present(data, _BOX_KEYS) is not None:
        return [(next(iter(unique)), data)]  # the only expression's entry, without its key
    return list(data.items())  # keyed by labels no expression matches: counted, not attributed


@dataclass(frozen=True)
class GroundingAnswer:
    boxes: dict[str, list[Instance]]
    """every asked expression -> its (box as written, score) pairs, at most 10"""
    unattributed: int
    """boxes under labels that name no asked expression"""
    labels: list[str]
    """those labels, for messages"""


def read_grounding(text: str, expressions: Sequence[str]) -> GroundingAnswer:
    """Grounding step 1's answer: each asked expression's boxes, and the boxes under labels that
    name none (see `parse_grounding` for the shapes read). Raises ParseError."""
    data = extract_json(text)
    keys = _ExpressionKeys(expressions)
    result: dict[str, list[Instance]] = {e: [] for e in expressions}
    unattributed = 0
    labels: list[str] = []
    for key, entry in _grounding_entries(data, keys, expressions):
        expr = keys.resolve(key) or keys.only
        if expr is None:
            found = len(_instances(entry))
            unattributed += found
            if found and isinstance(key, str):
                labels.append(key)
            continue
        bucket = result[expr]
        for instance in _instances(entry):
            if len(bucket) >= MAX_BOXES_PER_EXPRESSION:
                break
            bucket.append(instance)
    return GroundingAnswer(result, unattributed, labels)


def parse_grounding(
    text: str, expressions: Sequence[str]
) -> dict[str, list[tuple[list[float], float]]]:
    """Grounding step 1 -> ``{expression: [(box, score), ...]}`` for every given expression.

    Accepts ``{"<expr>": {"bboxes": [[a, b, c, d], ...], "scores": [...]}}`` with ``boxes``,
    ``bbox``, ``bbox_2d`` or ``box_2d`` for ``bboxes``, a single box for a list of boxes, a bare
    list of boxes as the entry, and lists of ``{"text"|"expression"|"label": ..., "bbox_2d": [...],
    "score": ...}``; labels match the expressions exactly, then ignoring case, whitespace,
    punctuation and a leading article, and with one expression asked every box is its. Scores
    default to 1.0, may be strings, and are clamped to [0, 1]. Boxes that are not 4 finite
    numbers are skipped; at most 10 per expression, in the model's order. Box values are as the
    model wrote them, as floats (no coordinate conversion, no reordering). An explicit empty
    answer (``[]``, ``{}``) gives every expression no boxes.
    """
    return read_grounding(text, expressions).boxes
