"""What a pipeline step is: how it builds its prompt from an image and upstream outputs, and how it
parses the model's answer into its output. The runner does everything else (fingerprints, requests,
retries, events), the same way for every step of every pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auto_label.backends.config import Convention
from auto_label.ledger.events import ImageSeeded
from auto_label.ledger.fold import ImageState


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
        """Step outputs the input already holds (seeding from earlier annotations): step -> output.
        They live in `extra`, so that a change to them re-seeds the image."""
        return self.extra.get("imports", {})


@dataclass(frozen=True)
class Inputs:
    """What a pipeline reads before a run: the images, and what was skipped on the way."""

    items: list[ImageInput]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StepInput:
    """Everything a step may use to build its prompt and read its answer."""

    image_id: str
    caption: str | None
    extra: Mapping[str, Any]
    upstream: Mapping[str, dict[str, Any]]
    """step number -> that step's output"""
    convention: Convention
    sent_size: tuple[int, int]
    original_size: tuple[int, int]


@dataclass(frozen=True)
class Immediate:
    """A step's output known without asking the model (e.g. nothing to ground)."""

    output: dict[str, Any]


@dataclass(frozen=True)
class Step:
    number: str
    name: str
    """as in `pipeline_steps`, e.g. step0_expression_extraction"""
    task: str
    """prompt template key in `prompts.PROMPT_VERSIONS`"""
    needs: tuple[str, ...]
    build: Callable[[StepInput], str | Immediate]
    parse: Callable[[str, StepInput], dict[str, Any]]
    """raw model text -> output; raises ParseError"""
    json_output: bool = True
    """the answer is JSON (backends that have a JSON mode use it)"""
    uses_caption: bool = False
    uses_extra: tuple[str, ...] = ()
    """keys of the seed's `extra` that determine the answer"""


@dataclass(frozen=True)
class Pipeline:
    name: str
    steps: tuple[Step, ...]
    read_inputs: Callable[[Any], Inputs]
    """the spec block -> images to process; raises InputError"""
    to_record: Callable[[ImageState], dict[str, Any] | None]
    legacy_files: Callable[[ImageState], dict[str, str | None]] | None = None
    """an image's legacy text files: path relative to results_dir -> content (None: absent)"""
    check_seed: Callable[[ImageSeeded], list[str]] | None = None
    """problems with a seeded image's inputs that only its size reveals (one line each)"""

    def step(self, number: str) -> Step:
        for step in self.steps:
            if step.number == number:
                return step
        raise KeyError(number)

    def downstream(self, number: str) -> list[Step]:
        return [s for s in self.steps if number in s.needs]
