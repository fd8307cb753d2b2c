"""The commands that run the model: generate, probe, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auto_label.cli import app as cli
from auto_label.cli.app import app, fail
from auto_label.cli.generating import generate as run_generate
from auto_label.errors import AutoLabelError


@app.command()
def generate(
    spec: Annotated[Path, typer.Option("-e", "--experiment-spec",
                                       help="The YAML spec file.")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Overrides such as results_dir=/out or image_grounding.workflow.max_workers=8."
    )] = None,
    plain: Annotated[bool, typer.Option(
        help="Plain progress lines instead of bars (the default when not on a terminal)."
    )] = False,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed",
        help="Only the images whose latest attempt at a step failed (a plain run retries them "
             "too, with everything not yet done).",
    )] = False,
    batch: Annotated[bool, typer.Option(
        "--batch", help="Send the requests as provider batch jobs (workflow.mode: batch): about "
                        "half the price, answers within hours; resumable like any run.",
    )] = False,
    finish_online: Annotated[bool, typer.Option(
        "--finish-online", help="With --batch: retry the requests that failed inside a job "
                                "online instead of in a later job.",
    )] = False,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=1, metavar="N",
        help="Only the first N images of the input (a pilot); a later run without it reuses "
             "their answers and goes on with the rest.",
    )] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run",
        help="Count the requests the run would send (after resume and incremental skips) and "
             "estimate their tokens and cost; sends nothing, writes nothing.",
    )] = False,
) -> None:
    """Run the spec's pipeline on every image that has not completed it, then export."""
    raise typer.Exit(run_generate(spec, overrides, plain=plain, retry_failed=retry_failed,
                                  batch=batch, finish_online=finish_online, limit=limit,
                                  dry_run=dry_run))


@app.command()
def probe(
    spec: Annotated[Path, typer.Option("-e", "--experiment-spec",
                                       help="The YAML spec file.")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Overrides such as image_grounding.vlm.openai.base_url=URL."
    )] = None,
    write: Annotated[bool, typer.Option(
        "--write",
        help="Also write the lines that fit into the spec file (its comments kept).",
    )] = False,
) -> None:
    """Measure which box convention and frame the spec's endpoint answers in (a few requests
    about generated images, recorded in the ledger), and print the spec lines that fit.

    Exits 1 when no reading explains the answers (nothing is written then)."""
    from auto_label.cli.summary import print_probe
    from auto_label.probing import probe as run_probe
    from auto_label.probing import write_fit

    out = cli.out
    try:
        report = run_probe(spec, overrides or [])
    except AutoLabelError as error:
        raise fail(error) from None
    print_probe(out, report)
    if write and report.fits:
        try:
            write_fit(spec, report, overrides or [])
        except AutoLabelError as error:
            raise fail(error) from None
        out.print(f"wrote them into {spec}", markup=False)
    raise typer.Exit(0 if report.fits else 1)


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to write the demo.")] = Path(
        "auto_label_demo"),
    images: Annotated[int, typer.Option("-n", "--images", min=1, max=500,
                                        help="Images per pipeline.")] = 12,
) -> None:
    """Generate scenes, start the VLM simulator, run the pipelines end to end against it.

    Exits 1 when a pipeline's run is not ok (steps failed: rerun the same command to retry)."""
    from auto_label.cli.demo import run_demo
    from auto_label.cli.invocation import command_name
    from auto_label.cli.progress import PlainProgress, RichProgress

    out = cli.out

    def progress() -> RichProgress | PlainProgress:
        return RichProgress(out) if out.is_terminal else PlainProgress()

    try:
        results = run_demo(directory, images=images, progress=progress,
                           console_print=lambda text: out.print(text, markup=False,
                                                                soft_wrap=True),
                           command=command_name())
    except AutoLabelError as error:
        raise fail(error) from None
    if not all(result.summary.ok for result in results):
        out.print("The demo did not complete every step (NOT OK above), so it exits 1.",
                  markup=False)
        raise typer.Exit(1)
