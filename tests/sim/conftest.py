"""Fixtures for the VLM simulator's own tests.

The prompts are the pipelines' own templates (the contract between client and simulator: the
simulator detects its task from their wording). These tests import them; the simulator itself
never does.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from simtest_helpers import scene_with_duplicates

from auto_label.pipelines.grounding import prompts as grounding_prompts
from auto_label.pipelines.referring import prompts as referring_prompts
from auto_label.pipelines.registry import PIPELINES
from auto_label.sim import Scene, SimConfig, Simulator


@pytest.fixture(scope="session")
def prompts() -> SimpleNamespace:
    """Every template of both pipelines, and the tasks the registered pipelines' steps use."""
    return SimpleNamespace(
        extract_expressions=grounding_prompts.extract_expressions,
        ground_expressions=grounding_prompts.ground_expressions,
        describe_regions=referring_prompts.describe_regions,
        caption_image=referring_prompts.caption_image,
        group_expressions=referring_prompts.group_expressions,
        verify_expressions=referring_prompts.verify_expressions,
        TASKS={step.prompt.task for pipeline in PIPELINES.values() for step in pipeline.steps},
    )


@pytest.fixture(scope="session")
def scene() -> Scene:
    return scene_with_duplicates(0)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig()) as running:
        yield running
