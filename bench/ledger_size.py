"""Ledger bytes per image, by event type, after real runs against the simulator (run by hand).

    .venv/bin/python bench/ledger_size.py [--grounding 200] [--referring 100] [--repeat 3]
                                          [--label before] [--append]

For each pipeline: a fresh synthetic dataset, a fresh results_dir under /tmp/bench_ledger_size,
one `generate` against the simulator (in this process, no latency, no faults, so every image asks
every step once), then the ledger is read back:

- per event type: how many, the mean bytes of their JSON body (UTF-8), and bytes per image;
- bytes per image beyond the raw answer text: (the sum of every body's bytes, minus the bytes the
  answers' text and thinking take in the response_received bodies, as stored: JSON-escaped) /
  images. Run-level events (run_started...) are counted too, spread over the images;
- the SQLite file per image (after a WAL checkpoint): everything, indexes and projections
  included, and split by table and index (`dbstat`).

Each figure is the median over `--repeat` runs (they differ by a few bytes: timestamps). Prints
markdown; `--append` also appends it to BENCHMARKS.md with the date and the machine. Deletes what
it wrote unless `--keep`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sqlite3
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from auto_label import generate, load_spec
from auto_label.sim import SimConfig, Simulator, write_grounding_dataset, write_referring_dataset

ROOT = Path(__file__).resolve().parent.parent
WORK = Path("/tmp/bench_ledger_size")
KEY = "sk-bench-ledger-size"


@dataclass
class Figures:
    """One run's ledger, measured."""

    images: int
    by_type: dict[str, tuple[int, float]] = field(default_factory=dict)
    """event type -> (count, total body bytes)"""
    answer_bytes: float = 0.0
    """the answers' text and thinking as stored in the bodies (JSON-escaped), in bytes"""
    file_bytes: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    """table or index -> bytes of its pages"""

    @property
    def body_bytes(self) -> float:
        return sum(total for _, total in self.by_type.values())

    @property
    def beyond_answers(self) -> float:
        """Body bytes per image beyond the raw answer text."""
        return (self.body_bytes - self.answer_bytes) / self.images


def machine() -> str:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, " \
           f"Python {platform.python_version()}"


