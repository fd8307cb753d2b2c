"""`auto_label generate --dry-run`: what a run would ask, re-read, reuse and skip, and what it
would cost, without sending a request or writing anything.

The count comes from the run's own planner (`planning.decide`) on the ledger's projections, the
way `generate` plans: an image whose seed is still valid is planned as it stands; an image not
seeded yet (new, or its file changed) needs every selected step it can reach (its file is not
read); the steps downstream of a step that must be asked are asked too (their input is not known
before the answer). A step whose request already has a stored answer (a parser version was
raised) is re-read with today's parser, as `generate` does, and needs no request when it reads.
Retries are not counted: each ask is one request.

Tokens per request are the means, per step, of the ledger's earlier answers to the same backend
and model (else to any model), or a stated default when it holds none; the cost is those tokens at
the run's price (the spec's, else the table's), or unknown.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from auto_label.backends.base import Backend
from auto_label.backends.prices import BATCH_DISCOUNT, Price, usage_cost
from auto_label.backends.registry import VLMConfigBase, create_backend
from auto_label.ledger import audit_queries, queries
from auto_label.ledger.events import StepFailed
from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.store import LEDGER_FILE, Ledger
from auto_label.pipelines.contract import ImageInput, Pipeline, Step, StepInput, StepOutput
from auto_label.pipelines.engine import planning
from auto_label.pipelines.engine.answering import Answer
from auto_label.pipelines.engine.budget import run_price, usd
from auto_label.pipelines.engine.planning import (
    Ask,
    ImageFacts,
    Progress,
    Projections,
    Resolved,
    Reuse,
    Settings,
    Skip,
)
from auto_label.pipelines.engine.rereading import reread, stored_answers
from auto_label.spec import Spec
from auto_label.spec_loader import load_spec

TokenSource = Literal["history", "other models", "default"]


@dataclass(frozen=True)
class TokenMeans:
    """Tokens of one request of a step, and where the figures come from."""

    prompt: float
    answer: float
    thinking: float
    source: TokenSource
    responses: int = 0
    """the earlier answers the means are taken over (0 for the default)"""


DEFAULT_TOKENS = TokenMeans(1500, 500, 0, "default")
"""Per request when the ledger has no answer to measure: a round guess (an image and a prompt in,
a JSON answer out), not a measurement; the summary says so."""


@dataclass(frozen=True)
class StepPlan:
    """What the run would do for one selected step."""

    number: str
    name: str
    ask: int = 0
    """images whose step needs the model: one request each (retries not counted)"""
    reread: int = 0
    """images whose stored answer today's parser reads (no request)"""
    reuse: int = 0
    """images already answered under the same fingerprint"""
    skip: int = 0
    """images the step cannot run for (an upstream step that is not run and never completed)"""
    tokens: TokenMeans = DEFAULT_TOKENS
    cost: float | None = None
    """USD of the asks, None when the price is unknown"""

    @property
    def requests(self) -> int:
        return self.ask

    @property
    def total_tokens(self) -> tuple[int, int, int]:
        """(prompt, answer, thinking) tokens of the asks."""
        t = self.tokens
        return (round(t.prompt * self.ask), round(t.answer * self.ask),
                round(t.thinking * self.ask))


@dataclass(frozen=True)
class DryRun:
    pipeline: str
    backend: str
    model: str
    endpoint: str
    results_dir: Path
    images: int
    """input images the run would take (after --retry-failed)"""
    unseeded: int
    """of them, not seeded yet (new, or their content changed): planned without reading them"""
    steps: list[StepPlan]
    price: Price | None
    max_cost: float | None = None
    ledger: bool = True
    """False: no ledger in results_dir yet (everything is new)"""
    notes: list[str] = field(default_factory=list)
    input_images: int = 0
    """images the input lists (`images` is fewer with --retry-failed)"""
    rehashed: int = 0
    """of `images`, files whose path, size or time changed, read to find their content is the
    same as seeded (the run reuses their answers)"""

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.steps)

    @property
    def tokens(self) -> tuple[int, int, int]:
        totals = [s.total_tokens for s in self.steps]
        return (sum(t[0] for t in totals), sum(t[1] for t in totals), sum(t[2] for t in totals))

    @property
    def cost(self) -> float | None:
        """USD of every request, None when the price is unknown."""
        if self.price is None:
            return None
        return sum(s.cost or 0.0 for s in self.steps)


