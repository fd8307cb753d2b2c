"""The prompt functions of both pipelines as they were before templates (commit e2b8715),
verbatim: the prompts the templates render must stay byte-identical to these
(tests/test_compact_ledger.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from auto_label.boxes import Convention
from auto_label.pipelines.prompting import box_format


def extract_expressions(caption: str) -> str:
    """Grounding step 0: clean the caption and extract referring expressions with char spans."""
    return (
        "You are analyzing an image and its caption to extract referring expressions.\n\n"
        f"Caption: {json.dumps(caption, ensure_ascii=False)}\n\n"
        "Tasks:\n"
        '1. Clean the caption: remove filler such as "we can see", "there is", "there are", '
        '"you can see", "I can see", "in the image", "in this picture", "in this photo". '
        "Keep the rest as natural written English.\n"
        "2. Extract the referring expressions of the cleaned caption: noun phrases that name "
        "specific visible objects or groups, with their modifiers (for example \"the red car "
        'near the tree", not just "car").\n'
        "3. For each expression give its exact character span [start, end) in the cleaned "
        "caption and its core noun.\n\n"
        "Only include expressions for things visible in the image. Each expression is a noun "
        "phrase, not a sentence.\n\n"
        "Respond ONLY with a JSON object, no markdown and no explanation:\n"
        '{"cleaned_caption": "...", "expressions": '
        '[{"text": "...", "char_span": [start, end], "noun_chunk": "..."}]}'
    )


def ground_expressions(expressions: Sequence[str], convention: Convention, width: int,
                       height: int) -> str:
    """Grounding step 1: up to 10 boxes with a confidence for each expression."""
    return (
        "You are a visual grounding model. Locate the visible instances of each referring "
        "expression below in the image.\n\n"
        f"Referring expressions (JSON array): {json.dumps(list(expressions), ensure_ascii=False)}"
        "\n\n"
        "Rules:\n"
        f"- A bounding box is {box_format(convention, width, height)}.\n"
        "- Return at most 10 boxes per expression, the most confident first.\n"
        "- Give a confidence score between 0.0 and 1.0 for each box.\n"
        "- If an expression matches nothing visible, give it empty lists.\n\n"
        "Respond ONLY with a JSON object, no markdown and no explanation, with one key per "
        "expression, spelled exactly as given:\n"
        '{"<expression>": {"bboxes": [[a, b, c, d], ...], "scores": [0.9, ...]}}'
    )



def describe_regions(boxes: Sequence[Sequence[int]], convention: Convention, width: int,
                     height: int) -> str:
    """Referring step 0: one short discriminative description per given box."""
    return (
        "You are a visual assistant. Describe each object below in one short, discriminative "
        "phrase.\n\n"
        f"A bounding box is {box_format(convention, width, height)}.\n"
        f"Objects in the image (JSON array of boxes): {json.dumps([list(b) for b in boxes])}\n\n"
        "For each object write a description that lets someone pick it out from the others:\n"
        "1. Lead with its color (if visible) and its type.\n"
        "2. Add ONE distinguishing detail: position, relation to a neighbour, or state.\n"
        "3. Keep it under 15 words, and describe only what is visible.\n\n"
        "Output ONLY a JSON array with one element per object, in the given order, each with "
        'exactly these fields: {"bbox_2d": <the box as given>, "type": "<object type>", '
        '"color": "<primary color or unknown>", "description": "<short phrase>"}'
    )


def caption_image() -> str:
    """Referring step 1: a caption of the whole image, plain text."""
    return (
        "You are a visual assistant that describes images clearly and without ambiguity. "
        "Write a caption of this whole image in one to three plain sentences: name the objects, "
        "their colors and where they are. Describe only what is visible and say nothing about "
        "where the image might have been taken. Reply with the caption only."
    )


def group_expressions(regions: Sequence[dict[str, Any]], caption: str, convention: Convention,
                      width: int, height: int) -> str:
    """Referring step 2: group the regions into referring expressions, one line per group."""
    region_lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in regions)
    return (
        "You are analyzing a single image. These are objects in it with their type, color, "
        f"description and bounding box, where a box is {box_format(convention, width, height)}."
        "\n\n"
        f"Objects (one JSON object per line):\n{region_lines}\n\n"
        f"Caption: {json.dumps(caption, ensure_ascii=False)}\n\n"
        "Classify the objects into groups that share characteristics (type, color, position), "
        "each group named by a referring phrase that is true of every object in it and justified "
        "by what is visible. A single object may form its own group.\n\n"
        "Output format rules (follow exactly):\n"
        "- Output ONLY the group lines, no reasoning, headers, bullets or markdown.\n"
        "- Each line is: <descriptive phrase>: [[a, b, c, d], [a, b, c, d], ...]\n"
        "- Use the boxes of the objects exactly as given above.\n"
    )


def verify_expressions(lines: Sequence[tuple[str, Sequence[Sequence[int]]]],
                       convention: Convention, width: int, height: int) -> str:
    """Referring step 3: keep, remove or update each box of each expression."""
    rendered = "\n".join(f"{text}: {json.dumps([list(b) for b in boxes])}" for text, boxes in lines)
    return (
        "You are verifying grounding expressions against an image. A box is "
        f"{box_format(convention, width, height)}.\n"
        "Each line below is a phrase with its bounding boxes:\n"
        f"{rendered}\n\n"
        "For each box, look at the image: does it hold an object of the type and color the phrase "
        "says, where the phrase says, and does it frame that object tightly?\n"
        "- KEEP a box unchanged if it passes.\n"
        "- REMOVE a box if the object in it does not match the phrase.\n"
        "- UPDATE a box's coordinates only if it is on the right object but poorly aligned.\n"
        "- Do NOT add boxes and do NOT rewrite phrases.\n\n"
        "Output ONLY the corrected lines in the same format, <phrase>: [[a, b, c, d], ...], and "
        "omit a line whose boxes were all removed."
    )


