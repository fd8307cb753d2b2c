"""Resume, status and export at scale (run by hand).

    .venv/bin/python bench/resume.py [--images 10000 100000] [--repeat 3] [--root /tmp/bench_resume]

For each size: a results_dir built by `build_ledger.build` (99% done, reused across invocations
from ROOT/<size>/, built once), copied afresh before each measured rerun. Then, each as a
subprocess timed by /usr/bin/time (wall seconds, peak RSS) against a simulator subprocess
(`SimProcess`, latency --latency):

- `generate` (the rerun): seconds from launch to its first new request (the simulator's arrival
  time of the first grounding request, minus the launch time), total seconds, peak RSS, requests
  sent, events appended;
- `generate` again on the finished results_dir (an unchanged rerun): seconds, RSS, events appended;
- `status` and `export`: seconds, peak RSS.

Prints one JSON object per measurement and a markdown table of the medians; `--json FILE` saves
them. `measure(size, ...)` is the same as a function, for bench/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_ledger import BuiltLedger, build
from common import PYTHON, SimProcess, load, machine, peak_rss_mb

ROOT = Path("/tmp/bench_resume")


@dataclass
class Timed:
    seconds: float
    rss_mb: float


@dataclass
class Figures:
    """One measured round over one size."""

    images: int
    events: int
    load: str = ""
    """the 1-minute load average before the round"""
    first_request_s: float | None = None
    rerun: Timed | None = None
    rerun_requests: int = 0
    rerun_events: int = 0
    unchanged: Timed | None = None
    unchanged_events: int = 0
    status: Timed | None = None
    export: Timed | None = None
    notes: list[str] = field(default_factory=list)


def write_spec(path: Path, overrides: list[str]) -> Path:
    spec: dict[str, Any] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        node = spec
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(spec))
    return path


def timed(args: list[str], code: Path | None = None) -> tuple[Timed, float]:
    """Run `python -m auto_label ARGS` (from the source tree `code` when given, e.g. an
    unpacked `git archive` of an older commit): (seconds and peak RSS, its launch time)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as users
    if code is not None:
        env["PYTHONPATH"] = str(code)
    launched = time.time()
    # `-m` puts the working directory first on sys.path: run from the tree measured
    cwd = code if code is not None else Path(__file__).resolve().parent.parent
    seconds, rss, status = peak_rss_mb([PYTHON, "-m", "auto_label", *args], env=env, cwd=cwd,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if status not in (0, 1):
        raise RuntimeError(f"auto_label {' '.join(args)} exited {status}")
    return Timed(seconds, rss), launched


def max_seq(results: Path) -> int:
    conn = sqlite3.connect(results / "ledger.db")
    try:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
    finally:
        conn.close()


def requests_seen(sim: SimProcess) -> list[dict[str, Any]]:
    return [r for r in sim.stats()["requests"] if str(r["task"]).startswith("grounding.")]


def built_for(root: Path, images: int, done: float) -> BuiltLedger:
    """The pristine build of `images` under root (built once; its events counted)."""
    base = root / str(images)
    marker = base / "built.json"
    if marker.exists():
        facts = json.loads(marker.read_text())
        return BuiltLedger(base / "pristine", base / "data", images, facts["done"],
                           facts["undone"], facts["events"], facts["seconds"])
    shutil.rmtree(base, ignore_errors=True)
    built = build(base / "pristine", base / "data", images, done)
    marker.write_text(json.dumps({"done": built.done, "undone": built.undone,
                                  "events": built.events, "seconds": built.seconds}))
    return built


def fresh_copy(built: BuiltLedger, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for item in built.results_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, target / item.name)
    return target


def measure(images: int, *, root: Path = ROOT, done: float = 0.99, latency: float = 0.05,
            workers: int = 16, unchanged: bool = True, code: Path | None = None) -> Figures:
    """One round: rerun, unchanged rerun, status, export on a fresh copy of the build (with
    the auto_label of the source tree `code` when given)."""
    built = built_for(root, images, done)
    results = fresh_copy(built, root / str(images) / "results")
    figures = Figures(images, built.events, load())
    sim = SimProcess("--latency", str(latency))
    try:
        spec = write_spec(root / str(images) / "spec.yaml", built.overrides(
            sim.base_url, f"results_dir={results}",
            f"image_grounding.workflow.max_workers={workers}"))
        before = max_seq(results)
        figures.rerun, launched = timed(["generate", "-e", str(spec)], code)
        seen = requests_seen(sim)
        figures.rerun_requests = len(seen)
        if seen:
            figures.first_request_s = min(r["time"] for r in seen) - launched
        after = max_seq(results)
        figures.rerun_events = after - before
        if unchanged:
            figures.unchanged, _ = timed(["generate", "-e", str(spec)], code)
            figures.unchanged_events = max_seq(results) - after
            if len(requests_seen(sim)) != len(seen):
                figures.notes.append("the unchanged rerun sent requests")
    finally:
        sim.close()
    figures.status, _ = timed(["status", str(results)], code)
    figures.export, _ = timed(["export", str(results)], code)
    return figures


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def table(rounds: dict[int, list[Figures]]) -> str:
    def fmt(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = ["| images | events | start -> first new request s | rerun s | rerun RSS MB "
             "| requests | events appended | unchanged rerun s / RSS MB / events "
             "| status s / RSS MB | export s / RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for images, figures in rounds.items():
        def m(get: Any, figures: list[Figures] = figures) -> float | None:
            return median([get(f) for f in figures])
        lines.append(
            f"| {images} | {figures[0].events} | {fmt(m(lambda f: f.first_request_s), 2)} "
            f"| {fmt(m(lambda f: f.rerun.seconds))} | {fmt(m(lambda f: f.rerun.rss_mb), 0)} "
            f"| {fmt(m(lambda f: f.rerun_requests), 0)} | {fmt(m(lambda f: f.rerun_events), 0)} "
            f"| {fmt(m(lambda f: f.unchanged and f.unchanged.seconds))} / "
            f"{fmt(m(lambda f: f.unchanged and f.unchanged.rss_mb), 0)} / "
            f"{fmt(m(lambda f: f.unchanged_events), 0)} "
            f"| {fmt(m(lambda f: f.status.seconds), 2)} / {fmt(m(lambda f: f.status.rss_mb), 0)} "
            f"| {fmt(m(lambda f: f.export.seconds))} / {fmt(m(lambda f: f.export.rss_mb), 0)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--code", type=Path, default=None,
                        help="run this source tree's auto_label (e.g. `git archive COMMIT` "
                             "unpacked), to measure before and after on the same builds")
    args = parser.parse_args()
    rounds: dict[int, list[Figures]] = {}
    for images in args.images:
        for _ in range(args.repeat):
            figures = measure(images, root=args.root, latency=args.latency,
                              workers=args.workers, code=args.code)
            rounds.setdefault(images, []).append(figures)
            print(json.dumps(asdict(figures)), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({str(k): [asdict(f) for f in v]
                                         for k, v in rounds.items()}, indent=1))
    print(f"\n{machine()}; simulator latency {args.latency * 1000:.0f} ms, "
          f"max_workers {args.workers}, median of {args.repeat}\n")
    print(table(rounds))


if __name__ == "__main__":
    main()