def dry_run(spec: Spec | str | Path, overrides: Sequence[str] = (), *,
            retry_failed: bool = False, limit: int | None = None) -> DryRun:
    """What `generate(spec, overrides, retry_failed=..., limit=...)` would do now, per step, with
    its tokens and cost. Sends no request, needs no API key, takes no lock, writes nothing (the
    ledger is opened only when it exists; an older one is brought up to date like any reader
    does).

    Raises an `AutoLabelError` (one line) for a bad spec or input, or a results_dir that holds
    something other than a ledger.
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    block = spec.block
    pipeline = spec.pipeline
    workflow = block.workflow
    backend = create_backend(_keyed(block.vlm))
    try:
        price = run_price(block.vlm.selected().price, backend.model, pipeline=pipeline.name,
                          backend=backend.name, max_cost=None)
        if price is not None and workflow.mode == "batch":  # batch answers cost less
            price = price.scaled(BATCH_DISCOUNT.get(backend.name, 1.0))
        settings = Settings(pipeline, frozenset(workflow.steps), workflow.force_reprocess,
                            backend.describe())
        items = pipeline.read_inputs(block.data).items
        listed = len(items)
        planner = _Planner(settings, backend, block.data.ingest_settings().key)
        found = (spec.results_dir / LEDGER_FILE).exists()
        if found:
            with Ledger.open(spec.results_dir, create=False) as ledger:
                if retry_failed:
                    failed = queries.failed_images(ledger.connection())
                    items = [item for item in items if item.image_id in failed]
                planner.plan(items[:limit], ledger)
                means = _token_means(ledger.connection(), backend.name, backend.model)
        else:
            items = [] if retry_failed else items
            planner.plan(items[:limit], None)
            means = {}
    finally:
        backend.close()
    steps = [_priced(counts.values(), means.get(counts.step.number), price, backend)
             for counts in planner.steps.values()]
    notes = []
    if workflow.max_cost is not None and price is None:
        notes.append(f"{pipeline.name}.workflow.max_cost is set but no price is known: the run "
                     f"would stop before any request (set {pipeline.name}.vlm.{backend.name}"
                     ".price)")
    return DryRun(pipeline.name, backend.name, backend.model, backend.endpoint,
                  spec.results_dir, len(items[:limit]), planner.unseeded, steps, price,
                  workflow.max_cost, found, notes, input_images=listed,
                  rehashed=planner.rehashed)


def _keyed(vlm: VLMConfigBase) -> VLMConfigBase:
    """The vlm block with a placeholder key where it has none, so that a dry run needs no key
    (no request is sent; the key is never part of a fingerprint)."""
    config = vlm.selected()
    if config.api_key.get_secret_value():
        return vlm
    keyed = config.model_copy(update={"api_key": SecretStr("dry-run-sends-nothing")})
    return vlm.model_copy(update={vlm.backend: keyed})


def _priced(plan: StepPlan, means: TokenMeans | None, price: Price | None,
            backend: Backend) -> StepPlan:
    means = means or DEFAULT_TOKENS
    plan = StepPlan(plan.number, plan.name, plan.ask, plan.reread, plan.reuse, plan.skip, means)
    if price is None:
        return plan
    prompt, answer, thinking = plan.total_tokens
    cost = usage_cost(price, prompt, answer, thinking,
                      completion_includes_thinking=backend.completion_includes_thinking)
    return StepPlan(plan.number, plan.name, plan.ask, plan.reread, plan.reuse, plan.skip, means,
                    cost)


class _Planner:
    """The run's planning, applied to counts instead of a worker pool."""

    def __init__(self, settings: Settings, backend: Backend, ingest: str) -> None:
        self.settings = settings
        self.pipeline: Pipeline = settings.pipeline
        self.convention = backend.frame.coordinates
        self.ingest = ingest
        self.steps = {s.number: _Counts(s) for s in settings.selected_steps}
        self.unseeded = 0
        self.rehashed = 0
        self.ledger: Ledger | None = None
        self.rows: dict[str, queries.ImageRow] = {}
        self.failed: set[tuple[str, str, str]] = set()
        self.projections = Projections()

    def plan(self, items: list[ImageInput], ledger: Ledger | None) -> None:
        self.ledger = ledger
        if ledger is not None:
            conn = ledger.connection()
            self.rows = queries.images(conn)
            self.projections = Projections(queries.completions(conn), queries.current(conn))
            self.failed = {(e.image_id, e.step, e.fingerprint)
                           for _, e in ledger.events(["step_failed"]) if isinstance(e, StepFailed)}
        for item in items:
            self._image(item)

    def _image(self, item: ImageInput) -> None:
        row = self.rows.get(item.image_id)
        try:
            stat: os.stat_result | None = item.path.stat()
        except OSError:
            stat = None
        progress = Progress()
        if row is not None and planning.unchanged(row, item, stat, self.ingest):
            assert row.image_key is not None
            facts, size = ImageFacts(item, row.image_key), (row.width, row.height)
        elif row is not None and row.image_key is not None and row.ingest == self.ingest and \
                _same_content(item.path, row.sha256):
            # moved, touched or relisted, same bytes: the run will seed it to the same key
            self.rehashed += 1
            facts, size = ImageFacts(item, row.image_key), (row.width, row.height)
        else:  # seeded by the run first: nothing under its fingerprints is known yet
            self.unseeded += 1
            facts, size = ImageFacts(item, f"not seeded yet: {item.image_id}"), (0, 0)
            progress, _ = planning.imports(facts, progress, self.settings, self.projections)
        while True:
            progress, decisions = planning.decide(facts, progress, self.settings,
                                                  self.projections)
            if not decisions:
                return
            for decision in decisions:
                counts = self.steps[decision.step.number]
                if isinstance(decision, Reuse):
                    counts.reuse += 1
                elif isinstance(decision, Skip):
                    counts.skip += 1
                elif isinstance(decision, Ask):
                    progress = self._ask(item, size, progress, decision, counts)

    def _ask(self, item: ImageInput, size: tuple[int, int], progress: Progress, ask: Ask,
             counts: _Counts) -> Progress:
        """Count the ask (or the re-read that spares it); the step resolves either way, with an
        output hash no completion has when it must be asked (its downstream steps are asked)."""
        step = ask.step
        output = self._reread(item, size, progress, ask)
        if output is not None:
            counts.reread += 1
            return planning.completed(progress, step.number,
                                      Resolved(content_hash(output.to_stored()), None, output))
        counts.ask += 1
        pending = f"asked in this run: {item.image_id} step {step.number}"
        return planning.completed(progress, step.number, Resolved(pending))

    def _reread(self, item: ImageInput, size: tuple[int, int], progress: Progress,
                ask: Ask) -> StepOutput | None:
        """The output today's parser reads from an answer stored for this very request (what
        `generate` records without asking), or None."""
        step = ask.step
        request = ask.request_fingerprint or ask.fingerprint
        if self.ledger is None or self.settings.force or \
                (item.image_id, step.number, ask.fingerprint) in self.failed:
            return None  # never stored, forced, or this parser already failed on it
        answers = stored_answers(self.ledger, item.image_id, step.number, request)
        if not answers:
            return None
        upstream = self._upstream(progress, step)
        if upstream is None:
            return None
        sent = answers[0].request
        ctx = StepInput(image_id=item.image_id, caption=item.caption, extra=item.extra,
                        upstream=upstream, convention=self.convention,
                        sent_size=sent.sent_size(size), original_size=size)
        found = reread(step, ctx, answers)
        if found is None or not isinstance(found.result, Answer):
            return None
        return found.result.output

    def _upstream(self, progress: Progress, step: Step) -> dict[str, StepOutput] | None:
        outputs: dict[str, StepOutput] = {}
        for number in step.needs:
            resolved = progress.resolved[number]
            if resolved.output is not None:
                outputs[number] = resolved.output
            elif resolved.seq is not None and self.ledger is not None:
                event = self.ledger.completion(resolved.seq)
                outputs[number] = self.pipeline.step(number).stored_output(event)
            else:
                return None
        return outputs


