"""Planning: for each image, which steps need the model, which reuse an earlier answer, which
cannot run. Pure functions of the ledger's projections, the image's inputs and the run's settings;
no I/O, no threads. The runner applies what they decide and calls them again as steps complete.

A step runs for an image only when the ledger has no completion of it under its current
fingerprint (`fingerprint`): the hash of the image bytes, the prompt version, the backend's model
and parameters, the inputs the step reads, and the output hashes of its upstream steps. So a
killed run resumes, new images are the only new work, and a changed setting reruns exactly the
steps it affects (and the ones downstream, whose upstream output changed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from auto_label.ledger.events import StepCompleted, StepSelected
from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.projections import input_hash
from auto_label.ledger.queries import CurrentRow, ImageRow
from auto_label.pipelines.contract import ImageInput, Pipeline, Step, StepOutput


@dataclass(frozen=True)
class Settings:
    """What planning needs of the run."""

    pipeline: Pipeline
    selected: frozenset[str]
    """the step numbers this run runs"""
    force: bool
    """ask again even where a completion exists (force_reprocess)"""
    model: Mapping[str, Any]
    """the backend's model and parameters (`Backend.describe()`): part of every fingerprint"""

    @property
    def selected_steps(self) -> list[Step]:
        return [s for s in self.pipeline.steps if s.number in self.selected]


@dataclass(frozen=True)
class Projections:
    """What planning reads of the ledger, loaded once at the start of a run."""

    completions: Mapping[tuple[str, str, str], tuple[int, str]] = field(default_factory=dict)
    """(image_id, step, fingerprint) -> (seq, output hash) of its newest completion"""
    current: Mapping[tuple[str, str], CurrentRow] = field(default_factory=dict)
    """(image_id, step) -> the completion its record shows"""


@dataclass(frozen=True)
class Resolved:
    """A step output this image's later steps can build on."""

    output_hash: str
    seq: int | None = None
    """its step_completed event, to read it back when not in memory"""
    output: StepOutput | None = None


@dataclass(frozen=True)
class ImageFacts:
    """What an image's fingerprints depend on besides the settings."""

    item: ImageInput
    image_key: str
    """what the model is shown (`ImageSeeded.image_key`): the file's sha256 when it sees the
    file's own pixels"""


@dataclass(frozen=True)
class Progress:
    """Where an image stands in this run."""

    resolved: Mapping[str, Resolved] = field(default_factory=dict)
    decided: frozenset[str] = frozenset()
    """steps already decided (asked, reused or skipped)"""
    dead: frozenset[str] = frozenset()
    """steps that failed or were skipped: what needs them cannot run"""


@dataclass(frozen=True)
class Ask:
    """Ask the model: no completion under this fingerprint (or the run forces reprocessing).
    An answer already stored for the same request is re-read first (`request_fingerprint`)."""

    step: Step
    fingerprint: str
    """the completion's: the request's, and the version of the parser that reads the answer"""
    upstream: dict[str, str]
    """upstream step -> the output hash this answer will build on"""
    request_fingerprint: str = ""
    """what is asked (`fingerprint` of the request); empty: the same as `fingerprint`"""


@dataclass(frozen=True)
class Reuse:
    """An earlier completion has this fingerprint; `select` when it is not the one shown now."""

    step: Step
    fingerprint: str
    resolved: Resolved
    select: bool


@dataclass(frozen=True)
class Skip:
    """The step cannot run for this image: it needs a step that failed, was skipped, or is not
    selected and never completed."""

    step: Step
    reason: str = ""
    """one line, e.g. needs step 0, which this run does not run and never completed"""


@dataclass(frozen=True)
class Import:
    """An output the input already holds, for a step this run does not run; `exists` when the
    ledger has it under this fingerprint already (then it is only selected again)."""

    step: Step
    fingerprint: str
    output: StepOutput
    stored: dict[str, Any]
    output_hash: str
    upstream: dict[str, str]
    exists: bool


Decision = Ask | Reuse | Skip


def fingerprint(settings: Settings, facts: ImageFacts, step: Step,
                upstream: Mapping[str, str]) -> str:
    """The tagged hash of everything that determines `step`'s answer for this image.

    A hash contract: tests pin its value for a fixed input, since a changed value makes every
    image's step look new (asked again) and a missed change reuses answers to another question.
    """
    extra = facts.item.extra
    return content_hash({
        "pipeline": settings.pipeline.name,
        "step": step.number,
        "prompt": [step.prompt.task, step.prompt.version],
        "image": facts.image_key,
        "caption": facts.item.caption if step.uses_caption else None,
        "extra": {k: extra.get(k) for k in step.uses_extra},
        "model": dict(settings.model),
        "upstream": dict(upstream),
    })


def completion_fingerprint(request_fingerprint: str, parser_version: int) -> str:
    """The fingerprint of a completion: what was asked (`fingerprint`), and the version of the
    parser that read the answer. Parser version 1 adds nothing, so the fingerprints of every
    ledger written before parsers had versions stay what they were."""
    if parser_version == 1:
        return request_fingerprint
    return content_hash({"request": request_fingerprint, "parser": parser_version})


def seed_extra(item: ImageInput) -> dict[str, Any]:
    """The `extra` of an image's seed event: its pipeline inputs and the path the record shows."""
    return {**item.extra, "image_path": item.image_path}


