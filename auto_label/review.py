"""`auto_label review`: a static HTML page to look at every image's boxes before trusting them.

    from auto_label.review import write_review
    result = write_review("/data/out")          # /data/out/review/index.html
    print(result.page, result.images, result.thumbnails_made)

The page is one file (`index.html`: its CSS, script and data inline; `review_page.html` in this
package is its template) beside a `thumbs/` folder of JPEG thumbnails and a `show/` folder with
each image's `auto_label show` text. It needs no server and no network: open it from disk.
Thumbnails are named by the image file's sha256, so a later `review` reuses them and a changed
image gets a new one; they are decoded the way a run reads the image (`pipelines.images`), upright
as the record's frame is. Boxes are drawn by the page in the records' pixel frame.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha1
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

from auto_label.errors import ExportError, LedgerError
from auto_label.history import HistoryReader, lines
from auto_label.ledger import audit_queries
from auto_label.ledger.events import ImageSeeded, RunStarted
from auto_label.ledger.fingerprint import file_sha256
from auto_label.ledger.fold import fold
from auto_label.ledger.store import Ledger
from auto_label.pipelines.contract import Pipeline
from auto_label.pipelines.images.decode import ImageProblem, IngestSettings, decode, open_image
from auto_label.pipelines.images.frames import scaled_size
from auto_label.pipelines.probing import PROBE_STEP
from auto_label.pipelines.records import project
from auto_label.pipelines.registry import get_pipeline
from auto_label.version import __version__

PAGE = "index.html"
THUMBS = "thumbs"
SHOW = "show"
THUMB_SIDE = 320
"""the longest side of a thumbnail, in pixels"""
THUMB_QUALITY = 85
THUMB_VERSION = 1
"""part of a thumbnail's name: bumped when the way thumbnails are made changes"""
PALETTE: tuple[str, ...] = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
    "#f032e6", "#bfef45", "#ffe119", "#469990", "#9a6324", "#800000",
)
"""The colour of expression i of an image is PALETTE[i % len(PALETTE)] (Sasha Trubetskoy's list
of distinct colours, https://sashamaps.net/docs/resources/20-colors/)."""
BROWSER_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "AVIF"})
"""Formats (Pillow's names) a browser shows itself: the full-size view uses the original file."""
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ReviewResult:
    page: Path
    """the index.html written"""
    images: int
    """cards on the page (every image the ledger knows, with a record or not; not the images
    `probe` generates)"""
    thumbnails_made: int
    thumbnails_reused: int
    unreadable: list[str] = field(default_factory=list)
    """one line per image whose file could not be read for a thumbnail (its card shows the
    boxes on a grey frame)"""


def colour(index: int) -> str:
    """The colour (#rrggbb) the page draws expression `index` (0-based, in record order) in."""
    return PALETTE[index % len(PALETTE)]


def file_name(image_id: str) -> str:
    """A file name for an image id: the id itself when it is safe in a path and a URL, else
    its unsafe characters replaced and a hash of the id added (so two ids never share one)."""
    safe = _SAFE_NAME.sub("_", image_id).lstrip(".") or "_"
    if safe == image_id:
        return image_id
    return f"{safe[:80]}-{sha1(image_id.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class _Thumb:
    seed: ImageSeeded
    name: str
    """thumbs/<name>: the seed's sha256, the thumbnail version and size"""


def _thumb_name(sha256: str) -> str:
    return f"{sha256[:24]}-v{THUMB_VERSION}-{THUMB_SIDE}.jpg"


