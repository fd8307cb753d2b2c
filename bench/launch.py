"""Launch -> first request: `auto_label generate` on one image against a bare script that imports
the openai SDK and sends one request (run by hand, or through bench/run.py).

    .venv/bin/python bench/launch.py [--runs 7]

The simulator runs in its own process (latency 0) and notes the time each request reaches it.
Each run starts a fresh process: ours (`python -m auto_label generate -e SPEC` on a fresh
results_dir, from BENCH_CODE when set) and the bare script (`import openai`, read the image, one
`chat.completions.create` with the same prompt), alternately, with bytecode caching on
(PYTHONDONTWRITEBYTECODE unset: a first, uncounted run of each writes the .pyc files).
Reported: the medians of process start -> the first chat completion reaching the simulator,
and their ratio (target <= 1.2), with ours' start -> its first contact (the pre-flight
GET /models) beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from common import PYTHON, WORK, SimProcess, auto_label, load, median, write_spec

from auto_label.sim import write_grounding_dataset

BARE = """\
import base64
import sys

import openai

client = openai.OpenAI(api_key="EMPTY", base_url=sys.argv[1], max_retries=0)
with open(sys.argv[2], "rb") as handle:
    data = handle.read()
url = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
reply = client.chat.completions.create(model="sim", messages=[{"role": "user", "content": [
    {"type": "text", "text": sys.argv[3]}, {"type": "image_url", "image_url": {"url": url}}]}])
print(reply.choices[0].message.content)
"""


@dataclass(frozen=True)
class Launch:
    ours_s: float
    """median seconds from process start to our first chat completion at the simulator"""
    bare_s: float
    contact_s: float
    """median seconds from our process start to its first request of any kind (GET /models)"""
    ours_total_s: float
    bare_total_s: float
    runs: int
    load: str

    @property
    def ratio(self) -> float:
        return self.ours_s / self.bare_s


def _first(sim: SimProcess, since: float, chat: bool) -> float:
    times = [r["time"] for r in sim.stats()["requests"]
             if r["time"] >= since and (r["task"] != "models" or not chat)]
    if not times:
        raise RuntimeError("no request reached the simulator")
    return min(times) - since


def measure(runs: int = 7) -> Launch:
    """Medians over `runs` launches of each (alternating)."""
    work = WORK / "launch"
    shutil.rmtree(work, ignore_errors=True)
    data = write_grounding_dataset(work / "data", 1, seed=3, sizes=[(320, 240)]).root
    image = data / json.loads((data / "input.jsonl").read_text().splitlines()[0])["image_path"]
    bare_script = work / "bare_one.py"
    bare_script.write_text(BARE)
    ours: list[float] = []
    bare: list[float] = []
    contact: list[float] = []
    ours_total: list[float] = []
    bare_total: list[float] = []
    loads = [load()]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with SimProcess("--latency", "0") as sim:
        spec = write_spec(work / "spec.yaml", work / "out", data, sim.base_url, 8)
        prompt = ""
        for run in range(runs + 1):  # the first of each warms the page cache; not counted
            shutil.rmtree(work / "out", ignore_errors=True)
            sim.reset()
            started = time.time()
            command, ours_env, cwd = auto_label("generate", "-e", str(spec), "--plain")
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=ours_env, cwd=cwd)
            total = time.time() - started
            if run:
                ours.append(_first(sim, started, chat=True))
                contact.append(_first(sim, started, chat=False))
                ours_total.append(total)
            if not prompt:
                prompt = _prompt(work / "out")
            sim.reset()
            started = time.time()
            subprocess.run([PYTHON, str(bare_script), sim.base_url, str(image), prompt],
                           check=True, stdout=subprocess.DEVNULL, env=env)
            total = time.time() - started
            if run:
                bare.append(_first(sim, started, chat=True))
                bare_total.append(total)
    loads.append(load())
    return Launch(median(ours), median(bare), median(contact), median(ours_total),
                  median(bare_total), runs, "-".join(loads))


def _prompt(results: Path) -> str:
    from throughput import recorded_requests

    return recorded_requests(results)[0][0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    result = measure(args.runs)
    print(f"launch -> first request: ours {result.ours_s * 1000:.0f} ms, bare "
          f"{result.bare_s * 1000:.0f} ms, ratio {result.ratio:.2f} (<= 1.2); ours' first "
          f"contact {result.contact_s * 1000:.0f} ms; whole process ours "
          f"{result.ours_total_s * 1000:.0f} ms, bare {result.bare_total_s * 1000:.0f} ms; "
          f"load {result.load}")


if __name__ == "__main__":
    main()
