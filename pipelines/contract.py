"""What a pipeline is, for the engine: its steps, how each builds its prompt and parses the answer
into a typed, versioned output, how its inputs are read and its records made.

The engine (`auto_label.pipelines.engine`) does everything else (planning, fingerprints, requests,
retries, events) the same way for every step of every pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from auto_label.boxes import Convention, to_pixels
from auto_label.ledger.events import ImageSeeded, StepCompleted
from auto_label.ledger.versioning import Versioned
from auto_label.pipelines.config import ImageData, WorkflowConfig


class StepOutput(BaseModel, Versioned):
    """A step's output: frozen, typed, versioned (`class_version` with `upcast_vN_vN+1` beside
    it). Stored as `step_completed.output` with its version in `output_version`; boxes in it are
    already in pixels of the original image."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def from_stored(cls, raw: Mapping[str, Any], version: int) -> Self:
        """A stored output of `version`, upcast and validated. Raises ValueError when it does not
        fit (pydantic's ValidationError included), NewerVersionError for a newer version."""
        return cls.model_validate(cls.upcast(dict(raw), version))

    def to_stored(self) -> dict[str, Any]:
        """The JSON-able dict that goes into the ledger (and into the output hash)."""
        return self.model_dump(mode="json")

    def found(self) -> int:
        """How many things the answer gave (boxes, expressions, descriptions): 0 is "nothing
        found", an answer in its own right, counted apart in summaries and status."""
        return 1


OutputT = TypeVar("OutputT", bound=StepOutput)


@dataclass(frozen=True)
class ImageInput:
    """One image to process, as read from the pipeline's inputs."""

    image_id: str
    path: Path
    """where to read the file"""
    image_path: str
    """the path as the record shows it"""
    caption: str | None
    source: str
    """where it was listed, for messages: `input.jsonl:12`"""
    extra: dict[str, Any] = field(default_factory=dict)
    width: int | None = None
    height: int | None = None

    @property
    def imports(self) -> dict[str, dict[str, Any]]:
        """Step outputs the input already holds (seeding from earlier annotations): step -> the
        output's stored form, at its model's current version. They live in `extra`, so that a
        change to them re-seeds the image."""
        imports = self.extra.get("imports", {})
        return imports if isinstance(imports, dict) else {}


class InputNote(str):
    """An `Inputs` warning that states a fact, not a problem (KITTI's DontCare rows, skipped as
    the format means them): shown with the warnings, yet a run with only notes still exits 0."""

    __slots__ = ()


@dataclass(frozen=True)
class Inputs:
    """What a pipeline reads before a run: the images, and what was skipped on the way."""

    items: list[ImageInput]
    warnings: list[str] = field(default_factory=list)
    """input problems skipped (a run with any does not exit 0), and `InputNote`s"""


@dataclass(frozen=True)
class InputScan:
    """A pipeline's inputs checked whole (before any request) but not held in memory: `count`
    images, the `warnings` (as `Inputs.warnings`), and `batches(size)`, which reads them again
    in order, at most `size` images per list: the items `read_inputs` gives. The input is read
    again by each call of `batches`; it raises InputError if it changed into something bad.
    `ids`: the image ids, when the scan was asked to keep them."""

    count: int
    warnings: list[str]
    batches: Callable[[int], Iterator[list[ImageInput]]]
    ids: frozenset[str] | None = None

    @classmethod
    def of(cls, inputs: Inputs, *, keep_ids: bool = False) -> InputScan:
        """The scan of inputs read whole (for a pipeline that has no `scan_inputs`)."""
        items = inputs.items
        ids = frozenset(item.image_id for item in items) if keep_ids else None

        def batches(size: int) -> Iterator[list[ImageInput]]:
            for start in range(0, len(items), size):
                yield items[start:start + size]

        return cls(len(items), inputs.warnings, batches, ids)

    def first(self, limit: int) -> InputScan:
        """The first `limit` images of this scan, in input order (a pilot); `limit` >= 0."""
        if limit >= self.count:
            return self
        whole = self.batches

        def batches(size: int) -> Iterator[list[ImageInput]]:
            left = limit
            for batch in whole(size):
                if left <= 0:
                    return
                yield batch[:left]
                left -= len(batch)

        ids = None if self.ids is None else frozenset(
            item.image_id for batch in batches(limit or 1) for item in batch)
        return InputScan(limit, self.warnings, batches, ids)


