"""What a model's tokens cost: a price table per model, from the providers' public price pages.

Prices are US dollars per million tokens, as the page said on the date beside each entry; a spec
may override them (providers change prices, and self-hosted servers cost what their GPUs cost).
Thinking tokens are billed as output tokens unless the entry says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """USD per million tokens of one model."""

    input_per_million: float
    output_per_million: float
    thinking_per_million: float | None = None
    """None: thinking tokens are billed as output tokens"""
    source: str = ""
    """where the figures come from (a price page, `spec`), and when"""

    def cost(self, prompt_tokens: int, completion_tokens: int, thinking_tokens: int = 0) -> float:
        """USD for the tokens of one or more requests (completion_tokens exclude thinking)."""
        thinking = (self.output_per_million if self.thinking_per_million is None
                    else self.thinking_per_million)
        return (prompt_tokens * self.input_per_million + completion_tokens
                * self.output_per_million + thinking_tokens * thinking) / 1e6


PRICES: dict[str, Price] = {}
"""model name (as the spec names it, lower case) -> its price; TO BE FILLED from sourced pages"""


def price_for(model: str) -> Price | None:
    """The price of `model` (its exact name, else the longest known prefix, so a dated version
    such as gemini-2.5-flash-001 finds gemini-2.5-flash), or None when no entry knows it."""
    name = model.strip().lower().removeprefix("models/")
    if name in PRICES:
        return PRICES[name]
    prefixes = [known for known in PRICES if name.startswith(known)]
    return PRICES[max(prefixes, key=len)] if prefixes else None


def usage_cost(price: Price, prompt_tokens: int | None, completion_tokens: int | None,
               thinking_tokens: int | None, *, completion_includes_thinking: bool) -> float:
    """USD for one response's usage as the ledger stores it (None counts as 0).

    `completion_includes_thinking`: whether the backend's completion count already holds the
    thinking tokens (OpenAI's `completion_tokens` includes `reasoning_tokens`; Gemini's
    `candidates_token_count` excludes `thoughts_token_count`), so they are not billed twice.
    """
    completion, thinking = completion_tokens or 0, thinking_tokens or 0
    if completion_includes_thinking:
        completion = max(0, completion - thinking)
    return price.cost(prompt_tokens or 0, completion, thinking)
