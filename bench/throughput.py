"""Throughput and CPU overhead of a run, against a bare loop over the same SDK (run by hand, or
through bench/run.py).

    .venv/bin/python bench/throughput.py [--images 2000] [--latency 0.1] [--workers 8 32 64]
                                         [--create]

For each max_workers: a fresh simulator (in its own process, so its CPU is not ours) with fixed
latency; our `generate` on 2,000 fresh images (two steps, so 4,000 requests); then, against another
fresh simulator, a bare loop that sends the very same requests (prompts read back from our ledger,
the same image bytes read from disk) with the same openai SDK call our backend makes
(`client.post`, the body's bytes read with `json.loads`), at the same concurrency, and writes
nothing.
With --create, a second bare loop uses `chat.completions.create`, whose parameter transform costs
about 1.4 ms of CPU per request (the way a bare loop is usually written).

The bare loop shares one client among its threads, as a bare loop is usually written; our backend
gives each thread a client of its own (backends/openai_backend.py: the SDK's connection pool is
walked, under one lock, on every request). With --own-clients, another bare loop does that too
(the SDK call's own cost, without our pool setting).

Reported per run: our throughput as a fraction of the bare loop's (target >= 0.97 in one run) and
of the ceiling max_workers / latency, and our CPU ms per request minus the bare loop's (target
<= 1 ms). Our CPU includes everything `generate` does: seeding (hash and verify of each image),
planning, the ledger, parsing and the export at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import openai
from common import WORK, SimProcess, cpu_seconds, load, overrides
from openai.types.chat import ChatCompletion

import auto_label.backends.openai_backend  # noqa: F401 - imported before CPU is measured
from auto_label import generate, load_spec
from auto_label.ledger import Ledger
from auto_label.sim import write_grounding_dataset

DATA = WORK / "throughput_data"


@dataclass(frozen=True)
class Row:
    workers: int
    requests: int
    ours_rate: float
    bare_rate: float
    ours_cpu_ms: float
    bare_cpu_ms: float
    busy: float
    """cores busy (ours + the simulator) during our run"""
    ceiling: float
    load: str
    create_rate: float | None = None
    create_cpu_ms: float | None = None
    own_rate: float | None = None
    own_cpu_ms: float | None = None

    @property
    def ratio(self) -> float:
        return self.ours_rate / self.bare_rate

    @property
    def overhead_ms(self) -> float:
        return self.ours_cpu_ms - self.bare_cpu_ms


def dataset(images: int) -> Path:
    """2,000 320x240 PNG scenes (written once)."""
    if not (DATA / "input.jsonl").exists() or \
            len((DATA / "input.jsonl").read_text().splitlines()) != images:
        shutil.rmtree(DATA, ignore_errors=True)
        write_grounding_dataset(DATA, images, seed=1, sizes=[(320, 240)])
    return DATA


def run_ours(data: Path, results: Path, base_url: str, workers: int) -> tuple[float, float, int]:
    """(wall s, CPU s, requests) of `generate` on a fresh results_dir."""
    shutil.rmtree(results, ignore_errors=True)
    spec = load_spec(None, overrides(results, data, base_url, workers))
    cpu, wall = cpu_seconds(), time.perf_counter()
    summary = generate(spec)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    assert summary.complete, summary
    return wall, cpu, summary.requests


def recorded_requests(results: Path) -> list[tuple[str, Path]]:
    """(prompt, image path) of every request the ledger of `results` holds, in order."""
    try:  # prompts stored as a template and its values (since the compact ledger)
        from auto_label.ledger.templates import TemplateBook
    except ImportError:  # an older tree (BENCH_CODE): every request holds its prompt
        TemplateBook = None  # type: ignore[assignment,misc]
    paths = {}
    requests = []
    with Ledger.open(results, create=False) as ledger:
        book = TemplateBook(ledger.connection()) if TemplateBook is not None else None
        for _, event in ledger.events(["image_seeded"]):
            paths[event.image_id] = Path(event.path)
        for _, event in ledger.events(["request_sent"]):
            prompt = book.sent(event).prompt if book is not None else event.prompt
            requests.append((prompt, paths[event.image_id]))
    return requests


def run_bare(requests: list[tuple[str, Path]], base_url: str, workers: int,
             call: str) -> tuple[float, float]:
    """(wall s, CPU s) of a thread pool sending `requests`; `call` "post": the SDK call our
    backend makes (`client.post`, the body's bytes read with json.loads), through one client;
    "own": the same through a client per thread, as our backend; "typed": `client.post`
    building the SDK's `ChatCompletion`; "create": chat.completions.create."""
    client = openai.OpenAI(api_key="EMPTY", base_url=base_url, max_retries=0, timeout=60)
    local = threading.local()
    clients = [client]

    def thread_client() -> openai.OpenAI:
        if call != "own":
            return client
        mine: openai.OpenAI | None = getattr(local, "client", None)
        if mine is None:
            mine = local.client = client.with_options(http_client=openai.DefaultHttpxClient())
            clients.append(mine)
        return mine

    def one(item: tuple[str, Path]) -> str:
        prompt, path = item
        data = path.read_bytes()
        url = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        body = {"model": "sim", "temperature": 0.7, "max_tokens": 4096,
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": url}}]}]}
        if call in ("post", "own"):  # as our backend: the body's bytes, read once
            raw = thread_client().post("/chat/completions", body=body, cast_to=bytes)
            return str(json.loads(raw)["choices"][0]["message"]["content"] or "")
        if call == "typed":
            reply = client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        else:
            reply = client.chat.completions.create(**body)  # type: ignore[call-overload]
        return reply.choices[0].message.content or ""

    cpu, wall = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(one, requests):
            pass
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    for made in clients:
        made.close()
    return wall, cpu


def measure(workers: int, images: int = 2000, latency: float = 0.1,
            create: bool = False, own: bool = False) -> Row:
    """One run of ours and one of the bare loop (each against a fresh simulator)."""
    data = dataset(images)
    results = WORK / f"throughput_{workers}"
    before = load()
    with SimProcess("--latency", str(latency)) as sim:
        sim_cpu = sim.cpu_seconds()
        ours_wall, ours_cpu, n = run_ours(data, results, sim.base_url, workers)
        sim_cpu = sim.cpu_seconds() - sim_cpu
    requests = recorded_requests(results)
    shutil.rmtree(results, ignore_errors=True)
    bare = {}
    for call in ("post", *(["create"] if create else []), *(["own"] if own else [])):
        with SimProcess("--latency", str(latency)) as sim:
            bare[call] = run_bare(requests, sim.base_url, workers, call)
    bare_wall, bare_cpu = bare["post"]
    create_rate = create_cpu = own_rate = own_cpu = None
    if create:
        create_rate = len(requests) / bare["create"][0]
        create_cpu = 1000 * bare["create"][1] / len(requests)
    if own:
        own_rate = len(requests) / bare["own"][0]
        own_cpu = 1000 * bare["own"][1] / len(requests)
    return Row(workers, n, n / ours_wall, len(requests) / bare_wall, 1000 * ours_cpu / n,
               1000 * bare_cpu / len(requests), (ours_cpu + sim_cpu) / ours_wall,
               workers / latency, f"{before}-{load()}", create_rate, create_cpu, own_rate, own_cpu)


def describe(row: Row) -> str:
    text = (f"{row.workers} workers: ours {row.ours_rate:.1f} req/s, bare {row.bare_rate:.1f} "
            f"req/s, ratio {row.ratio:.3f}; CPU ms/req ours {row.ours_cpu_ms:.2f}, bare "
            f"{row.bare_cpu_ms:.2f}, overhead {row.overhead_ms:.2f}; cores busy {row.busy:.2f}; "
            f"load {row.load}")
    if row.create_rate is not None:
        text += f"; bare create() {row.create_rate:.1f} req/s, {row.create_cpu_ms:.2f} ms/req"
    if row.own_rate is not None:
        text += (f"; bare, a client per thread {row.own_rate:.1f} req/s, "
                 f"{row.own_cpu_ms:.2f} ms/req")
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--create", action="store_true")
    parser.add_argument("--own-clients", action="store_true",
                        help="also a bare loop with a client per thread, as our backend")
    args = parser.parse_args()
    for workers in args.workers:
        print(describe(measure(workers, args.images, args.latency, args.create,
                               args.own_clients)), flush=True)


if __name__ == "__main__":
    main()
