"""Prompt templates of the image_referring_expression pipeline, each with its version.

The shapes asked for are the reference implementation's (JSON regions, a plain caption, and
`<phrase>: [[x1, y1, x2, y2], ...]` lines), so that endpoints and fine-tuned models that work with
it work with us. Boxes are written in the backend's coordinate convention. Editing a template's
text means bumping its version (see `auto_label.pipelines.prompting`). Each template is data
(`Template`: its placeholders are filled by `auto_label.ledger.templates.render`), so the ledger
stores its text once per run and only the values per request.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from auto_label.boxes import Convention
from auto_label.pipelines.contract import PromptVersion
from auto_label.pipelines.prompting import box_template, in_every_convention
from auto_label.pipelines.templating import Prompt, Template, template_key

_REGION = (
    "You are a visual assistant. Describe each object below in one short, discriminative "
    "phrase.\n\n"
    "A bounding box is ${box}.\n"
    "Objects in the image (JSON array of boxes): ${boxes|json}\n\n"
    "For each object write a description that lets someone pick it out from the others:\n"
    "1. Lead with its color (if visible) and its type.\n"
    "2. Add ONE distinguishing detail: position, relation to a neighbour, or state.\n"
    "3. Keep it under 15 words, and describe only what is visible.\n\n"
    "Output ONLY a JSON array with one element per object, in the given order, each with "
    'exactly these fields: {"bbox_2d": <the box as given>, "type": "<object type>", '
    '"color": "<primary color or unknown>", "description": "<short phrase>"}'
)

_CAPTION = (
    "You are a visual assistant that describes images clearly and without ambiguity. "
    "Write a caption of this whole image in one to three plain sentences: name the objects, "
    "their colors and where they are. Describe only what is visible and say nothing about "
    "where the image might have been taken. Reply with the caption only."
)

_GROUP = (
    "You are analyzing a single image. These are objects in it with their type, color, "
    "description and bounding box, where a box is ${box}."
    "\n\n"
    "Objects (one JSON object per line):\n${regions|jsonl}\n\n"
    "Caption: ${caption|json}\n\n"
    "Classify the objects into groups that share characteristics (type, color, position), "
    "each group named by a referring phrase that is true of every object in it and justified "
    "by what is visible. A single object may form its own group.\n\n"
    "Output format rules (follow exactly):\n"
    "- Output ONLY the group lines, no reasoning, headers, bullets or markdown.\n"
    "- Each line is: <descriptive phrase>: [[a, b, c, d], [a, b, c, d], ...]\n"
    "- Use the boxes of the objects exactly as given above.\n"
)

_VERIFY = (
    "You are verifying grounding expressions against an image. A box is "
    "${box}.\n"
    "Each line below is a phrase with its bounding boxes:\n"
    "${lines}\n\n"
    "For each box, look at the image: does it hold an object of the type and color the phrase "
    "says, where the phrase says, and does it frame that object tightly?\n"
    "- KEEP a box unchanged if it passes.\n"
    "- REMOVE a box if the object in it does not match the phrase.\n"
    "- UPDATE a box's coordinates only if it is on the right object but poorly aligned.\n"
    "- Do NOT add boxes and do NOT rewrite phrases.\n\n"
    "Output ONLY the corrected lines in the same format, <phrase>: [[a, b, c, d], ...], and "
    "omit a line whose boxes were all removed."
)


def describe_regions(boxes: Sequence[Sequence[int]], convention: Convention, width: int,
                     height: int) -> Prompt:
    """Referring step 0: one short discriminative description per given box."""
    return _template(REGION, _REGION, convention).fill(
        boxes=[list(b) for b in boxes], width=width, height=height)


def caption_image() -> Prompt:
    """Referring step 1: a caption of the whole image, plain text."""
    return _template(CAPTION, _CAPTION, None).fill()


def group_expressions(regions: Sequence[dict[str, Any]], caption: str, convention: Convention,
                      width: int, height: int) -> Prompt:
    """Referring step 2: group the regions into referring expressions, one line per group."""
    return _template(GROUP, _GROUP, convention).fill(
        regions=list(regions), caption=caption, width=width, height=height)


def verify_expressions(lines: Sequence[tuple[str, Sequence[Sequence[int]]]],
                       convention: Convention, width: int, height: int) -> Prompt:
    """Referring step 3: keep, remove or update each box of each expression."""
    rendered = "\n".join(f"{text}: {json.dumps([list(b) for b in boxes])}" for text, boxes in lines)
    return _template(VERIFY, _VERIFY, convention).fill(lines=rendered, width=width,
                                                       height=height)


_BOXES = [[10, 20, 110, 220], [300, 40, 420, 160]]
REGION = PromptVersion(
    "referring.region", 1,
    lambda: in_every_convention(lambda c: describe_regions(_BOXES, c, 640, 480)))
CAPTION = PromptVersion("referring.caption", 1, caption_image)
GROUP = PromptVersion(
    "referring.group", 1,
    lambda: in_every_convention(lambda c: group_expressions(
        [{"bbox_2d": b, "type": "car", "color": "red", "description": "a red car"}
         for b in _BOXES], "Two red cars on a road.", c, 640, 480)))
VERIFY = PromptVersion(
    "referring.verify", 1,
    lambda: in_every_convention(lambda c: verify_expressions([("red cars", _BOXES)], c, 640,
                                                             480)))


@functools.cache
def _template(version: PromptVersion, text: str, convention: Convention | None) -> Template:
    """The template of `version` (its box convention, when it names boxes, in the text)."""
    if convention is None:
        return Template(template_key(version.task, version.version), text)
    return Template(template_key(version.task, version.version, convention),
                    text.replace("${box}", box_template(convention)))
