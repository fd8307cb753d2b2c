"""What a run leaves for later (issue 12, launch -> first request): a `generate` with plain
progress lines reaches its first request without rich, pillow-heif (no HEIF input), the other
pipeline, the dry run's or the exports' modules; the spec models leave their attribute docstrings
to `init`, which reads them itself; the pipeline registry imports a pipeline when it is looked
up. Checked in fresh interpreters (`sys.modules`), never by time; and that each keeps what it
did before: the same descriptions, the same spec values, the same terminal test, HEIF files
still read by their content."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from PIL import Image
from pydantic import BaseModel, Field
from support import grounding_overrides

from auto_label.backends.openai_backend import OpenAIConfig
from auto_label.cli import app as cli_app
from auto_label.errors import SpecError
from auto_label.pipelines.config import RetryConfig, WorkflowConfig
from auto_label.pipelines.grounding.config import GroundingWorkflow
from auto_label.pipelines.registry import PIPELINES, get_pipeline
from auto_label.sim import write_grounding_dataset
from auto_label.spec import spec_model
from auto_label.spec_loader import load_spec
from auto_label.spec_template import field_description

ROOT = Path(__file__).resolve().parent.parent

FIRST_REQUEST = """
import json, sys
from auto_label.backends.openai_backend import OpenAIBackend

complete = OpenAIBackend.complete
written = sys.argv[1]

def first(self, request):
    if not first.seen:
        first.seen = True
        with open(written, "w") as handle:
            json.dump(sorted(sys.modules), handle)
    return complete(self, request)

first.seen = False
OpenAIBackend.complete = first
sys.argv = ["auto_label", *sys.argv[2:]]
from auto_label.cli.main import main
main()
"""
"""`auto_label ARGS` that writes the modules imported when its first request is sent"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


@pytest.mark.parametrize("plain", [["--plain"], []], ids=["--plain", "stdout-a-pipe"])
def test_a_plain_run_sends_its_first_request_before_importing_what_it_needs_later(
        plain, tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 1, seed=5)
    spec = tmp_path / "spec.yaml"
    spec.write_text("{}\n")
    seen = tmp_path / "modules.json"
    done = _run(FIRST_REQUEST, str(seen), "generate", "-e", str(spec), *plain,
                *grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url))
    assert done.returncode == 0, done.stderr
    assert "step1_grounding" in done.stdout  # the summary's table: rich, after the run
    loaded = set(json.loads(seen.read_text()))
    assert "auto_label.pipelines.grounding" in loaded
    later = ("rich", "pillow_heif", "auto_label.pipelines.referring", "auto_label.estimate",
             "auto_label.exports", "auto_label.cli.live_view", "auto_label.cli.summary")
    assert not {m for m in loaded if m.startswith(later)}


def test_heif_is_read_by_its_content_with_pillow_heif_imported_on_the_first_such_file(tmp_path):
    import pillow_heif

    pillow_heif.register_heif_opener()  # to write one here
    heic = io.BytesIO()
    Image.new("RGB", (48, 32), (200, 40, 40)).save(heic, "HEIF")
    png = io.BytesIO()
    Image.new("RGB", (20, 10)).save(png, "PNG")
    (tmp_path / "IMG_1.jpg").write_bytes(heic.getvalue())  # named as a JPEG
    (tmp_path / "a.png").write_bytes(png.getvalue())
    code = f"""
import sys
from pathlib import Path
from PIL import Image
from auto_label.pipelines.images.decode import IngestSettings, open_image

folder = Path({str(tmp_path)!r})
_, header = open_image((folder / "a.png").read_bytes(), "a.png", IngestSettings())
print(header.format, "pillow_heif" in sys.modules)
_, header = open_image((folder / "IMG_1.jpg").read_bytes(), "IMG_1.jpg", IngestSettings())
print(header.format, header.stored_size, "pillow_heif" in sys.modules, Image.ID[0])
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["PNG False", "HEIF (48, 32) True HEIF"]


def test_the_meaning_of_a_key_is_its_description_else_the_docstring_under_it():
    assert field_description(WorkflowConfig, "max_workers") == "requests in flight at once"
    assert field_description(RetryConfig, "max_attempts") == "requests per step and image"
    # redeclared by the pipeline: its own docstring; inherited: the base class's
    assert field_description(GroundingWorkflow, "steps") == "0 extracts expressions, 1 grounds them"
    assert field_description(GroundingWorkflow, "max_workers") == "requests in flight at once"
    assert (field_description(OpenAIConfig, "max_image_side") or "").startswith(
        "downscale images whose longest side is larger")

    class Base(BaseModel):
        a: int = 1
        """the a"""
        b: int = Field(default=2, description="the b")
        c: int = 3
        """the c"""

    class Child(Base):  # as pydantic's use_attribute_docstrings reads them
        a: int = 4
        b: int = 6
        c: int = 5
        """the child's c"""

    class GrandChild(Child):
        pass

    assert [field_description(Base, k) for k in "abc"] == ["the a", "the b", "the c"]
    assert [field_description(Child, k) for k in "abc"] == [None, None, "the child's c"]
    assert [field_description(GrandChild, k) for k in "abc"] == [None, None, "the child's c"]