def _make_thumb(job: _Thumb, folder: Path) -> tuple[str | None, str | None]:
    """Write the thumbnail of `job` (decoded as a run reads the file, upright as the seed's
    frame). Returns (the thumbnail's name, None), or (a name, a note) when the file has changed
    since it was seeded, or (None, why) when it cannot be read."""
    seed = job.seed
    path = Path(seed.path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"
    note = None
    name = job.name
    sha = file_sha256(data)
    if sha != seed.sha256:  # changed since the run read it: its boxes are of the old picture
        name = _thumb_name(sha)
        note = "the image file changed since it was labelled: rerun generate"
        if (folder / name).exists():
            return name, note
    # the orientation the run applied (the frame of the record): the tag, or none when the run
    # had data.exif_orientation: ignore
    settings = IngestSettings(exif_orientation="apply" if seed.orientation != 1 else "ignore",
                              max_image_pixels=0)
    try:
        image, header = open_image(data, str(path), settings)
        with image:
            size = scaled_size(header.upright_size, THUMB_SIDE)
            pixels, _ = decode(image, header, size, str(path))
    except ImageProblem as exc:
        return None, str(exc)
    if header.upright_size != (seed.width, seed.height):
        note = note or "the image file changed since it was labelled: rerun generate"
    partial = folder / f".{name}.{os.getpid()}.tmp"
    pixels.convert("RGB").save(partial, format="JPEG", quality=THUMB_QUALITY)
    partial.replace(folder / name)
    return name, note


def _card(image_id: str, seed: ImageSeeded | None, record: dict[str, Any] | None,
          failed: list[str], nothing: bool) -> dict[str, Any]:
    """One image as the page's script reads it (short keys: 10,000 of them go into the page)."""
    expressions = (record or {}).get("expressions", [])
    return {
        "id": image_id,
        "path": (record or {}).get("image_path") or (seed.path if seed is not None else ""),
        "w": seed.width if seed is not None else None,
        "h": seed.height if seed is not None else None,
        "cap": (record or {}).get("caption") or (seed.caption if seed is not None else None),
        "ex": [[e.get("text", ""), e.get("verified"),
                [[*i["bbox"], i.get("bbox_score")] for i in e.get("instances", [])]]
               for e in expressions],
        "rg": [[*r["bbox"], r.get("type", ""), r.get("color", ""), r.get("description", "")]
               for r in (record or {}).get("regions", []) if len(r.get("bbox", [])) == 4],
        "fail": failed,
        "none": nothing,
        "show": f"{SHOW}/{quote(file_name(image_id))}.txt",
    }


def _original(seed: ImageSeeded, out: str) -> dict[str, Any]:
    """Where the full-size view finds the original file, relative to the page (`out`, an
    absolute path); nothing when a browser would not show it in the record's frame. Browsers
    apply a JPEG's EXIF orientation and cannot be told not to for a file of another origin (CSS
    `image-orientation: none` is ignored for those,
    https://drafts.csswg.org/css-images-3/#the-image-orientation), so the original is used when
    no orientation tag is in play, or when the run applied a JPEG's."""
    conversion = seed.conversion or ""
    untagged = seed.orientation == 1 and "EXIF orientation" not in conversion
    applied = seed.orientation != 1 and seed.format in ("JPEG", "MPO")
    if (seed.format or "") not in BROWSER_FORMATS or not seed.ingest or not (untagged or applied):
        return {}
    try:
        relative = os.path.relpath(os.path.abspath(seed.path), out)
    except ValueError:  # another drive (Windows)
        return {"src": Path(os.path.abspath(seed.path)).as_uri()}
    return {"src": quote(Path(relative).as_posix())}


def _nothing(record: dict[str, Any] | None, outputs: Any, failed: list[str]) -> bool:
    """An answer that found nothing (a step's output counts 0), or an expression with no box
    in a record none of whose steps failed (when one did, the failure says why)."""
    if any(output.found() == 0 for output in outputs.values()):
        return True
    expressions = (record or {}).get("expressions", [])
    return not failed and any(not e.get("instances") for e in expressions)


def _cards(ledger: Ledger, pipeline: Pipeline, show: Path) -> Iterator[
        tuple[dict[str, Any], ImageSeeded | None]]:
    """Each image's card, its `show` text written on the way, in image id order."""
    reader = HistoryReader(ledger)
    for image_id in audit_queries.image_ids(ledger.connection(), except_step=PROBE_STEP.number):
        history = reader.history(image_id)  # its events read once, for the text and the card
        state = fold((e.event for e in history.entries), image_id=image_id)
        projected = project(state, pipeline)
        failed = [f"{pipeline.step(n).name}: {e.kind}: {e.message}"
                  for n, e in sorted(state.failed.items())]
        card = _card(image_id, state.seed, projected.record, failed,
                     _nothing(projected.record, projected.outputs, failed))
        _write_if_changed(show / f"{file_name(image_id)}.txt",
                          ("\n".join(lines(history)) + "\n").encode())
        yield card, state.seed


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write `data` unless the file holds it already (rewriting 10,000 files that did not
    change costs more than reading them)."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    path.write_bytes(data)


def _prune(folder: Path, keep: set[str], pattern: str) -> None:
    """Remove the files of `folder` matching `pattern` that the page no longer uses."""
    for path in folder.glob(pattern):
        if path.name not in keep:
            path.unlink(missing_ok=True)


def write_review(results_dir: str | Path, out: str | Path | None = None, *,
                 workers: int | None = None) -> ReviewResult:
    """Write the review page of `results_dir` into `out` (default `results_dir/review`):
    `index.html`, `thumbs/` (made once per image file, reused by later calls) and `show/<image
    id>.txt` (each image's `auto_label show` text). `workers` threads make thumbnails (default:
    the CPUs). Safe while a run goes on (it reads the ledger as it is). Raises LedgerError when
    there is no ledger, or no run, in `results_dir`; ExportError when `out` cannot be written."""
    results_dir = Path(results_dir)
    target = Path(out) if out is not None else results_dir / "review"
    with Ledger.open(results_dir, create=False) as ledger:
        started = ledger.latest("run_started")
        if not isinstance(started, RunStarted):
            raise LedgerError(f"{ledger.path}: no run has been recorded yet")
        pipeline = get_pipeline(started.pipeline)
        try:
            for folder in (target, target / THUMBS, target / SHOW):
                folder.mkdir(parents=True, exist_ok=True)
            written = list(_cards(ledger, pipeline, target / SHOW))
            _prune(target / SHOW, {f"{file_name(c['id'])}.txt" for c, _ in written}, "*.txt")
            made, reused, unreadable = _thumbnails(written, target, workers)
            data = {
                "title": str(results_dir.resolve()), "pipeline": pipeline.name,
                "version": __version__, "written": time.strftime("%Y-%m-%d %H:%M"),
                "palette": list(PALETTE), "images": [card for card, _ in written],
            }
            page = target / PAGE
            partial = target / f".{PAGE}.{os.getpid()}.tmp"
            partial.write_text(render_page(data), encoding="utf-8")
            partial.replace(page)
        except OSError as exc:  # the folder, not the images (those failing are reported apart)
            raise ExportError(f"{target}: cannot write the review there "
                              f"({exc.strerror or exc})") from None
    return ReviewResult(page, len(written), made, reused, unreadable)


def _thumbnails(written: list[tuple[dict[str, Any], ImageSeeded | None]], target: Path,
                workers: int | None) -> tuple[int, int, list[str]]:
    """Thumbnails for the cards (each card gets `thumb`, and `src` for the full-size view):
    reused when their file exists, else made on `workers` threads. Returns (made, reused, lines
    naming the images that could not be read)."""
    folder = target / THUMBS
    page_dir = os.path.abspath(target)
    jobs: dict[str, _Thumb] = {}
    reused = 0
    for card, seed in written:
        if seed is None:
            continue
        card.update(_original(seed, page_dir))
        name = _thumb_name(seed.sha256)
        if (folder / name).exists():
            card["thumb"] = f"{THUMBS}/{name}"
            reused += 1
        else:
            jobs.setdefault(card["id"], _Thumb(seed, name))
    by_id = {card["id"]: card for card, _ in written}
    unreadable: list[str] = []
    made = 0
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results = pool.map(lambda job: _make_thumb(job, folder), jobs.values())
        for image_id, (thumb, note) in zip(jobs, results, strict=True):
            card = by_id[image_id]
            if thumb is not None:
                card["thumb"] = f"{THUMBS}/{thumb}"
                made += 1
            if note is not None:
                card["note"] = note
                if thumb is None:
                    unreadable.append(f"{image_id}: {note}")
    _prune(folder, {c["thumb"].removeprefix(f"{THUMBS}/") for c, _ in written if "thumb" in c},
           "*.jpg")
    return made, reused, unreadable


def render_page(data: dict[str, Any]) -> str:
    """The page: the template with `data` inline as JSON (every `<` escaped, so no text in it
    can end the script element) and the title."""
    template = files("auto_label").joinpath("review_page.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return template.replace("__TITLE__", escape(f"review: {data['title']}")) \
        .replace("__DATA__", payload)


__all__ = ["PALETTE", "ReviewResult", "colour", "file_name", "render_page", "write_review"]