@dataclass
class _Counts:
    step: Step
    ask: int = 0
    reread: int = 0
    reuse: int = 0
    skip: int = 0

    def values(self) -> StepPlan:
        return StepPlan(self.step.number, self.step.name, self.ask, self.reread, self.reuse,
                        self.skip)


def _token_means(conn: sqlite3.Connection, backend: str, model: str) -> dict[str, TokenMeans]:
    """step -> the mean tokens of the ledger's answers to requests of this backend and model,
    else of any model (responses without usage left out)."""
    rows = audit_queries.token_sums(conn, backend, model)
    same = {step: (n, p, a, t) for step, match, n, p, a, t in rows if match}
    other: dict[str, tuple[int, float, float, float]] = {}
    for step, _, n, p, a, t in rows:
        total = other.get(step, (0, 0.0, 0.0, 0.0))
        other[step] = (total[0] + n, total[1] + p, total[2] + a, total[3] + t)
    means = {}
    for step, (n, p, a, t) in other.items():
        source: TokenSource = "other models"
        if step in same:
            (n, p, a, t), source = same[step], "history"
        means[step] = TokenMeans(p / n, a / n, t / n, source, n)
    return means


__all__ = ["DEFAULT_TOKENS", "DryRun", "StepPlan", "TokenMeans", "dry_run", "usd"]


def _same_content(path: Path, sha256: str) -> bool:
    """Whether the file holds the bytes with this sha256 (read in chunks; False if unreadable)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == sha256
