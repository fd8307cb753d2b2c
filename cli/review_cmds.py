"""`auto_label review`: write the static HTML page that shows every image's boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from auto_label.cli.app import app, err, fail, out
from auto_label.errors import AutoLabelError

UNREADABLE_SHOWN = 5


@app.command()
def review(
    results_dir: Annotated[Path, typer.Argument(help="A results_dir with a ledger.db.")],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the page (default: RESULTS_DIR/review).")] = None,
) -> None:
    """Write a static HTML page (index.html, thumbs/, show/) showing every image with its boxes
    per expression, caption, scores and verified flags, with search and filters for failed,
    unverified and nothing-found images. Open it from disk: no server, no network. Thumbnails
    are made once and reused by the next review."""
    from auto_label.review import write_review

    try:
        result = write_review(results_dir, out_dir)
    except AutoLabelError as error:
        raise fail(error) from None
    out.print(f"wrote {result.page}: {result.images:,} images, thumbnails "
              f"{result.thumbnails_made:,} made and {result.thumbnails_reused:,} reused",
              markup=False, highlight=False)
    for line in result.unreadable[:UNREADABLE_SHOWN]:
        err.print(f"no thumbnail: {line}", markup=False, highlight=False)
    if len(result.unreadable) > UNREADABLE_SHOWN:
        err.print(f"... and {len(result.unreadable) - UNREADABLE_SHOWN} more images without a "
                  "thumbnail (their cards show the boxes on a grey frame)", markup=False)
    out.print(f"open {result.page.resolve().as_uri()} in a browser", markup=False,
              highlight=False)
