"""Fixtures for the VLM simulator's own tests.

The prompts come from pipelines/prompts.py (the contract between client and simulator), loaded
by file path so that these tests need nothing else of the client side; the simulator itself never
imports it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from simtest_helpers import scene_with_duplicates

from auto_label.sim import Scene, SimConfig, Simulator

PROMPTS_FILE = Path(__file__).resolve().parents[2] / "pipelines" / "prompts.py"


@pytest.fixture(scope="session")
def prompts() -> ModuleType:
    if not PROMPTS_FILE.exists():
        pytest.skip("pipelines/prompts.py is missing")
    spec = importlib.util.spec_from_file_location("_sim_contract_prompts", PROMPTS_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def scene() -> Scene:
    return scene_with_duplicates(0)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig()) as running:
        yield running
