"""Reading stored answers again with today's parsers: no request is sent.

A completion's fingerprint is the request's and the version of the parser that read the answer
(`planning.completion_fingerprint`). When a parser's version is raised, the answers the ledger
already holds for a request are read again before the model is asked: `generate` does it for the
steps it would otherwise ask, `auto_label replay` for the records' current answers and failures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auto_label.backends.base import VLMResponse
from auto_label.ledger import audit_queries
from auto_label.ledger.events import RequestSent, ResponseReceived
from auto_label.ledger.store import Ledger
from auto_label.ledger.templates import TemplateBook
from auto_label.pipelines.contract import Step, StepInput
from auto_label.pipelines.engine.answering import Answer, Unusable, read_answer

TOKEN_LIMIT_KEYS = ("max_tokens", "max_output_tokens", "max_completion_tokens")
"""The backends' names of the answer's token limit in a request's parameters (for messages)."""


@dataclass(frozen=True)
class StoredAnswer:
    request: RequestSent
    response: ResponseReceived
    backend: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """the backend and the parameters the request was sent with (its run's request_template)"""


@dataclass(frozen=True)
class Reread:
    """How today's parser reads a stored answer."""

    answer: StoredAnswer
    result: Answer | Unusable


def as_response(stored: ResponseReceived) -> VLMResponse:
    """The response as the backend returned it, from its event."""
    usage = stored.usage
    return VLMResponse(
        text=stored.text, finish_reason=stored.finish_reason,
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        thinking_tokens=usage.thinking_tokens, model_version=stored.model_version,
        response_id=stored.response_id, thinking=stored.thinking)


def token_limit(answer: StoredAnswer, block: str = "") -> tuple[str, int]:
    """(the spec key of the token limit, e.g. image_grounding.vlm.openai.max_tokens, and its
    value) as the answer's request was sent, for messages; `block` is the pipeline's spec
    block."""
    prefix = f"{block}.vlm.{answer.backend}." if block else ""
    for key in TOKEN_LIMIT_KEYS:
        value = answer.parameters.get(key)
        if isinstance(value, int):
            return prefix + key, value
    return prefix + "max_tokens", 0


def stored_answers(ledger: Ledger, image_id: str, step: str,
                   request_fingerprint: str) -> list[StoredAnswer]:
    """The answers stored for this request, newest first (blocked answers left out), each with
    the backend and parameters it was asked with. Raises LedgerError when a stored event is
    damaged, or a request's template is missing."""
    found = []
    book: TemplateBook | None = None
    for a, request, b, response in audit_queries.stored_answers(
            ledger.connection(), image_id, step, request_fingerprint):
        sent, received = ledger.parse_row(a, request), ledger.parse_row(b, response)
        if isinstance(sent, RequestSent) and isinstance(received, ResponseReceived):
            book = book or TemplateBook(ledger.connection(), str(ledger.path))
            how = book.sent(sent)
            found.append(StoredAnswer(sent, received, how.backend, how.parameters))
    return found


def reread(step: Step, ctx: StepInput, answers: Sequence[StoredAnswer],
           block: str = "") -> Reread | None:
    """The newest of `answers` that today's parser reads; else how the newest fails; None when
    there is none. Pure but for `ctx.observe` (the convention alarm sees the boxes). `block`:
    the pipeline's spec block, to name spec keys in messages."""
    first: Reread | None = None
    for stored in answers:
        result = read_answer(step, ctx, as_response(stored.response),
                             token_limit(stored, block))
        if isinstance(result, Answer):
            return Reread(stored, result)
        first = first or Reread(stored, result)
    return first
