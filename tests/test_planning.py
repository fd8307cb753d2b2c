"""Planning as a pure function: projections + inputs + settings -> ask, reuse or skip, with their
fingerprints. No threads, no ledger, no backend."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from auto_label.ledger.fingerprint import content_hash
from auto_label.ledger.projections import input_hash
from auto_label.ledger.queries import CurrentRow, ImageRow
from auto_label.pipelines.contract import ImageInput
from auto_label.pipelines.engine import planning
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
from auto_label.pipelines.grounding import IMAGE_GROUNDING
from auto_label.pipelines.referring import IMAGE_REFERRING

MODEL = {"backend": "openai", "model": "m", "temperature": 0.0}
ITEM = ImageInput(image_id="img", path=Path("/d/img.png"), image_path="/d/img.png",
                  caption="A red car.", source="in.jsonl:1")
FACTS = ImageFacts(ITEM, "a" * 64)


def grounding(steps=("0", "1"), force=False, model=MODEL) -> Settings:
    return Settings(IMAGE_GROUNDING, frozenset(steps), force, model)


def referring(steps=("0", "1", "2", "3")) -> Settings:
    return Settings(IMAGE_REFERRING, frozenset(steps), False, MODEL)


def kinds(decisions) -> list[tuple[str, str]]:
    return [(type(d).__name__, d.step.number) for d in decisions]


def fp(run: Settings, step: str, upstream=None, facts=FACTS) -> str:
    return planning.fingerprint(run, facts, run.pipeline.step(step), upstream or {})


def test_a_new_image_asks_step_0_then_step_1_on_its_output():
    run = grounding()
    progress, decisions = planning.decide(FACTS, Progress(), run, Projections())
    assert kinds(decisions) == [("Ask", "0")]
    assert decisions[0].fingerprint == fp(run, "0")
    progress = planning.completed(progress, "0", Resolved("sha256:out0"))
    progress, decisions = planning.decide(FACTS, progress, run, Projections())
    assert kinds(decisions) == [("Ask", "1")]
    assert decisions[0].upstream == {"0": "sha256:out0"}
    assert decisions[0].fingerprint == fp(run, "1", {"0": "sha256:out0"})
    assert planning.decide(FACTS, progress, run, Projections())[1] == []  # decided once


def test_a_cached_step_resolves_at_once_and_its_downstream_is_decided_in_the_same_call():
    run = grounding()
    key0 = fp(run, "0")
    key1 = fp(run, "1", {"0": "sha256:out0"})
    projections = Projections(
        completions={("img", "0", key0): (7, "sha256:out0"), ("img", "1", key1): (9, "h1")},
        current={("img", "0"): CurrentRow(key0, 7, "sha256:out0"),
                 ("img", "1"): CurrentRow("sha256:other", 3, "h")})
    progress, decisions = planning.decide(FACTS, Progress(), run, projections)
    assert kinds(decisions) == [("Reuse", "0"), ("Reuse", "1")]
    assert [d.select for d in decisions if isinstance(d, Reuse)] == [False, True]
    assert progress.resolved["1"] == Resolved("h1", 9)


def test_force_reprocess_asks_even_where_a_completion_exists():
    run = grounding(force=True)
    projections = Projections(completions={("img", "0", fp(run, "0")): (7, "sha256:out0")})
    assert kinds(planning.decide(FACTS, Progress(), run, projections)[1]) == [("Ask", "0")]


def test_a_step_not_selected_is_read_from_the_current_completion_or_skips_what_needs_it():
    run = grounding(steps=("1",))
    current = Projections(current={("img", "0"): CurrentRow("sha256:f0", 4, "sha256:out0")})
    _, decisions = planning.decide(FACTS, Progress(), run, current)
    assert kinds(decisions) == [("Ask", "1")] and decisions[0].upstream == {"0": "sha256:out0"}
    assert kinds(planning.decide(FACTS, Progress(), run, Projections())[1]) == [("Skip", "1")]


def test_a_failure_skips_exactly_the_steps_that_need_it():
    run = referring()
    progress, decisions = planning.decide(FACTS, Progress(), run, Projections())
    assert kinds(decisions) == [("Ask", "0"), ("Ask", "1")]  # side by side
    progress = planning.failed(progress, "0")
    progress, decisions = planning.decide(FACTS, progress, run, Projections())
    assert kinds(decisions) == [("Skip", "2"), ("Skip", "3")]
    progress = planning.completed(progress, "1", Resolved("sha256:caption"))
    assert planning.decide(FACTS, progress, run, Projections())[1] == []


def test_fingerprints_follow_what_determines_the_answer():
    run = grounding()
    other_caption = ImageFacts(ImageInput(**{**ITEM.__dict__, "caption": "A blue car."}),
                               "a" * 64)
    other_image = ImageFacts(ITEM, "b" * 64)
    base0, base1 = fp(run, "0"), fp(run, "1", {"0": "h"})
    assert fp(run, "0", facts=other_caption) != base0  # step 0 reads the caption
    assert fp(run, "1", {"0": "h"}, facts=other_caption) == base1  # step 1 does not
    assert fp(run, "0", facts=other_image) != base0
    assert fp(grounding(model={**MODEL, "temperature": 0.5}), "0") != base0
    assert fp(run, "1", {"0": "h2"}) != base1


def test_an_unchanged_seed_is_not_read_again():
    stat = os.stat_result((0o644, 0, 0, 1, 0, 0, 123, 0, 0, 0))  # size 123, mtime 0
    row = ImageRow("img", 1, "/d/img.png", 123, stat.st_mtime_ns, "a" * 64, 64, 48,
                   input_hash(ITEM.caption, planning.seed_extra(ITEM)), "a" * 64, "v1:exif=apply")
    assert planning.unchanged(row, ITEM, stat, "v1:exif=apply")
    assert not planning.unchanged(row, ITEM, None, "v1:exif=apply")  # the file is gone
    grown = os.stat_result((0o644, 0, 0, 1, 0, 0, 124, 0, 0, 0))
    assert not planning.unchanged(row, ITEM, grown, "v1:exif=apply")
    recaptioned = ImageInput(**{**ITEM.__dict__, "caption": "Another caption."})
    assert not planning.unchanged(row, recaptioned, stat, "v1:exif=apply")
    assert not planning.unchanged(row, ITEM, stat, "v1:exif=ignore")  # ingested another way
    old = ImageRow(*[*row.__dict__.values()][:9], None, None)  # seeded by 0.1.0
    assert not planning.unchanged(old, ITEM, stat, "v1:exif=apply")


def test_imported_outputs_feed_later_steps_and_an_existing_one_is_only_selected():
    stored = {"regions": [{"bbox": [1, 2, 30, 40], "type": "Car", "color": "red",
                           "description": "a red car"}], "undescribed": 0}
    item = ImageInput(image_id="img", path=Path("/d/img.png"), image_path="/d/img.png",
                      caption=None, source="ann.jsonl:1",
                      extra={"kitti": [[1, 2, 30, 40, "Car"]], "imports": {"0": stored}})
    facts = ImageFacts(item, "c" * 64)
    run = referring(steps=("1", "2"))
    progress, found = planning.imports(facts, Progress(), run, Projections())
    assert [(i.step.number, i.exists) for i in found] == [("0", False)]
    assert found[0].output_hash == content_hash(stored)
    assert found[0].output.to_stored() == stored
    key = found[0].fingerprint
    _, again = planning.imports(facts, Progress(), run,
                                Projections(completions={("img", "0", key): (5, "x")}))
    assert again[0].exists
    progress, decisions = planning.decide(facts, progress, run, Projections())
    assert kinds(decisions) == [("Ask", "1")]  # step 2 waits for the caption
    assert planning.unusable(run) == ([run.pipeline.step("1")], [run.pipeline.step("2")])


SELECTIONS = [(IMAGE_GROUNDING, ("0", "1")), (IMAGE_GROUNDING, ("0",)), (IMAGE_GROUNDING, ("1",)),
              (IMAGE_REFERRING, ("0", "1", "2", "3")), (IMAGE_REFERRING, ("2", "3")),
              (IMAGE_REFERRING, ("0", "1", "2")), (IMAGE_REFERRING, ("1", "3"))]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SELECTIONS), st.lists(st.booleans(), min_size=8, max_size=8),
       st.booleans())
def test_every_selected_step_is_decided_exactly_once(selection, fails, resolved_before):
    pipeline, steps = selection
    run = Settings(pipeline, frozenset(steps), False, MODEL)
    current = {("img", s.number): CurrentRow(f"sha256:f{s.number}", 1, f"sha256:o{s.number}")
               for s in pipeline.steps if resolved_before}
    projections = Projections(current=current)
    progress, decisions = planning.decide(FACTS, Progress(), run, projections)
    seen = list(decisions)
    outcome = iter(fails)
    while asks := [d for d in decisions if isinstance(d, Ask)]:
        decisions = []
        for ask in asks:
            if next(outcome, False):
                progress = planning.failed(progress, ask.step.number)
            else:
                progress = planning.completed(progress, ask.step.number,
                                              Resolved(f"sha256:new{ask.step.number}"))
            progress, more = planning.decide(FACTS, progress, run, projections)
            decisions.extend(more)
            seen.extend(more)
    decided = [d.step.number for d in seen]
    assert sorted(decided) == sorted(steps)  # each selected step once, no other
    for skip in (d for d in seen if isinstance(d, Skip)):
        needs = skip.step.needs
        assert any(n in progress.dead or n not in run.selected for n in needs)
