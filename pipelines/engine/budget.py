"""`workflow.max_cost`: a spending limit for one run, checked before each request starts.

The budget is charged with the cost of every answer the run receives (parsed or not, a blocked
one included: each is billed), priced by the run's `Price`. Before a request starts, the spent
cost, plus an estimate of what the requests in flight will cost, plus an estimate of this one, is
compared with the limit; once it would pass it, the budget refuses this and every later request,
says so once, and stops the run (the requests in flight finish and are recorded). An estimate is
the mean cost of this run's answers to that step so far (else to any step; 0 before the first
answer). What the run spends is therefore at most `max_cost` plus what the requests in flight when
it was reached cost: never more than `max_cost + max_workers x` the dearest single answer, since
no request starts once the spent cost alone passes the limit.

The limit is per run: a rerun of the same command resumes where this one stopped, with the same
`max_cost` to spend again. That keeps a rerun the plain way to go on (as after Ctrl-C), and keeps
the budget a property of the command typed rather than of everything the results_dir's ledger has
ever paid (other models, other prices); `auto_label status` shows what every run cost.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from auto_label.backends.base import Backend, VLMResponse
from auto_label.backends.prices import Price, PriceSetting, resolve_price, usage_cost
from auto_label.errors import SpecError
from auto_label.pipelines.engine.progress import RunSummary


def usd(value: float) -> str:
    """Dollars for people, the one format of every cost the tool shows: cents from a dollar up
    ($1,234.56, $4.00), four decimals below ($0.0200, $0.0136, $0.0000), and <$0.0001 for a
    smaller cost that is not zero (never $0.0000 for a spend)."""
    if 0 < value < 1e-4:
        return "<$0.0001"
    if round(value, 4) >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}"


def run_price(setting: PriceSetting | None, model: str, *, pipeline: str, backend: str,
              max_cost: float | None) -> Price | None:
    """The price a run uses: the spec's `<pipeline>.vlm.<backend>.price`, else the table's entry
    for `model`, else None. Raises SpecError (one line, before any request) when `max_cost` is
    set and no price is known: a budget that cannot be enforced must not pretend to be."""
    key = f"{pipeline}.vlm.{backend}.price"
    price = resolve_price(setting, model, key)
    if price is None and max_cost is not None:
        raise SpecError(
            f"{pipeline}.workflow.max_cost is set but no price is known for the model "
            f"{model!r}: set {key}: {{input_per_million: ..., output_per_million: ...}} (USD per "
            "million tokens), or remove max_cost")
    return price


class Budget:
    """Thread-safe: `admit` and `settle` are called from every worker."""

    def __init__(self, price: Price, limit: float, *, completion_includes_thinking: bool,
                 key: str = "workflow.max_cost",
                 on_exhausted: Callable[[str], None] | None = None) -> None:
        self.price = price
        self.limit = limit
        self.completion_includes_thinking = completion_includes_thinking
        self.key = key
        self.on_exhausted = on_exhausted
        self.spent = 0.0
        """USD of the answers received so far"""
        self.exhausted = False
        self.message = ""
        """the one line that says why the run stopped (empty while it goes on)"""
        self._cost: dict[str, float] = {}
        """step -> USD of its answers"""
        self._answers: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()

    def estimate(self, step: str) -> float:
        """USD the next request of `step` is expected to cost: the mean of this run's answers to
        it, else to any step, else 0."""
        with self._lock:
            return self._estimate(step)

    def _estimate(self, step: str) -> float:
        if self._answers[step]:
            return self._cost[step] / self._answers[step]
        answers = sum(self._answers.values())
        return self.spent / answers if answers else 0.0

    def admit(self, step: str) -> bool:
        """Whether a request of `step` may start now; when it may, it counts as in flight until
        `settle`. The first refusal says why (`on_exhausted`) and every later one is silent."""
        with self._lock:
            if self.exhausted:
                return False
            next_cost = self._estimate(step)
            pending = sum(n * self._estimate(s) for s, n in self._in_flight.items())
            if self.spent + pending + next_cost <= self.limit:
                self._in_flight[step] += 1
                return True
            self.exhausted = True
            self.message = (
                f"max_cost reached: this run had spent {usd(self.spent)} of {self.key} = "
                f"{usd(self.limit)} and the next request (about {usd(next_cost)}) would pass "
                "it, so no new request starts (the requests in flight finish and are "
                "recorded). Rerun the same command to go on (the limit is per run), or raise "
                f"{self.key}")
            message = self.message
        if self.on_exhausted is not None:
            self.on_exhausted(message)
        return False

    def settle(self, step: str, response: VLMResponse | None) -> float:
        """A request admitted for `step` ended, with `response` when an answer came (its usage is
        charged) or None (an error without an answer costs nothing). Returns its cost."""
        cost = 0.0 if response is None else usage_cost(
            self.price, response.prompt_tokens, response.completion_tokens,
            response.thinking_tokens,
            completion_includes_thinking=self.completion_includes_thinking)
        with self._lock:
            if self._in_flight[step] > 0:
                self._in_flight[step] -= 1
            if response is not None:
                self.spent += cost
                self._cost[step] = self._cost.get(step, 0.0) + cost
                self._answers[step] += 1
        return cost


def run_budget(price: Price | None, max_cost: float | None, backend: Backend, *, key: str,
               summary: RunSummary, say: Callable[[str], None],
               stop: threading.Event) -> Budget | None:
    """The budget of a run with `max_cost` set (None without): once exhausted, the summary says
    `interrupted = "max_cost"`, `say` tells the reason (the progress and the summary show it) and
    `stop` is set, so the run takes no new work. Raises SpecError when no price is known."""
    if max_cost is None:
        return None
    if price is None:
        raise SpecError(f"{key} is set but no price is known for the model {backend.model!r}: "
                        "set the price in the spec (vlm.<backend>.price)")

    def exhausted(message: str) -> None:
        summary.interrupted = "max_cost"
        say(message)
        stop.set()

    return Budget(price, max_cost, key=key, on_exhausted=exhausted,
                  completion_includes_thinking=backend.completion_includes_thinking)
