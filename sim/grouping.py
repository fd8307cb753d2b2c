"""The referring.group answer of the VLM SIMULATOR: group given objects into phrases.

For tests and demos only. Groups: one per colour+shape with 2+ members ("the blue squares"), one per
colour with 2+ members ("the red shapes") and one per shape with 2+ members ("the circles") when
that set of objects is new, and a line per object that is the only one of its kind, named by its
description.
Boxes are written exactly as given. Seeded noise, for the verify step to clean: with rate
`group_noise` a line gets one box of an object its phrase does not fit, and with rate `extra_box`
a box of empty background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .boxes import Context, format_line
from .faults import unit
from .language import COLORS, SHAPES, describe, group_phrase, parse_query


@dataclass(frozen=True)
class _Object:
    box: list[Any]  # as given, in the convention
    color: str | None
    shape: str | None
    description: str


def _read(obj: dict[str, Any], ctx: Context) -> _Object | None:
    given = obj.get("bbox_2d", obj.get("bbox", obj.get("box")))
    try:
        pixel = ctx.decode(given)
    except ValueError:
        return None
    comp, score = ctx.best(pixel)
    seen = comp if comp is not None and score >= 0.1 else None
    color = str(obj.get("color", "")).lower()
    shape = str(obj.get("type", "")).lower()
    if color not in COLORS:
        color = seen.color if seen else ""
    if shape not in SHAPES:
        shape = seen.shape if seen else ""
    description = str(obj.get("description", "")).strip()
    if not description and color and shape:
        description = describe(color, shape, pixel, ctx.width, ctx.height)
    return _Object(list(given), color or None, shape or None, description)  # type: ignore[arg-type]


def _background_box(ctx: Context, salt: str) -> list[int] | None:
    """A box of empty background (IoU 0 with every shape, a margin around), or None."""
    w, h = ctx.width, ctx.height
    bw, bh = max(4, w // 8), max(4, h // 8)
    margin = max(2, min(w, h) // 50)
    spots = [(x, y) for y in range(0, h - bh + 1, max(1, bh // 2))
             for x in range(0, w - bw + 1, max(1, bw // 2))]
    if not spots:
        return None
    first = int(unit("extra_box_spot", ctx.seed, ctx.analysis.sha256, salt) * len(spots))
    for i in range(len(spots)):
        x, y = spots[(first + i) % len(spots)]
        box = (x, y, x + bw, y + bh)
        if all(box[2] + margin <= c.bbox[0] or c.bbox[2] + margin <= box[0]
               or box[3] + margin <= c.bbox[1] or c.bbox[3] + margin <= box[1]
               for c in ctx.analysis.components):
            return ctx.encode(box)
    return None


def _groups(objects: Sequence[_Object]) -> list[tuple[str, list[_Object]]]:
    groups: list[tuple[str, list[_Object]]] = []
    seen_sets: list[set[int]] = []

    def add(phrase: str, members: list[_Object]) -> None:
        ids = {id(m) for m in members}
        if len(members) >= 2 and ids not in seen_sets:
            seen_sets.append(ids)
            groups.append((phrase, members))

    for color in COLORS:  # the most specific phrase first: a set met again is skipped
        for shape in SHAPES:
            add(group_phrase(color, shape),
                [o for o in objects if o.color == color and o.shape == shape])
    for color in COLORS:
        add(group_phrase(color, None), [o for o in objects if o.color == color])
    for shape in SHAPES:
        add(group_phrase(None, shape), [o for o in objects if o.shape == shape])
    for obj in objects:
        same = [o for o in objects if (o.color, o.shape) == (obj.color, obj.shape)]
        known = bool(obj.color and obj.shape)
        if obj.description and (len(same) == 1 or not known):
            groups.append((obj.description, [obj]))
    return groups


def group_lines(raw_objects: Sequence[dict[str, Any]], ctx: Context) -> list[str]:
    """The answer lines `<phrase>: [[...], ...]` for the objects given in the prompt."""
    objects = [o for o in (_read(r, ctx) for r in raw_objects) if o is not None]
    sha = ctx.analysis.sha256
    lines: list[str] = []
    for phrase, members in _groups(objects):
        boxes = [m.box for m in members]
        if ctx.group_noise and unit("group_noise", ctx.seed, sha, phrase) < ctx.group_noise:
            query = parse_query(phrase)
            wrong = [o for o in objects if o.color and o.shape
                     and not query.matches(o.color, o.shape)]
            if wrong:
                pick = wrong[int(unit("group_noise_pick", ctx.seed, sha, phrase) * len(wrong))]
                boxes.append(pick.box)
        if ctx.extra_box and unit("extra_box", ctx.seed, sha, phrase) < ctx.extra_box:
            extra = _background_box(ctx, phrase)
            if extra is not None:
                boxes.append(extra)
        lines.append(format_line(phrase, boxes))
    return lines
