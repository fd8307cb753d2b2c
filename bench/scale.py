"""Memory of a 20k-image run against a 2k-image run, and the naive baseline side by side with
ours (run by hand, or through bench/run.py).

    .venv/bin/python bench/scale.py [--sizes 2000 20000] [--workers 32] [--latency 0.1]

For each size, on the same synthetic dataset (320x240 PNG scenes, 2 steps each) and against a
fresh simulator process each time (latency 100 ms), each program in its own process (peak RSS
from wait4):

1. a fresh run: ours (`auto_label generate`) and the naive baseline (bench/naive_run.py: a
   thread pool writing one JSON checkpoint file per image per step, merged at the end);
2. a resume after 1% more input lines: seconds from launch to the first new request reaching
   the simulator, the whole rerun, its peak RSS;
3. the export: ours (`auto_label export`) and the naive merge of every checkpoint file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import PYTHON, ROOT, WORK, SimProcess, auto_label, load, peak_rss_mb, write_spec

from auto_label.sim import write_grounding_dataset

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as users run
NAIVE = ROOT / "bench" / "naive_run.py"
MORE = 0.01


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_mb: float
    requests: int = 0
    first_request_s: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@dataclass
class Side:
    """One program's figures at one size."""

    fresh: Run | None = None
    resume: Run | None = None
    export: Run | None = None


@dataclass
class Scale:
    images: int
    ours: Side = field(default_factory=Side)
    naive: Side = field(default_factory=Side)
    load: str = ""


def dataset(images: int) -> tuple[Path, list[str]]:
    """The scenes of `images` * (1 + MORE) images, written once; (root, input lines)."""
    root = WORK / f"scale_{images}"
    total = images + max(1, round(images * MORE))
    if not (root / "all.jsonl").exists():
        shutil.rmtree(root, ignore_errors=True)
        write_grounding_dataset(root, total, seed=7, sizes=[(320, 240)])
        (root / "input.jsonl").rename(root / "all.jsonl")
    lines = (root / "all.jsonl").read_text().splitlines()
    return root, lines


def _timed(command: list[str], sim: SimProcess | None = None) -> Run:
    if command[1:3] == ["-m", "auto_label"]:
        command, env, cwd = auto_label(*command[3:])
    else:
        env, cwd = ENV, ROOT
    launched = time.time()
    seconds, rss, status = peak_rss_mb(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
    if status != 0:
        raise RuntimeError(f"{' '.join(command[:4])} exited {status}")
    if sim is None:
        return Run(seconds, rss)
    sent = [r["time"] for r in sim.stats()["requests"] if r["task"] != "models"]
    return Run(seconds, rss, len(sent), min(sent) - launched if sent else None)


def _ours(root: Path, results: Path, latency: float, workers: int) -> Run:
    with SimProcess("--latency", str(latency)) as sim:
        spec = write_spec(results.parent / "ours.yaml", results, root, sim.base_url, workers)
        return _timed([PYTHON, "-m", "auto_label", "generate", "-e", str(spec)], sim)


def _naive(root: Path, out: Path, latency: float, workers: int) -> Run:
    with SimProcess("--latency", str(latency)) as sim:
        return _timed([PYTHON, str(NAIVE), str(root / "input.jsonl"), str(root), str(out),
                       sim.base_url, str(workers)], sim)


def measure(images: int, latency: float = 0.1, workers: int = 32) -> Scale:
    """Fresh run, resume after 1% more input lines and export, ours and the naive baseline's."""
    root, lines = dataset(images)
    scale = Scale(images, load=load())
    work = WORK / f"scale_runs_{images}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ours, naive = work / "ours", work / "naive"
    (root / "input.jsonl").write_text("\n".join(lines[:images]) + "\n")
    scale.ours.fresh = _ours(root, ours, latency, workers)
    scale.naive.fresh = _naive(root, naive, latency, workers)
    (root / "input.jsonl").write_text("\n".join(lines) + "\n")
    scale.ours.resume = _ours(root, ours, latency, workers)
    scale.naive.resume = _naive(root, naive, latency, workers)
    scale.ours.export = _timed([PYTHON, "-m", "auto_label", "export", str(ours)])
    scale.naive.export = _timed([PYTHON, str(NAIVE), str(root / "input.jsonl"), str(root),
                                 str(naive), "", "0", "--merge-only"])
    exported = [json.loads(line)["image_id"] for line in
                (ours / "annotations.jsonl").read_text().splitlines()]
    merged = (naive / "annotations.jsonl").read_text().count("\n")
    if len(exported) != len(lines) or merged != len(lines):
        raise RuntimeError(f"exported {len(exported)} (ours) and {merged} (naive) records of "
                           f"{len(lines)} images")
    scale.load += f"-{load()}"
    shutil.rmtree(work, ignore_errors=True)
    return scale


def describe(scale: Scale) -> str:
    parts = [f"{scale.images} images (load {scale.load}):"]
    for name, side in (("ours", scale.ours), ("naive", scale.naive)):
        fresh, resume, export = side.fresh, side.resume, side.export
        assert fresh is not None and resume is not None and export is not None
        parts.append(f"{name}: fresh {fresh.seconds:.1f} s ({fresh.rate:.0f} req/s, "
                     f"{fresh.rss_mb:.0f} MB); resume first request "
                     f"{resume.first_request_s or 0:.2f} s, {resume.seconds:.1f} s, "
                     f"{resume.rss_mb:.0f} MB; export {export.seconds:.2f} s, "
                     f"{export.rss_mb:.0f} MB")
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    for images in args.sizes:
        print(describe(measure(images, args.latency, args.workers)), flush=True)


if __name__ == "__main__":
    main()