def _stored_length(text: str | None) -> int:
    """The bytes `text` takes inside a JSON body (escaped, without its quotes)."""
    if text is None:
        return 0
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def measure(path: Path, images: int) -> Figures:
    """Read the ledger at `path` (ledger.db) back: sizes by event type, answers, file, tables."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        figures = Figures(images)
        for kind, count, total in conn.execute(
                "SELECT type, COUNT(*), SUM(length(CAST(body AS BLOB))) FROM events GROUP BY type"):
            figures.by_type[str(kind)] = (int(count), float(total))
        for (body,) in conn.execute("SELECT body FROM events WHERE type = 'response_received'"):
            raw = json.loads(body)
            figures.answer_bytes += _stored_length(raw.get("text"))
            figures.answer_bytes += _stored_length(raw.get("thinking"))
        figures.tables = {str(name): int(size) for name, size in conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")}
    finally:
        conn.close()
    figures.file_bytes = path.stat().st_size
    return figures


def _overrides(pipeline: str, results: Path, data: Path, base_url: str) -> list[str]:
    block = pipeline
    common = [f"results_dir={results}", f"autolabel_type={pipeline}",
              f"{block}.vlm.backend=openai", f"{block}.vlm.openai.base_url={base_url}",
              f"{block}.vlm.openai.api_key={KEY}", f"{block}.vlm.openai.model_name=sim-vlm",
              f"{block}.workflow.max_workers=8"]
    if pipeline == "image_grounding":
        return [*common, f"{block}.data.input_jsonl={data / 'input.jsonl'}",
                f"{block}.data.image_root={data}"]
    return [*common, f"{block}.data.image_dir={data / 'images'}",
            f"{block}.data.kitti_label_dir={data / 'labels'}"]


WRITERS: dict[str, Callable[..., object]] = {
    "image_grounding": write_grounding_dataset,
    "image_referring_expression": write_referring_dataset,
}


def run_once(pipeline: str, images: int, seed: int, sim: Simulator) -> Figures:
    """A fresh dataset and results_dir, one generate, the ledger measured."""
    where = WORK / f"{pipeline}-{seed}"
    shutil.rmtree(where, ignore_errors=True)
    data, results = where / "data", where / "results"
    WRITERS[pipeline](data, images, seed)
    summary = generate(load_spec(None, _overrides(pipeline, results, data, sim.openai_base_url)))
    del summary
    return measure(results / "ledger.db", images)


def _median(values: list[float]) -> float:
    return statistics.median(values)


TABLE_GROUPS = {
    "events (table)": ("events",),
    "events indexes": ("events_by_image", "events_by_type"),
    "projections (images, completions, current, runs, their keys)": (
        "images", "completions", "current", "runs", "sqlite_autoindex_images_1",
        "sqlite_autoindex_completions_1", "sqlite_autoindex_current_1",
        "sqlite_autoindex_runs_1", "sqlite_autoindex_runs_2"),
}


def report(pipeline: str, runs: list[Figures]) -> list[str]:
    """The markdown lines of one pipeline's figures (medians over `runs`)."""
    images = runs[0].images
    types = sorted({t for r in runs for t in r.by_type},
                   key=lambda t: -max(r.by_type.get(t, (0, 0.0))[1] for r in runs))
    lines = [f"{pipeline}, {images} images:", "",
             "| event type | count | mean body bytes | bytes per image |",
             "|---|---|---|---|"]
    for kind in types:
        count = _median([r.by_type.get(kind, (0, 0.0))[0] for r in runs])
        total = _median([r.by_type.get(kind, (0, 0.0))[1] for r in runs])
        mean = total / count if count else 0.0
        lines.append(f"| {kind} | {count:g} | {mean:,.0f} | {total / images:,.0f} |")
    answers = _median([r.answer_bytes / images for r in runs])
    bodies = _median([r.body_bytes / images for r in runs])
    beyond = _median([r.beyond_answers for r in runs])
    file_bytes = _median([r.file_bytes / images for r in runs])
    lines += [
        f"| **all bodies** | | | **{bodies:,.0f}** |",
        f"| of which the answers' text | | | {answers:,.0f} |",
        f"| **bodies beyond the answer text (target <= 2,048)** | | | **{beyond:,.0f}** |",
        f"| SQLite file (after a checkpoint) | | | {file_bytes:,.0f} |",
    ]
    for label, names in TABLE_GROUPS.items():
        size = _median([sum(r.tables.get(n, 0) for n in names) / images for r in runs])
        lines.append(f"| file: {label} | | | {size:,.0f} |")
    file_beyond = _median([(r.file_bytes - r.answer_bytes) / images for r in runs])
    lines += [f"| file beyond the answer text | | | {file_beyond:,.0f} |", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grounding", type=int, default=200, help="grounding images")
    parser.add_argument("--referring", type=int, default=100, help="referring images")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--label", default="", help="e.g. before / after, in the heading")
    parser.add_argument("--append", action="store_true", help="append to BENCHMARKS.md")
    parser.add_argument("--keep", action="store_true", help=f"keep {WORK}")
    args = parser.parse_args()
    sizes = {"image_grounding": args.grounding, "image_referring_expression": args.referring}
    results: dict[str, list[Figures]] = {}
    with Simulator(SimConfig(seed=3, api_key=KEY)) as sim:
        for pipeline, images in sizes.items():
            if images > 0:
                results[pipeline] = [run_once(pipeline, images, seed, sim)
                                     for seed in range(args.repeat)]
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    label = f" ({args.label})" if args.label else ""
    lines = [f"## Ledger size{label}: {datetime.date.today().isoformat()}", "",
             f"Machine: {machine()}. `bench/ledger_size.py`: one generate per pipeline against "
             f"the simulator (openai protocol, no faults), median of {args.repeat} runs. Bytes "
             "of the events' JSON bodies, and of the SQLite file.", ""]
    for pipeline, runs in results.items():
        lines += report(pipeline, runs)
    text = "\n".join(lines)
    print(text)
    if args.append:
        with (ROOT / "BENCHMARKS.md").open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
