"""Prompt templates of the image_grounding pipeline, each with its version.

The JSON shapes asked for are the reference implementation's, so that endpoints and fine-tuned
models that work with it work with us. Boxes are asked for in the backend's coordinate convention.
Editing a template's text means bumping its version (see `auto_label.pipelines.prompting`). Each
template is data (`Template`: its placeholders are filled by `auto_label.ledger.templates.render`),
so the ledger stores its text once per run and only the values per request.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from auto_label.boxes import Convention
from auto_label.pipelines.contract import PromptVersion
from auto_label.pipelines.prompting import box_template, in_every_convention
from auto_label.pipelines.templating import Prompt, Template, template_key

_EXTRACT = (
    "You are analyzing an image and its caption to extract referring expressions.\n\n"
    "Caption: ${caption|json}\n\n"
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

_GROUND = (
    "You are a visual grounding model. Locate the visible instances of each referring "
    "expression below in the image.\n\n"
    "Referring expressions (JSON array): ${expressions|json}"
    "\n\n"
    "Rules:\n"
    "- A bounding box is ${box}.\n"
    "- Return at most 10 boxes per expression, the most confident first.\n"
    "- Give a confidence score between 0.0 and 1.0 for each box.\n"
    "- If an expression matches nothing visible, give it empty lists.\n\n"
    "Respond ONLY with a JSON object, no markdown and no explanation, with one key per "
    "expression, spelled exactly as given:\n"
    '{"<expression>": {"bboxes": [[a, b, c, d], ...], "scores": [0.9, ...]}}'
)


def extract_expressions(caption: str) -> Prompt:
    """Grounding step 0: clean the caption and extract referring expressions with char spans."""
    return _extract_template().fill(caption=caption)


def ground_expressions(expressions: Sequence[str], convention: Convention, width: int,
                       height: int) -> Prompt:
    """Grounding step 1: up to 10 boxes with a confidence for each expression."""
    return ground_template(convention).fill(expressions=list(expressions), width=width,
                                            height=height)


EXTRACT = PromptVersion(
    "grounding.extract", 1,
    lambda: extract_expressions("In the image we can see a red car near a tall tree."))
GROUND = PromptVersion(
    "grounding.ground", 1,
    lambda: in_every_convention(
        lambda c: ground_expressions(["a red car", "a tall tree"], c, 640, 480)))


@functools.cache
def _extract_template() -> Template:
    return Template(template_key(EXTRACT.task, EXTRACT.version), _EXTRACT)


@functools.cache
def ground_template(convention: Convention) -> Template:
    """Step 1's template for `convention` (the size it names is filled per request)."""
    return Template(template_key(GROUND.task, GROUND.version, convention),
                    _GROUND.replace("${box}", box_template(convention)))