def unchanged(row: ImageRow | None, item: ImageInput, stat: os.stat_result | None,
              ingest: str) -> bool:
    """Whether `row`, the latest seed of this image, still describes the file, its inputs and the
    way it is ingested (like git's index: then the file is not read or hashed again)."""
    return (
        row is not None
        and stat is not None
        and row.image_key is not None
        and row.ingest == ingest
        and row.path == str(item.path)
        and row.size == stat.st_size
        and row.mtime_ns == stat.st_mtime_ns
        and row.input_hash == input_hash(item.caption, seed_extra(item))
    )


def decide(facts: ImageFacts, progress: Progress, settings: Settings,
           projections: Projections) -> tuple[Progress, list[Decision]]:
    """Every decision that can be made for the image now, and its progress after them.

    Outputs of steps this run does not run come from earlier runs (the current completion).
    A selected step is decided once its upstream is resolved: reused when a completion has its
    fingerprint (which resolves it at once, so its downstream steps are decided in the same call),
    else asked. A step whose upstream is dead, or not selected and never completed, is skipped.
    """
    image_id = facts.item.image_id
    resolved = dict(progress.resolved)
    decided = set(progress.decided)
    dead = set(progress.dead)
    for step in settings.pipeline.steps:
        if step.number not in settings.selected and step.number not in resolved:
            row = projections.current.get((image_id, step.number))
            if row is not None:
                resolved[step.number] = Resolved(row.output_hash, row.seq)
    decisions: list[Decision] = []
    changed = True
    while changed:
        changed = False
        for step in settings.selected_steps:
            if step.number in decided:
                continue
            missing = [n for n in step.needs if n not in resolved]
            if missing:
                absent = [n for n in missing if n not in settings.selected]
                lost = [n for n in missing if n in dead]
                if absent or lost:
                    decided.add(step.number)
                    dead.add(step.number)
                    reason = (f"needs step {absent[0]}, which this run does not run and which "
                              "never completed for the image (add it to workflow.steps)"
                              if absent else f"needs step {lost[0]}, which failed or was "
                              "skipped")
                    decisions.append(Skip(step, reason))
                    changed = True
                continue
            decided.add(step.number)
            upstream = {n: resolved[n].output_hash for n in step.needs}
            asked = fingerprint(settings, facts, step, upstream)
            key = completion_fingerprint(asked, step.parser_version)
            hit = None if settings.force else projections.completions.get(
                (image_id, step.number, key))
            if hit is None:
                decisions.append(Ask(step, key, upstream, asked))
                continue
            row = projections.current.get((image_id, step.number))
            reused = Resolved(hit[1], hit[0])
            resolved[step.number] = reused
            decisions.append(Reuse(step, key, reused, row is None or row.fingerprint != key))
            changed = True
    return Progress(resolved, frozenset(decided), frozenset(dead)), decisions


def imports(facts: ImageFacts, progress: Progress, settings: Settings,
            projections: Projections) -> tuple[Progress, list[Import]]:
    """The outputs the input already holds (seeding from earlier annotations), for the steps this
    run does not run and whose upstream is resolved, in step order, so later steps can build on
    them. Called when the image is (re)seeded, before `decide`."""
    resolved = dict(progress.resolved)
    found: list[Import] = []
    for step in settings.pipeline.steps:
        stored = facts.item.imports.get(step.number)
        if stored is None or step.number in settings.selected or \
                any(n not in resolved for n in step.needs):
            continue
        upstream = {n: resolved[n].output_hash for n in step.needs}
        key = content_hash({"imported": stored, "upstream": upstream})
        output_hash = content_hash(stored)
        output = step.output.from_stored(stored, step.output.class_version)
        exists = (facts.item.image_id, step.number, key) in projections.completions
        found.append(Import(step, key, output, stored, output_hash, upstream, exists))
        resolved[step.number] = Resolved(output_hash, None, output)
    return replace(progress, resolved=resolved), found


def imported_events(found: list[Import], run_id: str,
                    item: ImageInput) -> list[StepSelected | StepCompleted]:
    """What the ledger records of `imports`' outputs: a selection of the completion it holds
    already, else a completion whose `source` is where the input listed it."""
    return [StepSelected(run_id=run_id, image_id=item.image_id, step=imported.step.number,
                         fingerprint=imported.fingerprint) if imported.exists else
            StepCompleted(run_id=run_id, image_id=item.image_id, step=imported.step.number,
                          fingerprint=imported.fingerprint, output=imported.stored,
                          output_version=imported.step.output.class_version,
                          output_hash=imported.output_hash, upstream=imported.upstream,
                          source=item.source)
            for imported in found]


def completed(progress: Progress, step: str, result: Resolved) -> Progress:
    """The progress after `step` completed in this run with `result`."""
    return replace(progress, resolved={**progress.resolved, step: result})


def failed(progress: Progress, step: str) -> Progress:
    """The progress after `step` failed: the steps that need it will be skipped."""
    return replace(progress, decided=progress.decided | {step}, dead=progress.dead | {step})


def unusable(settings: Settings) -> tuple[list[Step], list[Step]]:
    """For an image that cannot be used (missing, corrupt): the selected steps that fail (those
    that need no other step), and the selected ones skipped because of it."""
    selected = settings.selected_steps
    return [s for s in selected if not s.needs], [s for s in selected if s.needs]
