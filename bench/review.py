"""The review page at 10,000 images (run by hand): how long `write_review` takes, how big the page
is, and how soon headless Chromium has rendered its first page of cards.

    .venv/bin/python bench/review.py                 # 10,000 images under /tmp/bench_review
    .venv/bin/python bench/review.py --images 2000 --photos 50

1. A grounding ledger of `--images` images is built with bench/build_ledger.py (tiny 16x16 PNGs,
   99% done; kept in /tmp/bench_review and reused by later runs). `write_review` runs on it with
   no thumbnails yet (cold) and then three times with all of them there (warm, median).
2. Chromium loads the page with `--dump-dom` three times (fresh profile each): the wall time of the
   whole browser run, and the page's own mark (`data-ready` on <body>: milliseconds from
   navigation to the first page of cards drawn, parsing the inline data included); the same with
   a search in the URL (`#q=...`: every image's text searched).
3. Thumbnails of real-sized photos cost what decoding costs: `--photos` simulator scenes of
   1600x1200 JPEG are labelled by a real run against the simulator and `write_review` times their
   thumbnails (milliseconds of wall time per image on this machine's cores).

Prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from build_ledger import build
from common import load, machine, median

from auto_label.api import generate
from auto_label.review import write_review
from auto_label.sim import SimConfig, Simulator
from auto_label.sim.datasets import write_grounding_dataset

WORK = Path("/tmp/bench_review")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def timed(call):
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def chromium(url: str) -> tuple[float, int, int]:
    """(wall seconds of a --dump-dom run, the page's data-ready ms, cards shown)."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        started = time.perf_counter()
        done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                              capture_output=True, text=True, timeout=300, check=True)
        wall = time.perf_counter() - started
    ready = re.search(r'data-ready="(\d+)"', done.stdout)
    if ready is None:
        raise RuntimeError("the page never drew its first page")
    return wall, int(ready.group(1)), done.stdout.count('<article class="card')


def ledger(images: int) -> Path:
    results = WORK / f"results_{images}"
    if not (results / "ledger.db").exists():
        shutil.rmtree(results, ignore_errors=True)
        shutil.rmtree(WORK / f"data_{images}", ignore_errors=True)
        print(f"building a ledger of {images} images...", file=sys.stderr)
        build(results, WORK / f"data_{images}", images=images, done=0.99)
    return results


def photos(count: int) -> tuple[float, int]:
    """(wall ms per photo of the thumbnails of `count` 1600x1200 JPEGs, photos)."""
    root = WORK / "photos"
    shutil.rmtree(root, ignore_errors=True)
    data = write_grounding_dataset(root / "data", count, seed=7, sizes=[(1600, 1200)],
                                   image_format="jpg")
    from support import grounding_spec

    with Simulator(SimConfig(seed=3, api_key="sk-sim-test-key-0123456789")) as sim:
        generate(grounding_spec(root / "out", data.root, sim.openai_base_url,
                                "image_grounding.workflow.max_workers=8"))
    result, seconds = timed(lambda: write_review(root / "out"))
    assert result.thumbnails_made == count, result
    return seconds * 1000 / count, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--photos", type=int, default=100)
    args = parser.parse_args(argv)
    results = ledger(args.images)
    shutil.rmtree(results / "review", ignore_errors=True)
    cold, cold_s = timed(lambda: write_review(results))
    warm = [timed(lambda: write_review(results))[1] for _ in range(3)]
    page = cold.page
    size_mb = page.stat().st_size / 1e6
    thumbs_mb = sum(p.stat().st_size for p in (page.parent / "thumbs").iterdir()) / 1e6
    show_mb = sum(p.stat().st_size for p in (page.parent / "show").iterdir()) / 1e6
    loads = [chromium(page.as_uri()) for _ in range(3)]
    searches = [chromium(page.as_uri() + "#q=blue%20square") for _ in range(3)]
    per_photo, count = photos(args.photos)
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True,
                             text=True).stdout.strip()
    print(f"## Review page: {time.strftime('%Y-%m-%d')}\n")
    print(f"Machine: {machine()}, load {load()} at the end. `bench/review.py`: a grounding ledger "
          f"of {args.images:,} images ({cold.images:,} with a record; 16x16 PNGs from "
          f"bench/build_ledger.py); {version} headless, fresh profile per load; median of 3.\n")
    print("| figure | value |\n|---|---|")
    print(f"| `write_review`, no thumbnails yet | {cold_s:.1f} s |")
    print(f"| `write_review` again (thumbnails reused, show texts unchanged) | "
          f"{median(warm):.1f} s |")
    print(f"| index.html (data inline) | {size_mb:.1f} MB |")
    print(f"| thumbs/ + show/ | {thumbs_mb:.1f} MB + {show_mb:.1f} MB |")
    print(f"| first page of 48 cards drawn (page's own mark, from navigation) | "
          f"{median([r for _, r, _ in loads]):.0f} ms |")
    print(f"| whole headless Chromium run, start to DOM dump | "
          f"{median([w for w, _, _ in loads]):.2f} s |")
    print(f"| the same with `#q=blue square` (all {cold.images:,} searched) | "
          f"{median([r for _, r, _ in searches]):.0f} ms, "
          f"{median([w for w, _, _ in searches]):.2f} s |")
    print(f"| `write_review` of {count} labelled 1600x1200 JPEGs, thumbnails made (all cores) |"
          f" {per_photo:.1f} ms wall per photo |")
    assert all(c == 48 for _, _, c in loads), loads
    return 0


if __name__ == "__main__":
    sys.exit(main())
