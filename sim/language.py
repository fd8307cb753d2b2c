"""The closed world of the VLM SIMULATOR and its language: colours, shapes, captions, phrases.

For tests and demos only. The scene generator draws with these colours and shapes, and the
simulated model recognises them from pixels and names them again; it understands this closed
vocabulary (palette colours, shape nouns, count words) and nothing else. It is written
independently of the project's prompt and parsing code on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .vision import Component

RGB = tuple[int, int, int]

BACKGROUND: RGB = (245, 245, 240)

# Well separated in RGB, and no colour lies near the blend of another colour with the background
# (checked for the blends at 0..100 %), so anti-aliased or JPEG edges never read as a third colour.
PALETTE: dict[str, RGB] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 200, 20),
    "orange": (245, 130, 20),
    "purple": (140, 50, 170),
    "black": (20, 20, 20),
    "cyan": (0, 170, 210),
}

COLORS: tuple[str, ...] = tuple(PALETTE)

SHAPES: tuple[str, ...] = ("circle", "square", "rectangle", "triangle")

PLURALS: dict[str, str] = {shape: shape + "s" for shape in SHAPES}

# Every word that names a shape, singular or plural, mapped to the shape.
SHAPE_WORDS: dict[str, str] = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURALS.items()}}

NUMBER_WORDS: dict[int, str] = {
    1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
    9: "nine", 10: "ten",
}


def article(word: str) -> str:
    """The indefinite article for `word` ("an orange", "a red")."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def counted(count: int, color: str, shape: str) -> str:
    """A counted noun phrase: "a red circle", "an orange square", "two blue squares"."""
    if count == 1:
        return f"{article(color)} {color} {shape}"
    return f"{NUMBER_WORDS.get(count, str(count))} {color} {PLURALS[shape]}"


def join_list(items: list[str]) -> str:
    """English list: "a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


Box = Sequence[float]

# Longest first: "in the image we can see" must go before "we can see" and "in the image".
_FILLERS: tuple[str, ...] = (
    r"in (?:the|this) (?:image|picture|photo),? (?:we|you|i) can see",
    r"in (?:the|this) (?:image|picture|photo),? there (?:is|are)",
    r"(?:we|you|i) can see",
    r"there (?:is|are)",
    r"in (?:the|this) (?:image|picture|photo)",
)
_FILLER_RE = re.compile(r"\b(?:" + "|".join(_FILLERS) + r")\b", re.IGNORECASE)

_DETERMINERS = ("a", "an", "one", "two", "three", "four", "five", "six", "the", "some")
_SHAPE_ALT = "|".join(sorted(SHAPE_WORDS, key=len, reverse=True))
_PHRASE_RE = re.compile(
    r"\b(?:(?:" + "|".join(_DETERMINERS) + r")\s+)?"
    r"(?P<color>" + "|".join(COLORS) + r")\s+(?P<shape>" + _SHAPE_ALT + r")\b",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Query:
    """The colours and shapes a phrase names (empty set: no constraint)."""

    colors: frozenset[str]
    shapes: frozenset[str]

    @property
    def names_something(self) -> bool:
        return bool(self.colors or self.shapes)

    def matches(self, color: str, shape: str) -> bool:
        color_ok = not self.colors or color in self.colors
        return color_ok and (not self.shapes or shape in self.shapes)


@dataclass(frozen=True)
class Expression:
    """A referring expression found in a cleaned caption, with its [start, end) char span."""

    text: str
    start: int
    end: int
    noun: str
    color: str
    shape: str


def parse_query(phrase: str) -> Query:
    """Which palette colours and shapes `phrase` names (a word such as "shapes": any shape)."""
    words = _WORD_RE.findall(phrase.lower())
    colors = frozenset(w for w in words if w in COLORS)
    shapes = frozenset(SHAPE_WORDS[w] for w in words if w in SHAPE_WORDS)
    return Query(colors, shapes)


def clean_caption(caption: str) -> str:
    """Drop the filler ("In the image we can see", "There are", ...) and tidy the sentence."""
    text = _FILLER_RE.sub(" ", caption)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(?=[.!?]|$)", "", text)
    text = re.sub(r"^[\s,;:.]+", "", text).strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    if text[-1] not in ".!?":
        text += "."
    return text


def find_expressions(cleaned: str) -> list[Expression]:
    """The colour+shape noun phrases of `cleaned` with their exact spans."""
    found: list[Expression] = []
    for match in _PHRASE_RE.finditer(cleaned):
        noun = match.group("shape")
        found.append(
            Expression(
                text=match.group(0),
                start=match.start(),
                end=match.end(),
                noun=noun,
                color=match.group("color").lower(),
                shape=SHAPE_WORDS[noun.lower()],
            )
        )
    return found


def position_phrase(box: Box, width: int, height: int) -> str:
    """Where a pixel box sits: "in the top left", "in the center", "on the right", ..."""
    cx = (box[0] + box[2]) / 2 / max(1, width)
    cy = (box[1] + box[3]) / 2 / max(1, height)
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "center"
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    if row == "middle" and col == "center":
        return "in the center"
    if row == "middle":
        return f"on the {col}"
    if col == "center":
        return f"at the {row}"
    return f"in the {row} {col}"


def describe(color: str, shape: str, box: Box, width: int, height: int) -> str:
    """A short description leading with colour and type plus one detail (its position)."""
    return f"{color} {shape} {position_phrase(box, width, height)}"


def write_caption(components: Sequence[Component], width: int, height: int) -> str:
    """A plain caption of a whole scene, as the simulated model would write it."""
    if not components:
        return "A plain light background with no distinct objects."
    kinds: dict[tuple[str, str], list[Component]] = {}
    for comp in components:
        kinds.setdefault((comp.color, comp.shape), []).append(comp)
    parts: list[str] = []
    for (color, shape), members in kinds.items():
        phrase = counted(len(members), color, shape)
        if len(members) == 1:
            phrase += " " + position_phrase(members[0].bbox, width, height)
        parts.append(phrase)
    listed = join_list(parts)
    return f"The image shows {listed} on a plain light background."


def group_phrase(color: str | None, shape: str | None) -> str:
    """The phrase of a group: "the red shapes", "the circles", "the blue squares"."""
    if color and shape:
        return f"the {color} {PLURALS[shape]}"
    if color:
        return f"the {color} shapes"
    if shape:
        return f"the {PLURALS[shape]}"
    return "the shapes"


def visible_kinds(components: Iterable[Component]) -> set[tuple[str, str]]:
    return {(c.color, c.shape) for c in components}
