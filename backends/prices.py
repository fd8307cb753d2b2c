"""What a model's tokens cost: a price table per model, from the providers' public price pages.

Prices are US dollars per million tokens of the standard (pay-as-you-go, not batch, flex or
priority) tier, as the page said on the date beside each entry; where a price has tiers by prompt
size, the entry is the lowest tier (prompts up to 200k tokens for Gemini's Pro models, 272k for
GPT-5.4), which every request of this tool falls in (one image and a short prompt). A spec may
override them (`<pipeline>.vlm.<backend>.price`): providers change prices, and self-hosted servers
(vLLM, NIM) cost what their GPUs cost, so no entry names them.

Thinking tokens are billed as output tokens unless an entry says otherwise: Gemini's price page
reads "Output price (including thinking tokens)"; OpenAI bills reasoning tokens as completion
tokens (the API reference of `completion_tokens_details`: "like reasoning tokens, these tokens are
still counted in the total completion tokens for purposes of billing").

Sources. The figures were read from the provider's page through pydantic/genai-prices, a dated,
machine-readable transcription of it (github.com/pydantic/genai-prices, prices/providers/google.yml
and openai.yml, at commit 47df840a of 2026-08-21), and checked against a second reading of the
page where one exists (named in the entry). Models whose price changes on a known date
(Gemini 3.6 / 3.7 Flash: introductory prices through 2026-12-31) are left out rather than billed
wrong after that date; set their price in the spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from auto_label.errors import SpecError


@dataclass(frozen=True)
class Price:
    """USD per million tokens of one model."""

    input_per_million: float
    output_per_million: float
    thinking_per_million: float | None = None
    """None: thinking tokens are billed as output tokens"""
    source: str = ""
    """where the figures come from (a price page, `spec`), and when"""

    def scaled(self, factor: float) -> Price:
        """This price times `factor` (a batch API's discount: 0.5 is half)."""
        thinking = None if self.thinking_per_million is None else \
            self.thinking_per_million * factor
        return Price(self.input_per_million * factor, self.output_per_million * factor, thinking,
                     f"{self.source}; x{factor:g} for batch jobs")

    def cost(self, prompt_tokens: int, completion_tokens: int, thinking_tokens: int = 0) -> float:
        """USD for the tokens of one or more requests (completion_tokens exclude thinking)."""
        thinking = (self.output_per_million if self.thinking_per_million is None
                    else self.thinking_per_million)
        return (prompt_tokens * self.input_per_million + completion_tokens
                * self.output_per_million + thinking_tokens * thinking) / 1e6


BATCH_DISCOUNT: dict[str, float] = {
    # "50% cost discount compared to synchronous APIs": developers.openai.com/api/docs/guides/batch
    "openai": 0.5,
    # "at 50% of the standard cost": ai.google.dev/gemini-api/docs/batch-api
    "gemini": 0.5,
}
"""backend -> the share of the online price its batch answers cost"""

GEMINI_PAGE = "https://ai.google.dev/gemini-api/docs/pricing"
OPENAI_PAGE = "https://developers.openai.com/api/docs/pricing"
VIA = "via https://github.com/pydantic/genai-prices"


def _gemini(input_: float, output: float, checked: str, also: str = "") -> Price:
    return Price(input_, output, None, f"{GEMINI_PAGE} ({VIA}, checked {checked}){also}")


def _openai(input_: float, output: float, checked: str, also: str = "") -> Price:
    return Price(input_, output, None, f"{OPENAI_PAGE} ({VIA}, checked {checked}){also}")


_DEPLOYBASE_GEMINI = ("; same figures: https://deploybase.ai/articles/gemini-api-pricing "
                      "(March 2026)")
_EVANGELIST_GEMINI = ("; same figures: https://github.com/api-evangelist/gemini "
                      "plans/gemini-plans-pricing.yml (page read 2026-09-20)")
_DEPLOYBASE_OPENAI = "; same figures: https://deploybase.ai/articles/openai-pricing (March 2026)"

_GEMINI_3_1_FLASH_LITE = _gemini(0.25, 1.50, "2026-05-12")
_GEMINI_2_5_PRO = _gemini(1.25, 10.00, "2025-10-31", " (prompts <= 200k tokens; above: "
                          "$2.50 / $15)" + _DEPLOYBASE_GEMINI)
_GEMINI_3_PRO = " (prompts <= 200k tokens; above: $4 / $18)"

PRICES: dict[str, Price] = {
    # Gemini API (the gemini backend), standard paid tier, text/image/video input
    "gemini-2.0-flash": _gemini(0.10, 0.40, "2025-07-04"),
    "gemini-2.0-flash-lite": _gemini(0.075, 0.30, "2025-07-04"),
    "gemini-2.5-flash": _gemini(0.30, 2.50, "2025-10-31", _DEPLOYBASE_GEMINI),
    "gemini-2.5-flash-lite": _gemini(0.10, 0.40, "2025-10-31", "; same figures: https://"
                                     "aifreeapi.com/en/posts/gemini-api-pricing-2026 (Jan 2026)"),
    "gemini-2.5-pro": _GEMINI_2_5_PRO,
    "gemini-3-flash-preview": _gemini(0.50, 3.00, "2025-12-19"),
    "gemini-3-pro-preview": _gemini(2.00, 12.00, "2025-11-18", _GEMINI_3_PRO),
    "gemini-3.1-pro-preview": _gemini(2.00, 12.00, "2026-02-23",
                                      _GEMINI_3_PRO + _EVANGELIST_GEMINI),
    "gemini-3.1-flash-lite": _GEMINI_3_1_FLASH_LITE,
    "gemini-3.1-flash-lite-preview": _GEMINI_3_1_FLASH_LITE,
    "gemini-3.5-flash": _gemini(1.50, 9.00, "2026-05-19", _EVANGELIST_GEMINI),
    "gemini-3.5-flash-lite": _gemini(0.30, 2.50, "2026-07-22", "; same figures: https://docs.apiyi.com"
                                     "/en/api-capabilities/gemini-3-5-flash-lite/overview (July "
                                     "2026)"),
    # OpenAI (the openai backend with OpenAI's endpoint), standard tier, models that take images
    # through chat completions
    "gpt-4o": _openai(2.50, 10.00, "2025-07-04", _DEPLOYBASE_OPENAI),
    "gpt-4o-2024-05-13": Price(5.00, 15.00, None, "https://llmcloudhub.com/openai/gpt-4o-2024-05-13"
                               " (as of 2026-05-08); same figures: https://www.llmpricing.site/"
                               "models/openai/openai-gpt-4o-2024-05-13"),
    "gpt-4o-mini": _openai(0.15, 0.60, "2025-07-04", _DEPLOYBASE_OPENAI),
    "gpt-4.1": _openai(2.00, 8.00, "2025-07-04", _DEPLOYBASE_OPENAI),
    "gpt-4.1-mini": _openai(0.40, 1.60, "2025-07-04", _DEPLOYBASE_OPENAI),
    "gpt-4.1-nano": _openai(0.10, 0.40, "2025-07-04", _DEPLOYBASE_OPENAI),
    "gpt-5": _openai(1.25, 10.00, "2025-11-13", _DEPLOYBASE_OPENAI),
    "gpt-5-mini": _openai(0.25, 2.00, "2025-11-13", _DEPLOYBASE_OPENAI),
    "gpt-5-nano": _openai(0.05, 0.40, "2025-11-13", _DEPLOYBASE_OPENAI),
    "gpt-5.1": _openai(1.25, 10.00, "2025-11-13", _DEPLOYBASE_OPENAI),
    "gpt-5.2": _openai(1.75, 14.00, "2025-12-11"),
    "gpt-5.4": _openai(2.50, 15.00, "2026-03-06", " (prompts <= 272k tokens; above: $5 / $22.50)"
                       + _DEPLOYBASE_OPENAI),
    "gpt-5.4-mini": _openai(0.75, 4.50, "2026-03-18"),
    "gpt-5.4-nano": _openai(0.20, 1.25, "2026-03-18"),
    "gpt-5.5": _openai(5.00, 30.00, "2026-04-24"),
    "o1": _openai(15.00, 60.00, "2025-07-04"),
    "o3": _openai(2.00, 8.00, "2025-07-12", " (the price since 2025-06-10)" + _DEPLOYBASE_OPENAI),
    "o4-mini": _openai(1.10, 4.40, "2025-07-04", _DEPLOYBASE_OPENAI),
}
"""model name (as the spec names it, lower case) -> its price"""

_VERSION_SUFFIX = re.compile(r"-(latest|\d[\d-]*)")
"""what may follow a known name and still be the same model at the same price: a dated or
numbered version (-001, -2025-04-14, -11-2025) or -latest; not -mini, -lite, -pro, -preview"""


def price_for(model: str) -> Price | None:
    """The price of `model`: its exact name (case-insensitive, a `models/` prefix ignored), else
    a known name followed by a version suffix only (gemini-2.0-flash-001 finds gemini-2.0-flash,
    gpt-4.1-2025-04-14 finds gpt-4.1; gpt-5-pro does not find gpt-5), or None when no entry knows
    it (self-hosted models, models left out of the table)."""
    name = model.strip().lower().removeprefix("models/")
    if name in PRICES:
        return PRICES[name]
    known = [k for k in PRICES if name.startswith(k) and _VERSION_SUFFIX.fullmatch(name[len(k):])]
    return PRICES[max(known, key=len)] if known else None


def usage_cost(price: Price, prompt_tokens: int | None, completion_tokens: int | None,
               thinking_tokens: int | None, *, completion_includes_thinking: bool) -> float:
    """USD for one response's usage as the ledger stores it (None counts as 0).

    `completion_includes_thinking`: whether the backend's completion count already holds the
    thinking tokens, so they are not billed twice. OpenAI's `completion_tokens` includes
    `completion_tokens_details.reasoning_tokens` (openai SDK, types/completion_usage.py, from the
    API reference); Gemini's `candidates_token_count` excludes `thoughts_token_count`
    (google-genai, types.py, GenerateContentResponseUsageMetadata: `total_token_count` is the sum
    of prompt, candidates, tool-use prompt and thoughts token counts).
    """
    completion, thinking = completion_tokens or 0, thinking_tokens or 0
    if completion_includes_thinking:
        completion = max(0, completion - thinking)
    return price.cost(prompt_tokens or 0, completion, thinking)


class PriceSetting(BaseModel):
    """`<pipeline>.vlm.<backend>.price`: what the model's tokens cost, USD per million, when the
    table does not know it or knows it wrong. It never enters a fingerprint (a price does not
    change an answer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    thinking_per_million: float | None = Field(
        default=None, ge=0, description="empty: thinking tokens cost what output tokens cost")

    def price(self, key: str = "") -> Price:
        return Price(self.input_per_million, self.output_per_million, self.thinking_per_million,
                     f"spec ({key})" if key else "spec")


def resolve_price(setting: PriceSetting | None, model: str, key: str = "") -> Price | None:
    """The price a run uses: the spec's (`setting`, found at `key`), else the table's for
    `model`, else None (unknown)."""
    return setting.price(key) if setting is not None else price_for(model)


def price_from_spec(spec: Mapping[str, Any], backend: str, model: str) -> Price | None:
    """The price of a past run, from its `RunStarted` event: `spec` (as recorded, keys masked),
    `backend` and `model`. The spec's `<pipeline>.vlm.<backend>.price` wins; else the table's
    entry for `model`; None when neither knows it. Never raises on an old or odd spec."""
    pipeline = spec.get("autolabel_type")
    block = spec.get(pipeline) if isinstance(pipeline, str) else None
    vlm = block.get("vlm") if isinstance(block, Mapping) else None
    config = vlm.get(backend) if isinstance(vlm, Mapping) else None
    raw = config.get("price") if isinstance(config, Mapping) else None
    if isinstance(raw, Mapping):
        try:
            setting = PriceSetting.model_validate(raw)
        except ValueError:
            setting = None
        if setting is not None:
            return setting.price(f"{pipeline}.vlm.{backend}.price")
    return price_for(model)


def thinking_in_completion(backend: str) -> bool:
    """Whether the backend named `backend` reports completion tokens that include the thinking
    tokens (its `completion_includes_thinking`); False for a backend not installed (thinking is
    then billed on top: a cost too high, never too low)."""
    from auto_label.backends.registry import plugins

    try:
        create = plugins()[backend].create
    except (KeyError, SpecError):
        return False
    return bool(getattr(create, "completion_includes_thinking", False))
