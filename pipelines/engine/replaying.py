"""Replay: read the answers a record rests on (and the ones its failed steps got) again with
today's parsers, and say what the ledger should record. No request is sent, no file is read.

For one image and step the target is its latest failure, else its current completion. The answer
is re-read only when the request it answered is today's request for the same inputs: the request
fingerprint, recomputed from the image's seed, the request's recorded model parameters and the
upstream outputs it was built on, must equal the recorded one (else the answer is to an older
prompt, image or upstream, and only `generate` can ask the current question).

Outcomes: `recovered` (a failed step now reads), `changed` (the record's answer reads otherwise),
`reread` (reads the same, recorded under a new parser version's fingerprint), `same` (nothing to
record), `still_failing`, `lost` (the record's answer no longer reads: left as it is, the next
`generate` asks again), `unversioned` (reads otherwise under the same parser version: the step's
`parser_version` must be raised; nothing recorded), `skipped` (nothing to re-read, with why).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

from auto_label.boxes import Convention
from auto_label.ledger.events import RequestSent, StepCompleted, StepFailed
from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.fold import ImageState
from auto_label.ledger.store import Ledger
from auto_label.ledger.templates import TemplateBook
from auto_label.pipelines.contract import ImageInput, Pipeline, Step, StepInput, StepOutput
from auto_label.pipelines.engine.answering import Answer
from auto_label.pipelines.engine.planning import (
    ImageFacts,
    Settings,
    completion_fingerprint,
    fingerprint,
)
from auto_label.pipelines.engine.rereading import reread, stored_answers

ReplayKind = Literal["recovered", "changed", "reread", "same", "still_failing", "lost",
                     "unversioned", "skipped"]
RECORDED: frozenset[str] = frozenset({"recovered", "changed", "reread"})
"""the outcomes that append a completion"""


@dataclass(frozen=True)
class StepReplay:
    image_id: str
    step: Step
    kind: ReplayKind
    message: str
    """one line: why skipped, why it fails, or what was read"""
    completion: StepCompleted | None = None
    """the completion to append (for the recorded outcomes)"""


def _request(history: Mapping[str, RequestSent], target: StepCompleted | StepFailed,
             requests: list[RequestSent]) -> RequestSent | None:
    """The request whose answer the target rests on (a failure without one: its run's last)."""
    if target.request_id is not None and target.request_id in history:
        return history[target.request_id]
    if isinstance(target, StepFailed):
        mine = [r for r in requests if r.run_id == target.run_id and r.step == target.step]
        return mine[-1] if mine else None
    return None


def _upstream(state: ImageState, step: Step,
              target: StepCompleted | StepFailed) -> dict[str, StepCompleted] | None:
    """The upstream completions the target was built on: a completion names their hashes; a
    failure is taken to have been built on the ones the record shows now."""
    found: dict[str, StepCompleted] = {}
    for number in step.needs:
        if isinstance(target, StepCompleted):
            wanted = target.upstream.get(number)
            match = [c for c in state.completions.get(number, {}).values()
                     if c.output_hash == wanted]
            if not match:
                return None
            found[number] = match[-1]
        else:
            current = state.completion(number)
            if current is None:
                return None
            found[number] = current
    return found


def replay_step(ledger: Ledger, pipeline: Pipeline, state: ImageState, step: Step,
                requests: list[RequestSent], generations: Mapping[str, int],
                run_id: str) -> StepReplay:
    """What today's parser makes of the answer `step` of this image rests on (pure but for
    reading the stored answers). `requests`: the image's request_sent events in order;
    `generations`: run_id -> its completions' generation."""
    image_id = state.image_id

    def outcome(kind: ReplayKind, message: str,
                completion: StepCompleted | None = None) -> StepReplay:
        return StepReplay(image_id, step, kind, message, completion)

    target: StepCompleted | StepFailed | None = state.failed.get(step.number) or \
        state.completion(step.number)
    if target is None:
        return outcome("skipped", "never completed nor failed")
    if state.seed is None:
        return outcome("skipped", "the image was never seeded")
    request = _request({r.request_id: r for r in requests}, target, requests)
    if request is None:
        return outcome("skipped", "no answer is stored (the output came without a request, "
                                  "or the step failed before any answer)")
    upstream = _upstream(state, step, target)
    if upstream is None:
        return outcome("skipped", "the upstream outputs it was built on are not in the ledger")
    hashes = {n: c.output_hash for n, c in upstream.items()}
    seed = state.seed
    item = ImageInput(image_id, Path(seed.path), str(seed.extra.get("image_path", seed.path)),
                      seed.caption, seed.source, dict(seed.extra))
    parameters = TemplateBook(ledger.connection(), str(ledger.path)).sent(request).parameters
    settings = Settings(pipeline, frozenset({step.number}), False, parameters)
    if fingerprint(settings, ImageFacts(item, seed.image_key), step, hashes) != \
            request.fingerprint:
        return outcome("skipped", "answered an older prompt, image or upstream than today's "
                                  "(the next generate asks the current question)")
    convention = parameters.get("coordinates")
    if convention not in get_args(Convention):
        return outcome("skipped", f"the request names no known box convention ({convention!r})")
    outputs: dict[str, StepOutput] = {
        n: pipeline.step(n).stored_output(c) for n, c in upstream.items()}
    ctx = StepInput(image_id=image_id, caption=seed.caption, extra=seed.extra, upstream=outputs,
                    convention=cast(Convention, convention),
                    sent_size=request.sent_size((seed.width, seed.height)),
                    original_size=(seed.width, seed.height))
    found = reread(step, ctx, stored_answers(ledger, image_id, step.number, request.fingerprint),
                   pipeline.name)
    if found is None:
        return outcome("skipped", "no answer is stored for its request (blocked answers are "
                                  "not re-read)")
    if not isinstance(found.result, Answer):
        kind: ReplayKind = "still_failing" if isinstance(target, StepFailed) else "lost"
        return outcome(kind, f"{found.result.kind}: {found.result.message}")
    output = found.result.output
    stored = output.to_stored()
    output_hash = content_hash(stored)
    key = completion_fingerprint(request.fingerprint, step.parser_version)
    if isinstance(target, StepCompleted) and key == target.fingerprint:
        if output_hash == target.output_hash:
            return outcome("same", "reads the same")
        return outcome("unversioned", f"today's parser reads the answer otherwise under the "
                                      f"same parser_version ({step.parser_version}): raise "
                                      f"the parser_version of step {step.number} to record it")
    earlier = state.completions.get(step.number, {}).get(key)
    if earlier is not None and earlier.output_hash == output_hash:
        return outcome("same", "already read with this parser version")
    completion = StepCompleted(
        run_id=run_id, image_id=image_id, step=step.number, fingerprint=key,
        generation=generations.get(request.run_id, 0), output=stored,
        output_version=output.class_version, output_hash=output_hash, upstream=hashes,
        request_id=found.answer.request.request_id, found=output.found()
    ).answering(request.fingerprint)
    if isinstance(target, StepFailed):
        return outcome("recovered", f"now reads (was {target.kind})", completion)
    if output_hash == target.output_hash:
        return outcome("reread", "reads the same under parser version "
                                 f"{step.parser_version}", completion)
    return outcome("changed", "reads otherwise", completion)
