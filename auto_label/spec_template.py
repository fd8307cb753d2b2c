"""`auto_label init`: a commented spec with every key of one pipeline and one backend, its
default and what it means, written from the spec models themselves (so it cannot drift from what
the loader accepts) and valid as written.

    from auto_label.spec_template import spec_template
    text = spec_template("image_grounding", backend="openai", model="Qwen/Qwen2.5-VL-7B-Instruct")
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import json
import textwrap
import typing
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from auto_label.backends.registry import vlm_config_model
from auto_label.errors import SpecError
from auto_label.pipelines.registry import PIPELINES

WIDTH = 99
PLACEHOLDERS: Mapping[str, str] = {
    "input_jsonl": "input.jsonl",
    "image_dir": "images",
    "kitti_label_dir": "labels",
}
"""what a required (or required-in-practice) data key is set to until the user edits it"""


def _scalar(value: Any) -> str:
    """A value as YAML flow text (JSON is YAML)."""
    if isinstance(value, SecretStr):
        value = ""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, ensure_ascii=False, default=str)


def _comment(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    flat = " ".join(text.split())
    return [f"{indent}# {line}" for line in textwrap.wrap(flat, WIDTH - len(indent) - 2)]


@functools.cache
def _attribute_docstrings(cls: type) -> dict[str, str]:
    """The docstrings written under the annotated attributes of `cls`'s own body (`name: T`
    followed by a string), cleaned as pydantic's `use_attribute_docstrings` cleans them; {}
    when the class has no source (one made by `create_model`)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    tree = ast.parse(textwrap.dedent(source))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for before, statement in itertools.pairwise(body):
        if (isinstance(before, ast.AnnAssign) and isinstance(before.target, ast.Name)
                and isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)):
            docs[before.target.id] = inspect.cleandoc(statement.value.value)
    return docs


def field_description(model: type[BaseModel], name: str) -> str | None:
    """What the key `name` of `model` means: its `Field(description=...)`, else the docstring
    under it in the class that last declared it (the spec models keep their meanings there;
    they are read here, when a spec or reference is written, rather than by pydantic when each
    model is built: launch time, issue 12). None when neither says."""
    description = model.model_fields[name].description
    if description is not None:
        return description
    for cls in model.__mro__:
        if name in vars(cls).get("__annotations__", {}):
            return _attribute_docstrings(cls).get(name)
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (its own, or in `X | None`), if any."""
    candidates = [annotation, *typing.get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _lines(model: type[BaseModel], values: Mapping[str, Any], indent: str,
           skip: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every field of `model`: its description as a comment, then `key: value` (the value
    from `values`, else the default); nested models as blocks."""
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        yield from _comment(field_description(model, name), indent)
        nested = _model_of(field.annotation)
        default = _default(field)
        if name in values:
            yield f"{indent}{name}: {_scalar(values[name])}"
        elif nested is not None and isinstance(default, BaseModel):
            yield f"{indent}{name}:"
            yield from _lines(nested, {}, indent + "  ")
        else:
            yield f"{indent}{name}: {_scalar(default)}"


def _default(field: FieldInfo) -> Any:
    if field.default is not PydanticUndefined:
        return field.default
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None


def spec_template(pipeline: str, *, backend: str = "gemini", model: str | None = None,
                  base_url: str | None = None, results_dir: str = "results",
                  data: Mapping[str, str] | None = None) -> str:
    """The spec text for `pipeline` and `backend`: every key with its default and a comment.

    `model` and `base_url` fill the backend's keys; `data` the pipeline's data keys (else
    placeholders such as input.jsonl that the user replaces). API keys are never written: the
    comment says which environment variable the backend reads. Raises SpecError for an unknown
    pipeline or backend.
    """
    if pipeline not in PIPELINES:
        raise SpecError(f"unknown pipeline {pipeline!r}; the pipelines are {sorted(PIPELINES)}")
    vlm = vlm_config_model()
    backends = [n for n in vlm.model_fields if n != "backend"]
    if backend not in backends:
        raise SpecError(f"unknown backend {backend!r}; the backends are {backends}")
    spec = PIPELINES[pipeline]
    backend_model = _model_of(vlm.model_fields[backend].annotation)
    assert backend_model is not None
    given: dict[str, Any] = {}
    if model is not None:
        given["model" if "model" in backend_model.model_fields else "model_name"] = model
    if base_url is not None:
        given["base_url"] = base_url
    data_values = {k: v for k, v in PLACEHOLDERS.items() if k in spec.data.model_fields}
    data_values.update(data or {})
    lines = [
        f"# auto_label spec for {pipeline} with the {backend} backend, written by "
        "`auto_label init`.",
        "# Every key is shown with its default; delete what you do not change. Relative paths",
        "# resolve against the directory you run auto_label from. Check it with:",
        "#   auto_label generate -e THIS_FILE --dry-run",
        f"results_dir: {_scalar(results_dir)}",
        f"autolabel_type: {pipeline}",
        f"{pipeline}:",
        "  vlm:",
        f"    backend: {backend}",
        f"    {backend}:",
    ]
    lines += list(_lines(backend_model, given, "      "))
    lines.append("  workflow:")
    lines += list(_lines(spec.workflow, {}, "    "))
    lines.append("  data:")
    lines += list(_lines(spec.data, data_values, "    "))
    return "\n".join(lines) + "\n"


def _rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str]]:
    for name, field in model.model_fields.items():
        nested = _model_of(field.annotation)
        default = _default(field)
        if nested is not None and isinstance(default, BaseModel):
            yield from _rows(nested, f"{prefix}{name}.")
            continue
        shown = "required" if field.is_required() else _scalar(default)
        yield f"{prefix}{name}", shown, " ".join((field_description(model, name) or "").split())


def spec_reference(pipeline: str) -> str:
    """A Markdown table of every key of `pipeline`'s block (each backend's `vlm` keys
    included) with its default and meaning, from the spec models (what the skills' references
    show; a test keeps the committed copy equal to this)."""
    if pipeline not in PIPELINES:
        raise SpecError(f"unknown pipeline {pipeline!r}; the pipelines are {sorted(PIPELINES)}")
    spec = PIPELINES[pipeline]
    vlm = vlm_config_model()
    lines = [f"# Spec keys of {pipeline}", "",
             "Generated from the spec models by `auto_label.spec_template.spec_reference`; do "
             "not edit by hand.", "", "| key | default | meaning |", "|---|---|---|",
             "| `results_dir` | required | where the ledger and the exports go |",
             f"| `autolabel_type` | required | `{pipeline}` |"]
    sections: list[tuple[str, type[BaseModel]]] = [(f"{pipeline}.vlm.", vlm)]
    sections += [(f"{pipeline}.workflow.", spec.workflow), (f"{pipeline}.data.", spec.data)]
    for prefix, model in sections:
        for key, default, meaning in _rows(model, prefix):
            lines.append(f"| `{key}` | `{default}` | {meaning.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
