"""The commands that audit a results_dir: show (one image's events), replay (re-read answers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from auto_label.cli.app import app, fail, out
from auto_label.errors import AutoLabelError


@app.command()
def show(
    results_dir: Annotated[Path, typer.Argument(help="A results_dir with a ledger.db.")],
    image_id: Annotated[str, typer.Argument(help="The image's id, as in annotations.jsonl.")],
    step: Annotated[str | None, typer.Option(
        "--step", help="Only the events of this step, by number or name (and the image's "
                       "seed).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="The events as one JSON object instead of text.")] = False,
) -> None:
    """Every event of one image in order: prompts, raw answers, parsed outputs, tokens, latency,
    attempts, errors, fingerprints, and which answer its record uses."""
    from auto_label.cli.audit_view import print_history
    from auto_label.history import image_history

    try:
        history = image_history(results_dir, image_id, step=step)
    except AutoLabelError as error:
        raise fail(error) from None
    if as_json:
        out.print(json.dumps(history.to_json(), indent=2, ensure_ascii=False), markup=False,
                  highlight=False, soft_wrap=True)
        return
    print_history(out, history)


@app.command()
def replay(
    results_dir: Annotated[Path, typer.Argument(help="A results_dir with a ledger.db.")],
    step: Annotated[str | None, typer.Option(
        "--step", help="Only this step, by number or name.")] = None,
    image: Annotated[str | None, typer.Option("--image", help="Only this image id.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Say what would change; record nothing.")] = False,
) -> None:
    """Read the stored answers again with today's parsers (no request is sent): record the
    failed steps that now parse and the answers that now read otherwise, print what changed, and
    write the exports again. The next generate reruns only the downstream steps whose upstream
    output changed."""
    from auto_label.cli.audit_view import print_replay
    from auto_label.replay import replay as run_replay

    try:
        report = run_replay(results_dir, step=step, image=image, dry_run=dry_run)
    except AutoLabelError as error:
        raise fail(error) from None
    print_replay(out, report)
