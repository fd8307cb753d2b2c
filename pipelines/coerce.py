"""Coercing the values of a parsed answer: scores, spans, labels, strings, keys.

Models write confidences as numbers, numeric strings or percentages, spans as floats, labels under
several keys. These helpers turn each into the one type our outputs hold, or a default. A box is
checked by `auto_label.boxes.as_box`, the one test of "is this a box" of every layer. No I/O.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Any, Final

LABEL_KEYS: Final[tuple[str, ...]] = ("text", "expression", "label", "phrase")


def is_number(v: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def as_score(value: Any, default: float = 1.0) -> float:
    """A confidence in [0, 1]; numbers, numeric strings and percentages; else `default`."""
    score: float | None = None
    if is_number(value):
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


def first_present(d: dict[str, Any], keys: Iterable[str]) -> Any:
    """The value of the first of `keys` that `d` has, else None."""
    for k in keys:
        if k in d:
            return d[k]
    return None


def label_of(item: dict[str, Any]) -> str | None:
    """The label an answer item carries under any of LABEL_KEYS."""
    for k in LABEL_KEYS:
        v = item.get(k)
        if isinstance(v, str):
            return v
    return None


def norm_key(s: str) -> str:
    """Whitespace collapsed and case folded, for loose matching of keys and phrases."""
    return " ".join(s.split()).casefold()


_ARTICLES: Final = frozenset({"a", "an", "the"})


def norm_phrase(s: str) -> str:
    """A phrase as a label may spell it: NFC, case folded, punctuation and quotes dropped,
    whitespace collapsed, a leading article ("a", "an", "the") dropped."""
    words = re.sub(r"[^\w\s]", " ", unicodedata.normalize("NFC", s).casefold()).split()
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


def clean_str(value: Any) -> str:
    """A stripped string of a scalar; "" for None and containers."""
    if isinstance(value, str):
        return value.strip()
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value).strip()


def as_span(value: Any) -> tuple[int, int] | None:
    """A character span [start, end) of two ints (integral floats allowed), else None."""
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

