"""`auto_label init`: write a commented spec to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auto_label.cli.app import app, fail, out
from auto_label.errors import AutoLabelError, SpecError


@app.command()
def init(
    pipeline: Annotated[str, typer.Argument(
        help="image_grounding or image_referring_expression.")],
    backend: Annotated[str, typer.Option("--backend", help="gemini or openai.")] = "gemini",
    model: Annotated[str | None, typer.Option(
        "--model", help="The model name (vlm.gemini.model / vlm.openai.model_name).")] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="The endpoint (an OpenAI-compatible server's URL ending in /v1).")
    ] = None,
    results_dir: Annotated[str, typer.Option("--results-dir", help="results_dir.")] = "results",
    data: Annotated[list[str] | None, typer.Option(
        "--data", help="A data key, e.g. --data input_jsonl=captions.jsonl (repeat).")] = None,
    output: Annotated[Path, typer.Option("--out", help="Where to write the spec.")] = Path(
        "spec.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a spec with every key of the pipeline and backend, its default and what it means;
    it loads as written (fill in the data paths and the model, then generate --dry-run)."""
    from auto_label.cli.invocation import command_name
    from auto_label.spec_template import spec_template

    try:
        values: dict[str, str] = {}
        for item in data or []:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise SpecError(f"--data {item!r}: expected key=value, e.g. input_jsonl=in.jsonl")
            values[key.strip()] = value.strip()
        text = spec_template(pipeline, backend=backend, model=model, base_url=base_url,
                             results_dir=results_dir, data=values)
        if output.exists() and not force:
            raise SpecError(f"{output} ({output.resolve()}) exists: choose another --out, or "
                            "--force to overwrite it")
        output.write_text(text, encoding="utf-8")
    except AutoLabelError as error:
        raise fail(error) from None
    except OSError as exc:
        raise fail(SpecError(f"{output}: cannot write the spec ({exc.strerror or exc})")) from None
    out.print(f"wrote {output}; check it with: {command_name()} generate -e {output} --dry-run",
              markup=False, highlight=False)
