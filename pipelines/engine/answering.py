"""Reading a response into a step's output: where the answer is, whether it is whole, and what it
means when it is not.

- A cut at the token limit is never half-recorded: it is asked again, and fails if it stays cut,
  with a message naming the limit and its spec key.
- An answer only in the reasoning (vLLM with a reasoning parser returns `content: null` and the
  whole output in `reasoning_content` when the model never closed its thinking) is read from the
  reasoning when it parses there as a complete answer; otherwise it fails, saying so and how to
  configure the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from auto_label.backends.base import VLMResponse
from auto_label.pipelines.answers import ParseError
from auto_label.pipelines.contract import Step, StepInput, StepOutput

TRUNCATED = {"length", "max_tokens", "MAX_TOKENS"}


@dataclass(frozen=True)
class Answer:
    output: StepOutput
    answer_in: str
    """where the answer was read: content, or reasoning"""


@dataclass(frozen=True)
class Unusable:
    kind: str
    """truncated, unparseable or no_answer"""
    message: str


def read_answer(step: Step, ctx: StepInput, response: VLMResponse,
                token_limit: tuple[str, int]) -> Answer | Unusable:
    """The step's output from the response, or why it cannot be used (one line)."""
    key, limit = token_limit
    cut = response.finish_reason in TRUNCATED
    if not response.text.strip() and response.thinking:
        if cut:
            return Unusable("truncated", f"the token limit ({key} = {limit}) was spent on "
                            f"reasoning before any answer; raise {key}")
        try:
            return Answer(_parse(step, response.thinking, ctx), "reasoning")
        except ParseError:
            return Unusable("no_answer", "the answer was empty and the reasoning "
                            "(reasoning_content) holds no answer that parses: the model did not "
                            "finish thinking, or the server's reasoning parser took the answer "
                            "(start vLLM without --reasoning-parser, or raise " f"{key})")
    if cut:
        # Complete entries could be salvaged, but the record would silently lack the rest:
        # a cut answer is asked again like a junk one, and fails the step if it stays cut.
        return Unusable("truncated", f"the answer was cut at the token limit ({key} = {limit}); "
                        f"raise {key} if this persists")
    try:
        return Answer(_parse(step, response.text, ctx), "content")
    except ParseError as exc:
        return Unusable("unparseable", str(exc))


def _parse(step: Step, text: str, ctx: StepInput) -> StepOutput:
    try:
        return step.parse(text, ctx)
    except ParseError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""  # a shape the parser let through
        raise ParseError(f"unexpected answer shape ({type(exc).__name__}: {first})") from None
