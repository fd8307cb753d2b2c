"""The spec: defaults, overrides, and one-line errors naming the key and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from auto_label.backends.profiles import model_frame
from auto_label.errors import SpecError
from auto_label.spec_loader import load_spec, parse_override

EXAMPLE = textwrap.dedent("""\
    results_dir: /path/to/results
    autolabel_type: "image_grounding"

    image_grounding:
      vlm:
        backend: "gemini"
        gemini:
          api_key: ""                       # Set the GOOGLE_API_KEY environment variable
          model: "gemini-3.1-flash-lite-preview"
          media_resolution: "MEDIA_RESOLUTION_HIGH"
          temperature: 0.3
          max_output_tokens: 8192
          timeout: 120
      workflow:
        steps: ["0", "1"]
        max_workers: 4
        force_reprocess: false
      data:
        input_jsonl: /path/to/input.jsonl   # One object per line with image_path and caption
        image_root: ""                      # Optional prefix for relative image_path values
""")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_the_documented_example_loads_with_its_values_and_defaults(tmp_path):
    spec = load_spec(write(tmp_path, EXAMPLE))
    block = spec.image_grounding
    assert spec.autolabel_type == "image_grounding"
    assert block.vlm.backend == "gemini"
    assert block.vlm.gemini.media_resolution == "MEDIA_RESOLUTION_HIGH"
    # coordinates left out: the model's profile decides (Gemini: yxyx_1000)
    assert block.vlm.gemini.coordinates is None
    assert model_frame(block.vlm.gemini, block.vlm.gemini.model).coordinates == "yxyx_1000"
    assert block.vlm.openai.temperature == 0.7
    assert block.vlm.openai.max_tokens == 4096
    assert block.vlm.openai.timeout == 60
    assert block.vlm.openai.coordinates is None
    assert block.vlm.openai.DEFAULT_COORDINATES == "xyxy_pixel"
    assert block.data.exif_orientation == "apply" and block.data.max_image_pixels == 89_478_485
    assert block.workflow.steps == ["0", "1"]
    assert str(block.data.input_jsonl) == "/path/to/input.jsonl"


def test_defaults_of_the_referring_block():
    spec = load_spec(None, ["results_dir=/r", "autolabel_type=image_referring_expression",
                            "image_referring_expression.data.image_dir=/i",
                            "image_referring_expression.data.kitti_label_dir=/k"])
    block = spec.image_referring_expression
    assert block.workflow.steps == ["0", "1", "2", "3"]
    assert block.workflow.output_format == "jsonl"
    assert block.vlm.gemini.model == "gemini-3.1-flash-lite-preview"
    assert block.vlm.gemini.temperature == 0.3
    assert block.vlm.gemini.max_output_tokens == 8192
    assert block.vlm.gemini.timeout == 120
    assert block.vlm.gemini.media_resolution == "MEDIA_RESOLUTION_LOW"


def test_overrides_set_typed_values_in_nested_blocks(tmp_path):
    spec = load_spec(write(tmp_path, EXAMPLE), [
        "results_dir=/x",
        "image_grounding.workflow.max_workers=8",
        "image_grounding.vlm.backend=openai",
        "image_grounding.vlm.openai.base_url=http://127.0.0.1:9/v1",
        "image_grounding.workflow.steps=[0]",
        "image_grounding.workflow.force_reprocess=true",
    ])
    assert str(spec.results_dir) == "/x"
    assert spec.image_grounding.workflow.max_workers == 8
    assert spec.image_grounding.vlm.backend == "openai"
    assert spec.image_grounding.vlm.openai.base_url == "http://127.0.0.1:9/v1"
    assert spec.image_grounding.workflow.steps == ["0"]
    assert spec.image_grounding.workflow.force_reprocess is True


@pytest.mark.parametrize(("text", "overrides", "expected"), [
    (EXAMPLE.replace("max_workers: 4", "max_worker: 4"), [],
     "spec.yaml:16: image_grounding.workflow.max_worker: unknown key"),
    (EXAMPLE.replace("max_workers: 4", "max_workers: four"), [],
     "spec.yaml:16: image_grounding.workflow.max_workers: expected a whole number"),
    (EXAMPLE.replace('steps: ["0", "1"]', 'steps: ["0", "7"]'), [],
     "spec.yaml:15: image_grounding.workflow.steps: unknown step '7'"),
    (EXAMPLE.replace("    input_jsonl: /path/to/input.jsonl", "    input_jsonl_path: /x"), [],
     "spec.yaml:19: image_grounding.data.input_jsonl_path: unknown key"),
    (EXAMPLE.replace('backend: "gemini"', 'backend: "claude"'), [],
     "spec.yaml:6: image_grounding.vlm.backend: expected 'gemini' or 'openai'"),
    (EXAMPLE, ["image_grounding.workflow.max_workers=lots"],
     "override 'image_grounding.workflow.max_workers=lots': "
     "image_grounding.workflow.max_workers: expected a whole number"),
    (EXAMPLE, ["image_grounding.vlm.openai.colour=red"],
     "override 'image_grounding.vlm.openai.colour=red': image_grounding.vlm.openai.colour: "
     "unknown key"),
    (EXAMPLE.replace("results_dir: /path/to/results\n", ""), [],
     "results_dir: required key is missing"),
    (EXAMPLE, ["vlm.openai.coordinates=xyxy_1000"],  # the block left out: the override is named
     "override 'vlm.openai.coordinates=xyxy_1000': vlm: unknown key"),
    (EXAMPLE + "image_grounding:\n  vlm:\n    backend: openai\n", [],
     "spec.yaml:21: image_grounding: key given twice (first at line 4); merge the two"),
    (EXAMPLE.replace('autolabel_type: "image_grounding"',
                     'autolabel_type: "image_referring_expression"'), [],
     "autolabel_type is 'image_referring_expression' but the spec has no "
     "image_referring_expression block"),
])
def test_bad_specs_give_one_line_naming_the_key(tmp_path, text, overrides, expected):
    with pytest.raises(SpecError) as raised:
        load_spec(write(tmp_path, text), overrides)
    message = str(raised.value)
    assert "\n" not in message
    assert expected in message


def test_missing_and_non_yaml_spec_files(tmp_path):
    with pytest.raises(SpecError, match=r"nope.yaml: spec file not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match=r"spec.yaml:2: not valid YAML"):
        load_spec(write(tmp_path, "a: [1, 2\nb: {"))
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(write(tmp_path, "- just\n- a list\n"))


@pytest.mark.parametrize("text", ["novalue", "=3", "a..b=1", "9a=1"])
def test_bad_override_syntax(text):
    with pytest.raises(SpecError, match=r"expected key\.sub=value"):
        parse_override(text)


def test_an_api_key_override_is_never_echoed(tmp_path):
    secret = "sk-secret-123456"
    with pytest.raises(SpecError) as raised:
        load_spec(write(tmp_path, EXAMPLE),
                  [f"image_grounding.vlm.openai.api_key={secret}", "image_grounding.x=1"])
    assert secret not in str(raised.value)
    with pytest.raises(SpecError) as raised:
        parse_override(f"image_grounding.vlm.openai.api_key {secret}")
    assert secret not in str(raised.value)
    spec = load_spec(write(tmp_path, EXAMPLE), [f"image_grounding.vlm.openai.api_key={secret}"])
    assert secret not in spec.model_dump_json()
    assert spec.image_grounding.vlm.openai.api_key.get_secret_value() == secret