@dataclass(frozen=True)
class StepInput:
    """Everything a step may use to build its prompt and read its answer."""

    image_id: str
    caption: str | None
    extra: Mapping[str, Any]
    upstream: Mapping[str, StepOutput]
    """step number -> that step's output"""
    convention: Convention
    sent_size: tuple[int, int]
    """(width, height) of the image as sent to the model"""
    original_size: tuple[int, int]
    """(width, height) of the upright image: the frame every stored box is in"""
    observe: Callable[[Sequence[float], tuple[int, int]], None] | None = field(
        default=None, compare=False)
    """sees every box the model wrote, as written, with the size the image was sent at"""

    def to_pixels(self, values: Sequence[float]) -> tuple[float, float, float, float]:
        """A box as the model wrote it -> (x1, y1, x2, y2) floats in pixels of the upright image
        (`boxes.to_pixels`; the observer sees it first). Raises ValueError for a non-box."""
        if self.observe is not None:
            self.observe(values, self.sent_size)
        return to_pixels(values, self.convention, self.sent_size, self.original_size)

    def output(self, step: str, model: type[OutputT]) -> OutputT:
        """The upstream output of `step`, as the model it must be (TypeError otherwise)."""
        value = self.upstream[step]
        if not isinstance(value, model):
            raise TypeError(f"step {step}'s output is a {type(value).__name__}, "
                            f"not a {model.__name__}")
        return value


@dataclass(frozen=True)
class Immediate:
    """A step's output known without asking the model (e.g. nothing to ground)."""

    output: StepOutput


@dataclass(frozen=True)
class PromptVersion:
    """A prompt template's identity: part of every fingerprint of its step. Editing the text means
    bumping `version` (the contract tests pin each version's text through `example`)."""

    task: str
    """e.g. grounding.extract"""
    version: int
    example: Callable[[], str]
    """the template rendered with fixed arguments (every box convention where boxes appear)"""


@dataclass(frozen=True)
class Step:
    number: str
    name: str
    """as in `pipeline_steps`, e.g. step0_expression_extraction"""
    prompt: PromptVersion
    needs: tuple[str, ...]
    output: type[StepOutput]
    build: Callable[[StepInput], str | Immediate]
    """the prompt, or the output when it is known without asking. A `templating.Prompt` (a str
    that knows its template and values) is recorded as its template's key and values; a plain
    str is recorded whole, as the value of the template `text`"""
    parse: Callable[[str, StepInput], StepOutput]
    """raw model text -> output; raises ParseError"""
    json_output: bool = True
    """the answer is JSON (backends that have a JSON mode use it)"""
    uses_caption: bool = False
    uses_extra: tuple[str, ...] = ()
    """keys of the seed's `extra` that determine the answer"""
    parser_version: int = 1
    """the version of `parse`: raise it when a change reads some stored answer differently. It
    is part of the completion's fingerprint (not the request's), so `auto_label replay` and the
    next `generate` re-read the stored answers with the new parser instead of asking again"""

    def stored_output(self, event: StepCompleted) -> StepOutput:
        """The typed output of one of this step's completions, upcast from its version."""
        return self.output.from_stored(event.output, event.output_version)


@dataclass(frozen=True)
class Pipeline:
    name: str
    steps: tuple[Step, ...]
    workflow: type[WorkflowConfig]
    data: type[ImageData]
    read_inputs: Callable[[Any], Inputs]
    """the block's data config (an instance of `data`) -> images to process; raises InputError"""
    to_record: Callable[[ImageSeeded, str, Mapping[str, StepOutput]], dict[str, Any]]
    """(seed, image_id, the valid current outputs by step) -> the unified record"""
    check_seed: Callable[[ImageSeeded], list[str]] | None = None
    """problems with a seeded image's inputs that only its size reveals (one line each)"""
    scan_inputs: Callable[[Any, bool], InputScan] | None = None
    """(data config, keep_ids) -> the images `read_inputs` gives, checked in one pass and read
    again in batches (memory flat in their number); None: `scan` reads them whole"""

    def scan(self, data: Any, *, keep_ids: bool = False) -> InputScan:
        """The inputs as an `InputScan` (`scan_inputs`, else `read_inputs` whole), with their ids
        when `keep_ids`; raises InputError as `read_inputs` does."""
        if self.scan_inputs is not None:
            return self.scan_inputs(data, keep_ids)
        return InputScan.of(self.read_inputs(data), keep_ids=keep_ids)

    def step(self, number: str) -> Step:
        for step in self.steps:
            if step.number == number:
                return step
        raise KeyError(number)

    def downstream(self, number: str) -> list[Step]:
        return [s for s in self.steps if number in s.needs]

    def depth(self, step: Step) -> int:
        """1 for a step that needs none, else one more than its deepest upstream step."""
        return 1 + max((self.depth(self.step(n)) for n in step.needs), default=0)
