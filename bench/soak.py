"""Soak: 50 random SIGKILLs across one 1,000-image run against a faulty endpoint (run by hand).

    .venv/bin/python bench/soak.py [--images 1000] [--kills 50] [--workers 8] [--seed 1]

The simulator (its own process) injects 10% 429 with Retry-After, 5% 500, 2% hangs past the
client's timeout, 5% malformed and 2% truncated answers. `auto_label generate` runs in a child
process that is SIGKILLed after a random 0.3-1.5 s of work, again and again; then plain reruns
finish the job. Reported, and appended to BENCHMARKS.md:

- lost results: images whose final record differs from a fault-free, never-killed run (must be 0);
- repeated completed steps: (image, step) pairs with more than one completion (must be 0);
- requests repeated because they were in flight at a kill (sent, never answered in the ledger);
- total requests over the ideal (one per image and step).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from auto_label.sim import write_grounding_dataset

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "soak"
FAULTS = ["rate_limit=0.10", "server_error=0.05", "hang=0.02", "malformed=0.05",
          "truncated=0.02"]


def start_sim(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "auto_label.sim", "serve", *args],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("OPENAI_BASE_URL="):
            return proc, line.strip().split("=", 1)[1]
    raise RuntimeError("the simulator did not start")


def write_spec(path: Path, results: Path, data: Path, base_url: str, workers: int) -> Path:
    spec = {
        "results_dir": str(results),
        "autolabel_type": "image_grounding",
        "image_grounding": {
            "vlm": {"backend": "openai", "openai": {
                "base_url": base_url, "model_name": "sim", "timeout": 2, "temperature": 0.0}},
            "workflow": {"max_workers": workers, "retries": {
                "max_attempts": 8, "backoff_base": 0.2, "backoff_max": 2, "parse_retries": 3}},
            "data": {"input_jsonl": str(data / "input.jsonl"), "image_root": str(data)},
        },
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def generate(spec: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "auto_label", "generate", "-e", str(spec)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def records(results: Path) -> dict[str, dict]:
    with (results / "annotations.jsonl").open() as handle:
        return {r["image_id"]: r for r in map(json.loads, handle)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    shutil.rmtree(OUT, ignore_errors=True)
    data = OUT / "data"
    write_grounding_dataset(data, args.images, seed=args.seed, sizes=[(320, 240)])

    clean_sim, clean_url = start_sim("--seed", str(args.seed))
    try:
        spec = write_spec(OUT / "clean.yaml", OUT / "clean", data, clean_url, 16)
        assert generate(spec).wait() == 0, "the fault-free reference run failed"
    finally:
        clean_sim.terminate()
        clean_sim.wait()

    sim, url = start_sim("--seed", str(args.seed), "--latency", "0.05", "--jitter", "0.03",
                         "--hang-seconds", "30", *[a for f in FAULTS for a in ("--fault", f)])
    results = OUT / "killed"
    spec = write_spec(OUT / "killed.yaml", results, data, url, args.workers)
    started = time.monotonic()
    kills = finished_early = 0
    try:
        while kills < args.kills:
            child = generate(spec)
            time.sleep(1.0 + rng.uniform(0.3, 1.5))  # start-up, then a random stretch of work
            if child.poll() is not None:
                finished_early += 1
                break
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            kills += 1
        reruns = 0
        while generate(spec).wait() != 0 and reruns < 10:
            reruns += 1
    finally:
        sim.terminate()
        sim.wait()
    elapsed = time.monotonic() - started

    final, reference = records(results), records(OUT / "clean")
    lost = sum(1 for image_id, record in reference.items() if final.get(image_id) != record)
    conn = sqlite3.connect(results / "ledger.db")
    repeated_steps = conn.execute(
        "SELECT COUNT(*) FROM (SELECT image_id, step FROM events WHERE type = 'step_completed' "
        "GROUP BY image_id, step HAVING COUNT(*) > 1)").fetchone()[0]
    sent = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'request_sent'").fetchone()[0]
    orphans = conn.execute(
        "SELECT COUNT(*) FROM events r WHERE r.type = 'request_sent' AND NOT EXISTS ("
        "SELECT 1 FROM events a WHERE a.type IN ('response_received', 'attempt_failed') "
        "AND json_extract(a.body, '$.request_id') = json_extract(r.body, '$.request_id'))"
    ).fetchone()[0]
    runs = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    conn.close()
    ideal = 2 * args.images
    lines = [
        f"\n## Soak: {datetime.date.today().isoformat()}",
        "",
        f"`bench/soak.py`: {args.images} images, {args.kills} SIGKILLs planned "
        f"({kills} made, {runs} runs in all), max_workers {args.workers}, simulator latency "
        f"50±30 ms with faults {', '.join(FAULTS)}; {elapsed:.0f} s.",
        "",
        "| lost results (must be 0) | repeated completed steps (must be 0) "
        "| requests repeated, in flight at a kill | requests / ideal |",
        "|---|---|---|---|",
        f"| {lost} | {repeated_steps} | {orphans} | {sent} / {ideal} = {sent / ideal:.2f} |",
    ]
    if finished_early:
        lines.append(f"\nThe run finished before all planned kills ({kills} made).")
    with (ROOT / "BENCHMARKS.md").open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
