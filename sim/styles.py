"""Answer styles of the VLM SIMULATOR: the shapes real servers and models give their answers.

For tests and demos only. `SimConfig.answer_style` picks one; "plain" is the simulator's own
shape (a string `message.content`, one Gemini text part). Each other style plays a behaviour of
real endpoints or models, with its source beside the code:

=================  =======================================  ====================================
style              OpenAI protocol                          Gemini protocol
=================  =======================================  ====================================
content_parts      content = [thinking part, text part]     a thought part, then a text part
reasoning_only     content null, the answer in              the answer in a thought part only
                   reasoning_content and reasoning          (not sourced for Gemini; see below)
reasoning_cut      content null, half a thinking in         no parts at all, MAX_TOKENS
                   reasoning_content, finish "length"
python_literal     JSON answers as Python literals          the same
gemini_native      grounding: [{"box_2d", "label"}]         the same
label_variants     grounding: keys not spelled as asked     the same
explicit_empty     grounding: the answer "[]"               the same
=================  =======================================  ====================================

The last four change the answer text (`restyle`); python_literal applies to every task whose
answer is JSON, the other three to grounding.ground only (other tasks answer as "plain"). The
first three change where the text goes (`openai_message`, `gemini_parts`). Boxes stay in the
protocol's configured convention (the Gemini default yxyx_1000 is Google's box_2d).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .faults import ANSWER_STYLES, unit

__all__ = ["ANSWER_STYLES", "bare_label", "gemini_parts", "openai_message", "restyle", "variant"]
_GROUNDING_STYLES = ("gemini_native", "label_variants", "explicit_empty")
_ARTICLE = re.compile(r"^(a|an|the)\s+", re.IGNORECASE)
_LEADS = {
    "grounding.ground": "The user wants boxes for each referring expression. I look at every "
                        "shape in the image and match it to the expressions by colour and shape.",
    "grounding.extract": "The user wants the caption cleaned and its visible noun phrases with "
                         "their character spans. I check each phrase against the image.",
    "referring.region": "The user gives boxes; for each I look inside it and name the type and "
                        "colour of the object there.",
}


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def bare_label(expression: str) -> str:
    """An expression as Gemini labels a detection: no leading article, lower case."""
    return _ARTICLE.sub("", " ".join(expression.split())).lower()


def _native(answer: dict[str, Any]) -> str:
    # Gemini's native detection answer: a JSON list of {"box_2d": [ymin, xmin, ymax, xmax],
    # "label": ...} (https://ai.google.dev/gemini-api/docs/image-understanding, "Get a bounding
    # box for an object" and "Image segmentation": 'a label ("label") that identifies the
    # object'; prompted as in mdickens/Gemini-API-Sandbox src/gemobjdetect.py). Labels name the
    # object, not the asked expression: Google's examples label with bare lower-case nouns; that
    # the article is dropped and the case lowered is the brief's observation, not sourced.
    out = [{"box_2d": box, "label": bare_label(expr)}
           for expr, value in answer.items() if isinstance(value, dict)
           for box in value.get("bboxes", [])]
    return json.dumps(out, ensure_ascii=False)


def variant(expression: str, seed: int, sha: str) -> str:
    """`expression` spelled otherwise: case, whitespace, trailing punctuation, leading article.

    Models do not always spell keys as asked even when told to (zby/answerbot#6: "LLM would
    perform lookups with invalid casing"); which changes (at least one) is a pure function of
    (seed, image, expression). That the four kinds are the ones met in grounding answers is the
    brief's observation, not sourced one by one.
    """
    mask = 1 + int(unit("variant", seed, sha, expression) * 15)  # 1..15: never unchanged
    text = expression
    if mask & 1:
        text = _ARTICLE.sub("", text) if _ARTICLE.match(text) else "the " + text
    if mask & 2 and text[:1].isalpha():
        text = (text[0].upper() if text[0].islower() else text[0].lower()) + text[1:]
    if mask & 4:
        text += "."
    if mask & 8:
        text = text.replace(" ", "  ", 1) + " "
    return text if text != expression else expression + "."


def _variants(answer: dict[str, Any], seed: int, sha: str) -> str:
    out: dict[str, Any] = {}
    for expr, value in answer.items():
        key = variant(expr, seed, sha)
        while key in out or key in answer:
            key += "."
        out[key] = value
    return json.dumps(out, ensure_ascii=False)


def restyle(style: str, task: str, text: str, seed: int, sha: str) -> str:
    """The answer text in `style` (styles that only move the text return it unchanged)."""
    if style == "python_literal":
        # Some models write JSON as Python literals (single quotes, True/False/None):
        # waybarrios/vllm-mlx#63 (Qwen3-Coder, "{'theme': 'dark', 'size': 14}"),
        # ml-explore/mlx-lm#1004, microsoft/RD-Agent#1374, stanfordnlp/dspy#9018.
        value = _json(text)
        return repr(value) if isinstance(value, dict | list) else text
    if style not in _GROUNDING_STYLES or task != "grounding.ground":
        return text
    if style == "explicit_empty":
        # A model that sees nothing answers with an explicit empty result, "[]", instead of the
        # asked {"<expression>": {"bboxes": [], ...}} (an empty list is a detector's "nothing
        # found", apple/turicreate#132; for a VLM this is the brief's observation, not sourced).
        return "[]"
    answer = _json(text)
    if not isinstance(answer, dict):
        return text
    return _native(answer) if style == "gemini_native" else _variants(answer, seed, sha)


def thinking(task: str, text: str) -> str:
    """What the simulated model 'thinks' before it answers: a lead, then a draft of the answer."""
    lead = _LEADS.get(task, "Let me look at the image carefully before I answer.")
    return f"{lead} Draft answer: {text}"


def cut(thought: str) -> str:
    """A thinking cut off mid-way, as when the token limit is spent on it."""
    return thought[: max(1, len(thought) // 2)]


def openai_message(style: str, task: str, text: str,
                   finish: str) -> tuple[dict[str, Any], str, str]:
    """The assistant message, finish reason and thinking text for an answer `text`."""
    if style == "content_parts":
        # Mistral's Magistral models answer with content as a list of chunks, a "thinking" chunk
        # (itself a list of text chunks) and a "text" chunk: the shape quoted in
        # langchain4j/langchain4j#4474, spring-projects/spring-ai#5019 and vercel/ai#8072.
        thought = thinking(task, text)
        return {"role": "assistant", "content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": thought}]},
            {"type": "text", "text": text},
        ]}, finish, thought
    if style in ("reasoning_only", "reasoning_cut"):
        # vLLM with a reasoning parser puts the thinking in `reasoning_content`
        # (https://docs.vllm.ai/en/v0.10.0/features/reasoning_outputs.html), renamed `reasoning`
        # by vllm-project/vllm#27752, which kept `reasoning_content` too until #33402 removed it
        # (vllm-project/vllm#38488 on #33635 writing both); so both fields are sent. An answer
        # that never closes its thinking lands whole in them with content null (vllm#52640,
        # vllm#35296); cut by the token limit, finish_reason is "length" with content null and
        # the partial thinking in `reasoning` (vllm-project/vllm#52640, DeepSeek V4).
        thought = text if style == "reasoning_only" else cut(thinking(task, text))
        reason = finish if style == "reasoning_only" else "length"
        return {"role": "assistant", "content": None, "reasoning_content": thought,
                "reasoning": thought, "refusal": None}, reason, thought
    return {"role": "assistant", "content": text, "refusal": None}, finish, ""


def gemini_parts(style: str, task: str, text: str,
                 finish: str) -> tuple[list[dict[str, Any]], str, str]:
    """The candidate's parts, finish reason ("stop"/"length") and thinking for `text`."""
    if style == "content_parts":
        # Thought summaries come as parts with "thought": true before the answer's text parts
        # (https://ai.google.dev/gemini-api/docs/thinking; zhudotexe/kani#60). A real Gemini
        # sends them only when the request sets thinkingConfig.includeThoughts; the simulator
        # sends them whatever the request says, so that tests can force the shape.
        thought = thinking(task, text)
        return [{"text": thought, "thought": True}, {"text": text}], finish, thought
    if style == "reasoning_only":
        # Not sourced for Gemini: the answer only in a thought part (response.text is None),
        # the Gemini-side mirror of vLLM's reasoning-only answer.
        return [{"text": text, "thought": True}], finish, text
    if style == "reasoning_cut":
        # Thinking spent the token budget: finishReason MAX_TOKENS and a candidate without
        # parts (googleapis/python-genai#811, stanford-crfm/helm#3804 "No content parts in
        # candidate").
        return [], "length", cut(thinking(task, text))
    return [{"text": text}], finish, ""
