"""An endpoint limited to 600 requests per minute: how close a run stays to the limit, and when it
meets 429s (run by hand, or through bench/run.py).

    .venv/bin/python bench/ratelimit.py [--quick] [--rpm-setting 600] [--workers 16]

The simulator (its own process, latency 100±50 ms) accepts at most 600 requests in any sliding
60 s window and answers the rest 429 with the Retry-After until a slot frees, as a provider's
per-minute limit does. `generate` runs on enough images to outlast 5 minutes and is stopped at
5 minutes. By default the spec sets no `workflow.rpm` (the run must find the limit from the 429s);
--rpm-setting N sets `workflow.rpm: N`. --quick scales time down six times: 100 requests per
10 s window (the same 600 per minute) for 50 s.

Reported: accepted requests over the run / what the limit allows in that time (target >= 0.95),
and the accepted requests and 429s in each window-long slice of the run (429s only in the first).
"""

from __future__ import annotations

import argparse
import math
import shutil
import threading
import time
from dataclasses import dataclass

from common import PYTHON, ROOT, WORK, SimProcess, load, overrides
from throughput import dataset

from auto_label import generate, load_spec

LIMIT_PER_MINUTE = 600


@dataclass(frozen=True)
class RateLimit:
    setting: int | None
    """workflow.rpm"""
    window_s: float
    duration_s: float
    accepted: int
    limited: int
    allowed: float
    """what the limit allows in duration_s"""
    per_window: list[tuple[int, int]]
    """(accepted, 429s) in each window-long slice of the run"""
    load: str

    @property
    def ratio(self) -> float:
        return self.accepted / self.allowed

    @property
    def limited_after_first(self) -> int:
        return sum(limited for _, limited in self.per_window[1:])


def measure(setting: int | None = None, quick: bool = False, workers: int = 16) -> RateLimit:
    """One run of `duration` against the limited simulator; counts from the simulator's log."""
    window = 10.0 if quick else 60.0
    duration = 5 * window  # quick: 50 s, else 300 s
    per_window = round(LIMIT_PER_MINUTE * window / 60)
    needed = math.ceil(LIMIT_PER_MINUTE * duration / 60 / 2 * 1.2)  # images: 2 requests each
    data = dataset(max(2000, needed))
    results = WORK / "ratelimit"
    shutil.rmtree(results, ignore_errors=True)
    before = load()
    command = [PYTHON, str(ROOT / "bench" / "sim_window.py"), str(per_window), str(window),
               "0.1", "0.05"]
    with SimProcess(command=command) as sim:
        extra = [f"image_grounding.workflow.rpm={setting}"] if setting else []
        spec = load_spec(None, overrides(results, data, sim.base_url, workers, *extra))
        stop = threading.Event()
        timer = threading.Timer(duration, stop.set)
        started = time.time()
        timer.start()
        try:
            generate(spec, stop=stop)
        finally:
            timer.cancel()
        ended = min(time.time(), started + duration)
        records = [r for r in sim.stats()["requests"] if r["task"] != "models"]
    shutil.rmtree(results, ignore_errors=True)
    first = min(r["time"] for r in records)  # the limit's clock starts with the first request
    span = ended - first
    slices = max(1, math.ceil(span / window - 1e-9))
    counts = [[0, 0] for _ in range(slices)]
    for record in records:
        index = min(slices - 1, max(0, int((record["time"] - first) // window)))
        if record["status"] == 429:
            counts[index][1] += 1
        elif record["time"] <= ended:
            counts[index][0] += 1
    accepted = sum(c[0] for c in counts)
    limited = sum(c[1] for c in counts)
    allowed = per_window * span / window
    return RateLimit(setting, window, span, accepted, limited, allowed,
                     [(a, b) for a, b in counts], f"{before}-{load()}")


def describe(result: RateLimit) -> str:
    windows = ", ".join(f"{a}/{b}" for a, b in result.per_window)
    return (f"workflow.rpm {result.setting or 'unset'}: {result.accepted} accepted in "
            f"{result.duration_s:.0f} s = {result.ratio:.3f} of the limit (>= 0.95); "
            f"{result.limited} 429s, {result.limited_after_first} after the first "
            f"{result.window_s:.0f} s; per {result.window_s:.0f} s (accepted/429): {windows}; "
            f"load {result.load}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rpm-setting", type=int, default=None)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    print(describe(measure(args.rpm_setting, args.quick, args.workers)))


if __name__ == "__main__":
    main()
