"""`auto_label`: the command line, a thin layer over `auto_label.api`.

Exit codes: 0 every image completed every step; 1 some failed or were skipped; 2 bad configuration
or input (one line on stderr, no traceback); 130 / 143 stopped by SIGINT / SIGTERM (resumable).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from auto_label import api
from auto_label.errors import AutoLabelError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Build vision-language grounding datasets with a VLM, on a resumable SQLite ledger.",
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(error: AutoLabelError) -> typer.Exit:
    err.print(f"error: {error}", markup=False)
    return typer.Exit(error.exit_code)


class _Signals:
    """SIGINT/SIGTERM set the run's stop event (a second one exits at once)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise SystemExit(128 + signum)
        self.received = signum
        self.stop.set()
        err.print(f"\n{signal.Signals(signum).name}: finishing the requests in flight "
                  "(again to quit at once)...")


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
) -> None:
    """Run the spec's pipeline on every image that has not completed it, then export."""
    from auto_label.cli.progress import PlainProgress, RichProgress
    from auto_label.cli.summary import print_summary

    stop = threading.Event()
    try:
        loaded = api.load_spec(spec, overrides or [])
        progress = RichProgress(out) if out.is_terminal and not plain else PlainProgress()
        with _Signals(stop) as signals:
            summary = api.generate(loaded, progress=progress, stop=stop,
                                   retry_failed=retry_failed)
    except AutoLabelError as error:
        raise _fail(error) from None
    print_summary(out, summary)
    if signals.received is not None:
        command = " ".join(["auto_label", *sys.argv[1:]]) if sys.argv else "auto_label generate"
        out.print(f"stopped by {signal.Signals(signals.received).name}; everything answered so "
                  f"far is in the ledger. Resume with the same command:\n  {command}",
                  markup=False)
        raise typer.Exit(128 + signals.received)
    raise typer.Exit(0 if summary.ok else 1)


@app.command()
def export(
    results_dir: Annotated[Path, typer.Argument(help="A results_dir with a ledger.db.")],
    output_format: Annotated[str | None, typer.Option(
        "--format", help=f"{', '.join(api.EXPORT_FORMATS)} (default: the last run's "
                         "output_format, else jsonl)."
    )] = None,
) -> None:
    """Write annotations.jsonl (and legacy files, if the spec asks) from the ledger."""
    from auto_label.cli.summary import print_outputs

    try:
        result = api.export(results_dir, output_format=output_format)
    except AutoLabelError as error:
        raise _fail(error) from None
    print_outputs(out, result.files, result.records)


@app.command()
def status(
    results_dir: Annotated[Path, typer.Argument(help="A results_dir with a ledger.db.")],
    check: Annotated[bool, typer.Option(
        "--check", help="Also run SQLite's integrity check and the ledger's invariants "
                        "(exit 1 if anything is wrong).")] = False,
) -> None:
    """What the ledger holds: runs, images, per-step outcomes, failures, tokens."""
    from auto_label.cli.summary import print_status
    from auto_label.status import ledger_status

    try:
        report = ledger_status(results_dir, check=check)
    except AutoLabelError as error:
        raise _fail(error) from None
    print_status(out, report)
    if report.problems:
        raise typer.Exit(1)


@app.command()
def probe(
    spec: Annotated[Path, typer.Option("-e", "--experiment-spec",
                                       help="The YAML spec file.")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Overrides such as image_grounding.vlm.openai.base_url=http://gpu:8000/v1."
    )] = None,
) -> None:
    """Measure which box convention and frame the spec's endpoint answers in (a few requests
    about generated images, recorded in the ledger), and print the spec lines that fit.

    Exits 1 when no reading explains the answers."""
    from auto_label.cli.summary import print_probe
    from auto_label.probing import probe as run_probe

    try:
        report = run_probe(spec, overrides or [])
    except AutoLabelError as error:
        raise _fail(error) from None
    print_probe(out, report)
    raise typer.Exit(0 if report.fits else 1)


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to write the demo.")] = Path(
        "auto_label_demo"),
    images: Annotated[int, typer.Option("-n", "--images", min=1, max=500,
                                        help="Images per pipeline.")] = 12,
) -> None:
    """Generate scenes, start the VLM simulator, run the pipelines end to end against it."""
    from auto_label.cli.demo import run_demo
    from auto_label.cli.progress import PlainProgress, RichProgress

    def progress() -> RichProgress | PlainProgress:
        return RichProgress(out) if out.is_terminal else PlainProgress()

    try:
        run_demo(directory, images=images, progress=progress,
                 console_print=lambda text: out.print(text, markup=False, soft_wrap=True))
    except AutoLabelError as error:
        raise _fail(error) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
