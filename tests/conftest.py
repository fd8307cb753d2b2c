"""Shared fixtures: the VLM simulator (a real HTTP server on 127.0.0.1) and spec helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from auto_label.sim import SimConfig, Simulator

SIM_KEY = "sk-sim-test-key-0123456789"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(seed=3, api_key=SIM_KEY)) as server:
        yield server


@pytest.fixture
def make_sim() -> Iterator[Any]:
    started: list[Simulator] = []

    def make(**config: Any) -> Simulator:
        config.setdefault("api_key", SIM_KEY)
        server = Simulator(SimConfig(**config)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
