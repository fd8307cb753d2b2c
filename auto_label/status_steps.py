"""How far each step of a results_dir's pipeline got, against the input its latest generate run
names (read again now): done, failed, blocked by a failed step it needs, and really pending.

Part of `auto_label status` (`auto_label.status` composes it into `LedgerStatus`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from auto_label.errors import AutoLabelError
from auto_label.ledger.events import RunStarted
from auto_label.ledger.status_queries import LatestOutcome
from auto_label.pipelines.config import ImageData
from auto_label.pipelines.contract import InputNote, Pipeline

PATH_SUFFIXES = ("_dir", "_root", "_jsonl", "_json", "_path", "_file")
"""a `str` setting of a pipeline's data block whose name ends so is a path (a `Path` one always
is): relative ones resolve against the directory the run started in"""


@dataclass(frozen=True)
class InputSize:
    """The input the latest generate run's spec names, read again now."""

    images: int | None
    """images it lists (None: it cannot be read now; `problem` says why)"""
    seeded: int | None
    """of them, images the ledger has seeded"""
    skipped: int = 0
    """problems the reader skipped (an image without labels, a malformed row...)"""
    problem: str | None = None
    """why the input cannot be read now (one line), else None"""


@dataclass(frozen=True)
class StepStatus:
    """One step of the pipeline: how many images have got how far. An image of the input counts
    in at most one of `done`, `failed`, `blocked` and `pending`."""

    number: str
    name: str
    """as `generate` names it, e.g. step0_expression_extraction"""
    selected: bool
    """among the steps of the latest generate run"""
    done: int
    """images whose record holds a completion of this step"""
    nothing_found: int
    """of `done`, the completions that found nothing (an explicit empty answer)"""
    failed: int
    """images whose latest attempt at this step failed"""
    pending: int | None
    """images of the input not yet tried: neither done, failed nor blocked (None: the input
    cannot be read)"""
    blocked: int = 0
    """images neither done nor failed that cannot run: a step this one needs (directly or
    through another) has a failure as its latest outcome for them"""
    blocked_by: dict[str, int] = field(default_factory=dict)
    """of `blocked`: the failed step they wait on -> images (`generate` skips them: "needs step
    0, which failed")"""


def read_input(started: RunStarted | None,
               pipeline: Pipeline | None) -> tuple[set[str] | None, InputSize]:
    """The image ids of the input the run's spec names, read again now (`images` and `seeded`
    left None for the caller), or why not (`problem`, one line). Relative paths of the spec's
    data block resolve against the directory the run started in (`RunStarted.cwd`; runs that
    did not record it: against the current one), without changing directory."""
    if started is None:
        return None, InputSize(None, None, problem="no generate run has been recorded yet")
    if pipeline is None:
        return None, InputSize(None, None, problem=f"unknown pipeline {started.pipeline!r}")
    block = started.spec.get(pipeline.name)
    try:
        data = pipeline.data.model_validate((block or {}).get("data") or {})
        scan = pipeline.scan(resolve_paths(data, started.cwd), keep_ids=True)
    except ValidationError as exc:
        error = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        problem = f"the run's {pipeline.name}.data no longer validates ({where}: {error['msg']})"
        return None, InputSize(None, None, problem=problem)
    except (AutoLabelError, OSError, ValueError) as exc:
        line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        return None, InputSize(None, None, problem=line)
    problems = [w for w in scan.warnings if not isinstance(w, InputNote)]
    return set(scan.ids or ()), InputSize(None, None, len(problems))


def resolve_paths(data: ImageData, cwd: str | None) -> ImageData:
    """`data` with its relative paths (its `Path` settings, and its `str` ones named like a
    path: `PATH_SUFFIXES`) made absolute under `cwd`; unchanged when `cwd` is None. `~` paths
    are left for the reader to expand."""
    if cwd is None:
        return data
    update: dict[str, str | Path] = {}
    for name in type(data).model_fields:
        value = getattr(data, name)
        if not (isinstance(value, Path) or (isinstance(value, str) and value
                                            and name.endswith(PATH_SUFFIXES))):
            continue
        if str(value).startswith("~") or Path(value).is_absolute():
            continue
        joined = Path(cwd) / value
        update[name] = joined if isinstance(value, Path) else str(joined)
    return data.model_copy(update=update) if update else data


def step_names(pipeline: Pipeline | None) -> dict[str, str]:
    """step number -> the name `generate` uses, in the pipeline's order ({} when unknown)."""
    return {s.number: s.name for s in pipeline.steps} if pipeline is not None else {}


def step_statuses(pipeline: Pipeline | None, started: RunStarted | None,
                  outcomes: list[LatestOutcome], done: dict[str, int],
                  current: dict[str, set[str]], nothing_found: dict[str, int],
                  input_ids: set[str] | None) -> list[StepStatus]:
    """Every step of the pipeline in its order (then steps the ledger has that it does not
    name), counted from the failed latest outcomes, the current completions (step -> images,
    `done`; step -> image ids in `current`, of the images that matter: every image in
    `outcomes`, and every image done that the input does not list), the completions that found
    nothing (step -> images) and the input's image ids (None: unknown)."""
    names = step_names(pipeline)
    failed: dict[str, set[str]] = {}
    for outcome in outcomes:
        if outcome.failed:
            failed.setdefault(outcome.step, set()).add(outcome.image_id)
    blocked = _blocked(pipeline, current, failed)
    numbers = list(names) + sorted((set(done) | set(failed)) - set(names))
    selected = set(started.steps) if started is not None else set()
    steps = []
    for number in numbers:
        known, bad = current.get(number, set()), failed.get(number, set())
        waiting = blocked.get(number, {})
        by: dict[str, int] = {}
        for root in waiting.values():
            by[root] = by.get(root, 0) + 1
        pending = None
        if input_ids is not None:  # the input's images neither done, failed nor blocked
            listed_done = done.get(number, 0) - len(known - input_ids)
            pending = (len(input_ids) - listed_done - len((bad - known) & input_ids)
                       - len(set(waiting) & input_ids))
        steps.append(StepStatus(
            number=number, name=names.get(number, number), selected=number in selected,
            done=done.get(number, 0), nothing_found=nothing_found.get(number, 0),
            failed=len(bad), pending=pending, blocked=len(waiting),
            blocked_by=dict(sorted(by.items()))))
    return steps


def _blocked(pipeline: Pipeline | None, current: dict[str, set[str]],
             failed: dict[str, set[str]]) -> dict[str, dict[str, str]]:
    """step -> {image: the failed step it waits on} for the images neither done nor failed at
    the step that cannot run: a step it needs failed last, or is itself blocked (as `generate`
    plans: "needs step N, which failed")."""
    if pipeline is None:
        return {}
    needs = {s.number: s.needs for s in pipeline.steps}
    found: dict[str, dict[str, str]] = {}

    def waits_on(number: str, image: str, seen: frozenset[str]) -> str | None:
        if number in found:
            return found[number].get(image)
        for need in needs.get(number, ()):
            if need in seen:
                continue  # a cycle would be the pipeline's bug: never loop on it
            if image in failed.get(need, set()):
                return need
            if image not in current.get(need, set()):
                root = waits_on(need, image, seen | {need})
                if root is not None:
                    return root
        return None

    images = set().union(*failed.values()) if failed else set()
    for number in needs:  # a step is only blocked for images that failed some step
        blocked: dict[str, str] = {}
        for image in sorted(images):
            if image in current.get(number, set()) or image in failed.get(number, set()):
                continue
            root = waits_on(number, image, frozenset({number}))
            if root is not None:
                blocked[image] = root
        found[number] = blocked
    return found
