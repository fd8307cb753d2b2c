"""Throughput and CPU overhead of a run, against a bare loop over the same SDK (run by hand).

    .venv/bin/python bench/throughput.py [--images 2000] [--latency 0.1] [--workers 8 32]

For each max_workers: a fresh simulator (in its own process, so its CPU is not ours) with fixed
latency; our `generate` on 2,000 fresh images (two steps, so 4,000 requests); then, against another
fresh simulator, a bare loop that sends the very same requests (prompts read back from our ledger,
the same image bytes) with the same openai SDK call our backend makes (`client.post` with the typed
`ChatCompletion`), at the same concurrency, and writes nothing. For reference, a second bare loop
uses `chat.completions.create`, whose parameter transform costs about 1.4 ms of CPU per request.

Reported: our throughput as a fraction of the bare loop's (target >= 0.95) and of the ceiling
max_workers / latency, and our CPU ms per request minus the bare loop's (target <= 1 ms). Appends
the figures to BENCHMARKS.md with the date and the machine.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
from openai.types.chat import ChatCompletion

import auto_label.backends.openai_backend  # noqa: F401 - imported before CPU is measured
from auto_label import generate, load_spec
from auto_label.ledger import Ledger
from auto_label.sim import write_grounding_dataset

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class SimProcess:
    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "auto_label.sim", "serve", "--latency", str(latency)],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = ""
        for line in self.proc.stdout:
            if line.startswith("OPENAI_BASE_URL="):
                self.base_url = line.strip().split("=", 1)[1]
                break

    def cpu_seconds(self) -> float:
        """User + system CPU the simulator process has used so far (Linux)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run_ours(data: Path, results: Path, base_url: str, workers: int) -> tuple[float, float, int]:
    shutil.rmtree(results, ignore_errors=True)
    spec = load_spec(None, [
        f"results_dir={results}", "autolabel_type=image_grounding",
        "image_grounding.vlm.backend=openai", f"image_grounding.vlm.openai.base_url={base_url}",
        "image_grounding.vlm.openai.model_name=sim",
        f"image_grounding.workflow.max_workers={workers}",
        f"image_grounding.data.input_jsonl={data / 'input.jsonl'}",
        f"image_grounding.data.image_root={data}",
    ])
    cpu, wall = cpu_seconds(), time.perf_counter()
    summary = generate(spec)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    assert summary.complete, summary
    return wall, cpu, summary.requests


def recorded_requests(results: Path) -> list[tuple[str, Path]]:
    paths = {}
    requests = []
    with Ledger.open(results, create=False) as ledger:
        for _, event in ledger.events(["image_seeded"]):
            paths[event.image_id] = Path(event.path)
        for _, event in ledger.events(["request_sent"]):
            requests.append((event.prompt, paths[event.image_id]))
    return requests


def run_bare(requests: list[tuple[str, Path]], base_url: str, workers: int,
             call: str) -> tuple[float, float]:
    """`call` "post": the SDK call our backend makes; "create": chat.completions.create."""
    client = openai.OpenAI(api_key="EMPTY", base_url=base_url, max_retries=0, timeout=60)

    def one(item: tuple[str, Path]) -> str:
        prompt, path = item
        data = path.read_bytes()
        url = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        body = {"model": "sim", "temperature": 0.7, "max_tokens": 4096,
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": url}}]}]}
        if call == "post":
            reply = client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        else:
            reply = client.chat.completions.create(**body)
        return reply.choices[0].message.content or ""

    cpu, wall = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(one, requests):
            pass
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    client.close()
    return wall, cpu


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, " \
           f"Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    data = OUT / "throughput_data"
    write_grounding_dataset(data, args.images, seed=1, sizes=[(320, 240)])
    rows = []
    for workers in args.workers:
        sim = SimProcess(args.latency)
        try:
            sim_cpu = sim.cpu_seconds()
            ours_wall, ours_cpu, n = run_ours(data, OUT / f"throughput_{workers}", sim.base_url,
                                              workers)
            sim_cpu = sim.cpu_seconds() - sim_cpu
        finally:
            sim.close()
        requests = recorded_requests(OUT / f"throughput_{workers}")
        bare = {}
        for call in ("post", "create"):
            sim = SimProcess(args.latency)
            try:
                bare[call] = run_bare(requests, sim.base_url, workers, call)
            finally:
                sim.close()
        (bare_wall, bare_cpu), (create_wall, create_cpu) = bare["post"], bare["create"]
        ceiling = workers / args.latency
        ours_rate, bare_rate = n / ours_wall, len(requests) / bare_wall
        rows.append((workers, n, ours_rate, bare_rate, ours_rate / bare_rate, ours_rate / ceiling,
                     1000 * ours_cpu / n, 1000 * bare_cpu / len(requests),
                     (ours_cpu + sim_cpu) / ours_wall, len(requests) / create_wall,
                     1000 * create_cpu / len(requests)))
        print(rows[-1], flush=True)
    lines = [
        f"\n## Throughput: {datetime.date.today().isoformat()}",
        "",
        f"Machine: {machine()}. {args.images} images (320x240 PNG), 2 steps, simulator latency "
        f"{args.latency * 1000:.0f} ms in its own process. `bench/throughput.py`.",
        "",
        "| max_workers | requests | ours req/s | bare loop req/s | ours / bare (>= 0.95) "
        "| ours / ceiling | ours CPU ms/req | bare CPU ms/req | overhead ms/req (<= 1) "
        "| cores busy (ours + simulator) | bare `create()` req/s | bare `create()` CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for w, n, ours, bare, ratio, ceil, ocpu, bcpu, busy, crate, ccpu in rows:
        lines.append(f"| {w} | {n} | {ours:.1f} | {bare:.1f} | {ratio:.3f} | {ceil:.3f} "
                     f"| {ocpu:.2f} | {bcpu:.2f} | {ocpu - bcpu:.2f} | {busy:.2f} "
                     f"| {crate:.1f} | {ccpu:.2f} |")
    with (ROOT / "BENCHMARKS.md").open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
