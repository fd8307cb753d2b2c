"""The request path skips what cannot matter, and nothing else (issue 12, throughput).

An image the ledger has never seeded has no stored answers (a request is recorded only after its
image's seed, and the writer commits in order), so its steps are asked without looking for any;
an image the ledger knows still has its stored answers read with today's parser first.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest
from support import grounding_spec, read_jsonl

import auto_label.pipelines.engine.runner as runner
from auto_label.api import generate
from auto_label.ledger.store import Ledger
from auto_label.pipelines.contract import Pipeline
from auto_label.pipelines.registry import PIPELINES
from auto_label.sim.datasets import write_grounding_dataset


def _count_lookups(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """image_id -> how many times the runner looked for its stored answers (the real lookup
    still runs)."""
    looked: Counter[str] = Counter()
    real = runner.stored_answers

    def counting(ledger: Ledger, image_id: str, step: str, request: str) -> Any:
        looked[image_id] += 1
        return real(ledger, image_id, step, request)

    monkeypatch.setattr(runner, "stored_answers", counting)
    return looked


def _raise_parser_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline: Pipeline = PIPELINES["image_grounding"]
    steps = tuple(dataclasses.replace(s, parser_version=2) for s in pipeline.steps)
    monkeypatch.setitem(PIPELINES, "image_grounding", dataclasses.replace(pipeline, steps=steps))


def test_new_images_are_asked_without_a_lookup_and_known_ones_reread(tmp_path, sim,
                                                                     monkeypatch):
    data = write_grounding_dataset(tmp_path / "data", 5, seed=31)
    out = tmp_path / "out"
    looked = _count_lookups(monkeypatch)
    pilot = generate(grounding_spec(out, data.root, sim.openai_base_url), limit=3)
    assert pilot.complete and pilot.requests == 6
    assert looked == Counter()  # three images new to the ledger: nothing stored to read
    with Ledger.open(out, create=False) as ledger:
        known = {e.image_id for _, e in ledger.events(["image_seeded"])}
    assert len(known) == 3

    # today's parsers at a new version: the known images' answers are read again (no request),
    # the two new images are asked, and only the known ones were looked up
    _raise_parser_versions(monkeypatch)
    sim.reset_counts()
    full = generate(grounding_spec(out, data.root, sim.openai_base_url))
    assert full.complete and full.requests == 4
    assert full.counts["0"]["completed"] == 5 and full.counts["1"]["completed"] == 5
    assert looked == Counter({image_id: 2 for image_id in known})
    assert len(read_jsonl(out / "annotations.jsonl")) == 5

    # and an unchanged rerun asks nothing and looks nothing up
    looked.clear()
    again = generate(grounding_spec(out, data.root, sim.openai_base_url))
    assert again.requests == 0 and looked == Counter()
    assert again.counts["0"] == {"cached": 5} and again.counts["1"] == {"cached": 5}
