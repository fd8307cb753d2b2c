"""The tasks the VLM SIMULATOR answers, recognised from the prompt and answered from pixels.

For tests and demos only. The task is told by robust keywords of the project's prompts (the
contract is the wording of pipelines/grounding/prompts.py and pipelines/referring/prompts.py,
read but never imported); the answer depends only on the pixels
received, the prompt, and the configured box convention and noise rates. Like a real model it
ignores what the prompt says about box coordinates: boxes are in its own trained convention.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .boxes import Context, format_line, parse_box_line
from .faults import unit
from .grouping import group_lines
from .language import (
    clean_caption,
    describe,
    find_expressions,
    parse_query,
    visible_kinds,
    write_caption,
)

TASKS: tuple[str, ...] = (
    "grounding.extract", "grounding.ground", "referring.region", "referring.caption",
    "referring.group", "referring.verify",
)
UNKNOWN = "unknown"

_VERIFY_HEADER = "each line below is a phrase with its bounding boxes:"
_GROUP_HEADER = "objects (one json object per line):"
_REGION_MARK = "objects in the image (json array of boxes):"
_GROUND_MARK = "referring expressions (json array):"
_CAPTION_MARK = "caption of this whole image"


def detect_task(prompt: str) -> str:
    """Which of TASKS the prompt asks for, or UNKNOWN."""
    low = prompt.lower()
    if _VERIFY_HEADER in low:
        return "referring.verify"
    if _GROUP_HEADER in low:
        return "referring.group"
    if _REGION_MARK in low:
        return "referring.region"
    if _GROUND_MARK in low:
        return "grounding.ground"
    if "cleaned_caption" in low and re.search(r"^caption:", prompt, re.I | re.M):
        return "grounding.extract"
    if _CAPTION_MARK in low:
        return "referring.caption"
    return UNKNOWN


def _after(prompt: str, marker: str) -> str:
    """The text after `marker` (case-insensitive; offsets of the original prompt)."""
    found = re.search(re.escape(marker), prompt, re.IGNORECASE)
    if found is None:
        raise ValueError(f"no {marker!r} in the prompt")
    return prompt[found.end():]


def _json_after(prompt: str, marker: str) -> object:
    """The JSON value that follows `marker` in the prompt."""
    rest = _after(prompt, marker)
    value, _ = json.JSONDecoder().raw_decode(rest, len(rest) - len(rest.lstrip()))
    return value


def _block_after(prompt: str, header: str) -> list[str]:
    """The non-empty lines after `header` up to the first blank line."""
    lines = _after(prompt, header).split("\n")
    block: list[str] = []
    for line in lines[1:] if lines and not lines[0].strip() else lines:
        if not line.strip():
            break
        block.append(line.strip())
    return block


def _caption_line(prompt: str) -> str:
    match = re.search(r"^caption:[ \t]*(.*)$", prompt, re.I | re.M)
    if match is None:
        raise ValueError("no Caption: line in the prompt")
    raw = match.group(1).strip()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, str) else raw


def extract(prompt: str, ctx: Context) -> str:
    cleaned = clean_caption(_caption_line(prompt))
    visible = visible_kinds(ctx.analysis.components)
    expressions = [
        {"text": e.text, "char_span": [e.start, e.end], "noun_chunk": e.noun}
        for e in find_expressions(cleaned)
        if (e.color, e.shape) in visible
    ]
    return json.dumps({"cleaned_caption": cleaned, "expressions": expressions},
                      ensure_ascii=False)


def ground(prompt: str, ctx: Context) -> str:
    expressions = _json_after(prompt, _GROUND_MARK)
    if not isinstance(expressions, list):
        raise ValueError("the referring expressions are not a JSON array")
    answer: dict[str, dict[str, list[Any]]] = {}
    for expr in expressions:
        text = str(expr)
        query = parse_query(text)
        hits = [c for c in ctx.analysis.components
                if query.names_something and query.matches(c.color, c.shape)][:10]
        scores = sorted((round(0.8 + 0.19 * unit("score", ctx.analysis.sha256, text, i), 3)
                         for i in range(len(hits))), reverse=True)
        answer[text] = {"bboxes": [ctx.encode(c.bbox) for c in hits], "scores": scores}
    return json.dumps(answer, ensure_ascii=False)


def region(prompt: str, ctx: Context) -> str:
    boxes = _json_after(prompt, _REGION_MARK)
    if not isinstance(boxes, list):
        raise ValueError("the boxes are not a JSON array")
    width, height = ctx.analysis.width, ctx.analysis.height
    out: list[dict[str, object]] = []
    for given in boxes:
        try:
            pixel = ctx.decode(given)
        except ValueError:
            continue
        comp, score = ctx.best(pixel)
        if comp is None or score < 0.1:
            item = {"type": "background", "color": "unknown",
                    "description": "empty light background area"}
        else:
            item = {"type": comp.shape, "color": comp.color,
                    "description": describe(comp.color, comp.shape, comp.bbox, width, height)}
        out.append({"bbox_2d": given, **item})
    return json.dumps(out, ensure_ascii=False)


def caption(prompt: str, ctx: Context) -> str:
    a = ctx.analysis
    return write_caption(a.components, a.width, a.height)


def unknown(prompt: str, ctx: Context) -> str:
    return ("The image shows a few simple geometric shapes in different colours on a plain "
            "light background.")


def verify(prompt: str, ctx: Context) -> str:
    out: list[str] = []
    for line in _block_after(prompt, _VERIFY_HEADER):
        parsed = parse_box_line(line)
        if parsed is None:
            continue
        phrase, boxes = parsed
        query = parse_query(phrase)
        kept: list[list[Any]] = []
        for given in boxes:
            try:
                pixel = ctx.decode(given)
            except ValueError:
                continue
            comp, score = ctx.best(pixel)
            if comp is None or not query.matches(comp.color, comp.shape):
                continue
            if score >= 0.9:
                kept.append(given)
            elif score >= 0.3:
                kept.append(ctx.encode(comp.bbox))
        if kept:
            out.append(format_line(phrase, kept))
    return "\n".join(out)


def group(prompt: str, ctx: Context) -> str:
    objects: list[dict[str, Any]] = []
    for line in _block_after(prompt, _GROUP_HEADER):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            objects.append(value)
    return "\n".join(group_lines(objects, ctx))


_HANDLERS: dict[str, Callable[[str, Context], str]] = {
    "grounding.extract": extract,
    "grounding.ground": ground,
    "referring.region": region,
    "referring.caption": caption,
    "referring.group": group,
    "referring.verify": verify,
    UNKNOWN: unknown,
}


def answer(task: str, prompt: str, ctx: Context) -> str:
    """The simulated model's reply text for `task`; a vague text if the prompt is unreadable."""
    try:
        return _HANDLERS.get(task, unknown)(prompt, ctx)
    except (ValueError, KeyError, TypeError, IndexError):
        return unknown(prompt, ctx)