def _models(model: type[BaseModel], found: dict[str, type[BaseModel]]) -> dict[str, type]:
    found[model.__qualname__] = model
    for field in model.model_fields.values():
        for arg in [field.annotation, *typing.get_args(field.annotation)]:
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg.__qualname__ \
                    not in found:
                _models(arg, found)
    return found


def test_no_spec_model_has_pydantic_read_its_source():
    models = _models(spec_model(), {})
    assert {"GroundingWorkflow", "OpenAIConfig", "RetryConfig", "SmartResize"} <= set(models)
    assert not [name for name, model in models.items()
                if model.model_config.get("use_attribute_docstrings")]


def test_the_registry_imports_a_pipeline_when_it_is_looked_up():
    code = """
import sys
from auto_label.pipelines.registry import PIPELINES, get_pipeline

def loaded():
    return sorted({m.split(".")[2] for m in sys.modules
                   if m.startswith(("auto_label.pipelines.grounding",
                                    "auto_label.pipelines.referring"))})

print(sorted(PIPELINES), "image_grounding" in PIPELINES, "x" in PIPELINES, loaded())
print(get_pipeline("image_grounding").name, loaded())
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "['image_grounding', 'image_referring_expression'] True False []",
        "image_grounding ['grounding']"]
    assert all(PIPELINES[name].name == name for name in PIPELINES)
    with pytest.raises(SpecError, match="unknown pipeline 'x'; the pipelines are "
                                        r"\['image_grounding', 'image_referring_expression'\]"):
        get_pipeline("x")
    with pytest.raises(KeyError):
        del PIPELINES["x"]


def test_the_registry_can_be_patched_like_a_dict(monkeypatch):
    import dataclasses

    changed = dataclasses.replace(PIPELINES["image_grounding"], steps=())
    monkeypatch.setitem(PIPELINES, "image_grounding", changed)
    assert get_pipeline("image_grounding") is changed
    monkeypatch.undo()
    assert get_pipeline("image_grounding").steps


def test_a_spec_of_one_pipeline_holds_what_the_whole_model_gives(tmp_path):
    overrides = grounding_overrides(tmp_path / "out", tmp_path, "http://127.0.0.1:9/v1")
    loaded = load_spec(None, [*overrides, "image_referring_expression.data.image_dir=x"])
    assert "image_referring_expression" in type(loaded).model_fields
    whole = spec_model().model_validate(loaded.model_dump())
    assert loaded.dump() == whole.dump()
    assert list(loaded.dump()) == ["results_dir", "autolabel_type", "image_grounding",
                                   "image_referring_expression"]
    assert loaded.dump()["image_referring_expression"] is None


def test_the_terminal_test_without_rich_agrees_with_rich(monkeypatch):
    from rich.console import Console

    monkeypatch.setattr(sys, "stdout", io.StringIO())  # not a terminal
    for env in ({}, {"FORCE_COLOR": "1"}, {"FORCE_COLOR": ""}, {"TTY_COMPATIBLE": "1"},
                {"TTY_COMPATIBLE": "0"}):
        for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setitem(vars(cli_app), "out", None)  # not made yet
        assert cli_app.stdout_is_terminal() == Console().is_terminal, env
