"""Hash contracts, pinned (like llm's tests/test_canonical.py): a fingerprint's value and every
prompt's text against its version. A failure here is not a flaky test: it means a change would
re-ask every image (a fingerprint moved) or silently reuse answers to an older question (a prompt
changed without a new version). Bump the version and add a pin; never edit a pinned line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from auto_label.ledger.fingerprint import canonical_json, content_hash
from auto_label.pipelines.contract import ImageInput
from auto_label.pipelines.engine.planning import ImageFacts, Settings, fingerprint
from auto_label.pipelines.registry import PIPELINES

# (task, version) -> sha256 of the template's example rendering. Append-only.
PROMPT_PINS = {
    ("grounding.extract", 1):
        "sha256:1a2a4ffedf6f018419353aba270febcf35ac494f32a8caa8eed15c300edfeb0b",
    ("grounding.ground", 1):
        "sha256:bcb8b176c58f36de1c79ede16dca59dacaa0c8077cec4c6dfa6c098e3c45ab41",
    ("referring.region", 1):
        "sha256:852837473b9f2cf4432962147ff87395d5adc59d73f3faaaf4b4f94abb603649",
    ("referring.caption", 1):
        "sha256:71edb9214bdd476a32dfe1016256f0126fd9555d29ee41c6dc0d387aaf4c2c72",
    ("referring.group", 1):
        "sha256:6e72c8e6c766df869d96a6814f53abf090fd9bb55a08200b635ed3af4439f370",
    ("referring.verify", 1):
        "sha256:36c9d677730297b9edca3d7f416b22a3664aef397e3e1ee784a329aaf241b997",
}

STEPS = [pytest.param(step, id=f"{pipeline.name}-{step.number}")
         for pipeline in PIPELINES.values() for step in pipeline.steps]


@pytest.mark.parametrize("step", STEPS)
def test_every_prompt_text_is_pinned_to_its_version(step):
    prompt = step.prompt
    rendered = "sha256:" + hashlib.sha256(prompt.example().encode("utf-8")).hexdigest()
    pinned = PROMPT_PINS.get((prompt.task, prompt.version))
    assert pinned is not None, f"{prompt.task} v{prompt.version} has no pin: add {rendered}"
    assert rendered == pinned, (
        f"the text of {prompt.task} changed but its version is still {prompt.version}: bump it "
        f"to {prompt.version + 1} and pin {rendered}")


def test_prompt_tasks_are_unique_across_pipelines():
    tasks = [step.prompt.task for pipeline in PIPELINES.values() for step in pipeline.steps]
    assert len(tasks) == len(set(tasks))


def test_canonical_json_and_its_hash_are_pinned():
    value = {"b": 1, "a": [1.5, "é", None, True], "c": {"z": 0, "y": -2}}
    assert canonical_json(value) == '{"a":[1.5,"é",null,true],"b":1,"c":{"y":-2,"z":0}}'
    assert content_hash(value) == \
        "sha256:08f0cba27c640a3ab3eb38fcd97ff93131367c1bd3768191bb8c4934bd5241f0"


def _grounding_fingerprints() -> tuple[str, str]:
    pipeline = PIPELINES["image_grounding"]
    settings = Settings(pipeline, frozenset({"0", "1"}), False, {
        "backend": "openai", "model": "sim-vlm", "temperature": 0.0, "max_tokens": 4096,
        "coordinates": "xyxy_pixel", "max_image_side": 0})
    facts = ImageFacts(ImageInput(
        image_id="img", path=Path("/d/img.png"), image_path="/d/img.png",
        caption="A red car near a tree.", source="input.jsonl:1"), "a" * 64)
    return (fingerprint(settings, facts, pipeline.step("0"), {}),
            fingerprint(settings, facts, pipeline.step("1"), {"0": "sha256:" + "b" * 64}))


def test_grounding_fingerprints_are_pinned():
    assert _grounding_fingerprints() == (
        "sha256:6e47a01defdac32427903a973e050872e44a38309958189a6a5a6e7db8b52849",
        "sha256:8aa79eb02b2eee60d8d205ee8ee873a04d33de8eb9b9be1e807ebfd37c46a4ce")


def test_referring_fingerprints_are_pinned():
    pipeline = PIPELINES["image_referring_expression"]
    settings = Settings(pipeline, frozenset({"0", "1", "2", "3"}), False,
                        {"backend": "gemini", "model": "gemini-sim"})
    facts = ImageFacts(ImageInput(
        image_id="img", path=Path("/d/img.png"), image_path="/d/img.png", caption=None,
        source="labels/img.txt",
        extra={"kitti": [[1.0, 2.0, 30.0, 40.0, "Car"]], "kitti_lines": ["labels/img.txt:1"]}),
        "c" * 64)
    upstream = {"0": "sha256:" + "d" * 64, "1": "sha256:" + "e" * 64}
    assert fingerprint(settings, facts, pipeline.step("0"), {}) == \
        "sha256:cd0a0f2b5ae5f2afd083a838de968be51ebaf9503f90002700aec6db942b6a97"
    assert fingerprint(settings, facts, pipeline.step("2"), upstream) == \
        "sha256:f9a2386aedf58bde9421ccdf9287d3ee6d31bc16bb46e3b349cb0363ee5b52ed"


@pytest.mark.parametrize("step", STEPS)
def test_every_step_output_model_has_a_complete_upcaster_chain(step):
    assert step.output.class_version >= 1
    assert step.output.missing_upcasters() == []
