"""Every benchmark of issue 12, one command (run by hand): writes the "Scale and speed" section of
BENCHMARKS.md.

    .venv/bin/python bench/run.py [--quick] [--repeat 3] [--only launch throughput ...]

Parts (each figure the median of --repeat runs, with its target):
- resume: bench/resume.py at 100k and 1M images, 99% done (start -> first new request, peak
  RSS, an unchanged rerun's events, status, export), ledgers built by bench/build_ledger.py;
- ledger: bench/ledger_size.py, ledger bytes per image beyond the raw answer text;
- throughput: bench/throughput.py at 8, 32 and 64 workers against the bare loop;
- launch: bench/launch.py, launch -> first request against a bare script;
- ratelimit: bench/ratelimit.py, an endpoint limited to 600 requests per minute, 5 minutes;
- scale: bench/scale.py, memory of a 20k-image run against a 2k-image run, and the naive
  baseline side by side with ours (fresh run, resume, export).

--quick: 10k and 100k images for resume, 1,000 and 5,000 for scale, the rate limit in 50 s
(scaled six times), 5 launches. A part whose module is missing or fails says so in its row.
Each part's results are saved (/tmp/bench_speed/run_results), so parts can run apart, even at
the same time; the section is rewritten from all of them between its markers (text after the
end marker is kept).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import statistics
import traceback
from collections.abc import Callable
from typing import Any

from common import ROOT, WORK, load, machine

BEGIN = "<!-- bench/run.py: begin -->"
END = "<!-- bench/run.py: end -->"
HEADING = "## Scale and speed"
PARTS = ("resume", "ledger", "throughput", "launch", "ratelimit", "scale")


def med(values: list[float]) -> float:
    return statistics.median(values)


class Report:
    def __init__(self) -> None:
        self.targets: list[str] = []
        self.details: list[str] = []

    def target(self, figure: str, value: str, target: str, met: bool | None) -> None:
        mark = "pending" if met is None else "met" if met else "**missed**"
        self.targets.append(f"| {figure} | {value} | {target} | {mark} |")

    def pending(self, figure: str, target: str, why: str) -> None:
        self.targets.append(f"| {figure} | pending ({why}) | {target} | pending |")


def _try(report: Report, name: str, targets: list[tuple[str, str]],
         body: Callable[[], None]) -> None:
    try:
        body()
    except ModuleNotFoundError as exc:
        for figure, target in targets:
            report.pending(figure, target, f"{exc.name} not there yet")
    except Exception as exc:  # one part failing must not lose the others
        traceback.print_exc()
        for figure, target in targets:
            report.pending(figure, target, f"{name} failed: {type(exc).__name__}: {exc}")


def resume_part(report: Report, repeat: int, quick: bool) -> None:
    resume = importlib.import_module("resume")
    sizes = (10_000, 100_000) if quick else (100_000, 1_000_000)
    limits = {100_000: (2.0, 150.0), 1_000_000: (10.0, 300.0), 10_000: (2.0, 150.0)}
    rounds = {size: [resume.measure(size) for _ in range(repeat)] for size in sizes}
    for size, figures in rounds.items():
        first_limit, rss_limit = limits[size]
        first = med([f.first_request_s for f in figures if f.first_request_s is not None])
        rss = med([f.rerun.rss_mb for f in figures])
        label = f"{size // 1000}k images"
        report.target(f"{label}, 99% done: start -> first new request", f"{first:.2f} s",
                      f"<= {first_limit:g} s", first <= first_limit)
        report.target(f"{label}: peak RSS of that rerun", f"{rss:.0f} MB",
                      f"<= {rss_limit:g} MB", rss <= rss_limit)
    biggest = rounds[sizes[0]]
    events = med([f.unchanged_events for f in biggest])
    report.target(f"an unchanged rerun ({sizes[0] // 1000}k images): events appended",
                  f"{events:.0f}", "a handful, not one per image", events <= 20)
    status = med([f.status.seconds for f in biggest])
    report.target(f"`status` at {sizes[0] // 1000}k images", f"{status:.2f} s", "<= 1 s",
                  status <= 1.0)
    for size, figures in rounds.items():
        seconds = med([f.export.seconds for f in figures])
        per_million = seconds * 1e6 / figures[0].events
        report.target(f"`export` at {size // 1000}k images ({figures[0].events:,} events), "
                      "per 1M events", f"{seconds:.1f} s, {per_million:.1f} s per 1M",
                      "<= 10 s per 1M events", per_million <= 10.0)
    report.details += ["### Resume, status, export (bench/resume.py)", "",
                       resume.table(rounds), ""]


def ledger_part(report: Report, repeat: int, quick: bool) -> None:
    ledger_size = importlib.import_module("ledger_size")
    from auto_label.sim import SimConfig, Simulator

    images = 100 if quick else 200
    with Simulator(SimConfig(seed=3, api_key=ledger_size.KEY)) as sim:
        runs = [ledger_size.run_once("image_grounding", images, seed, sim)
                for seed in range(repeat)]
    beyond = med([r.beyond_answers for r in runs])
    report.target("ledger bytes per image beyond the raw answer text (grounding)",
                  f"{beyond:,.0f} B", "<= 2 KB", beyond <= 2048)
    report.details += ["### Ledger size (bench/ledger_size.py)", "",
                       *ledger_size.report("image_grounding", runs)]


def throughput_part(report: Report, repeat: int, quick: bool) -> None:
    import throughput

    lines = ["### Throughput against the bare loop (bench/throughput.py)", "",
             "2,000 images (4,000 requests), simulator latency 100 ms in its own process; each "
             "run of ours and of the bare loop against a fresh simulator. Ratios are per run "
             "(ours / the bare loop run right after it).", "",
             "| workers | ours req/s | bare req/s | ours / bare: median (min) "
             "| ours CPU ms/req | bare CPU ms/req | overhead ms/req | cores busy | load |",
             "|---|---|---|---|---|---|---|---|---|"]
    for workers in (8, 32, 64):
        rows = [throughput.measure(workers) for _ in range(repeat)]
        ratio = med([r.ratio for r in rows])
        overhead = med([r.overhead_ms for r in rows])
        report.target(f"throughput at {workers} workers / the bare loop (min of the runs)",
                      f"{ratio:.3f} ({min(r.ratio for r in rows):.3f})", ">= 0.97",
                      ratio >= 0.97)
        report.target(f"CPU overhead per request at {workers} workers", f"{overhead:.2f} ms",
                      "<= 1 ms", overhead <= 1.0)
        lines.append(
            f"| {workers} | {med([r.ours_rate for r in rows]):.1f} "
            f"| {med([r.bare_rate for r in rows]):.1f} | {ratio:.3f} "
            f"({min(r.ratio for r in rows):.3f}) | {med([r.ours_cpu_ms for r in rows]):.2f} "
            f"| {med([r.bare_cpu_ms for r in rows]):.2f} | {overhead:.2f} "
            f"| {med([r.busy for r in rows]):.2f} | {', '.join(r.load for r in rows)} |")
    report.details += [*lines, ""]


def launch_part(report: Report, repeat: int, quick: bool) -> None:
    import launch

    results = [launch.measure(5 if quick else 7) for _ in range(repeat)]
    ratio = med([r.ratio for r in results])
    report.target("launch -> first request / a bare script", f"{ratio:.2f} "
                  f"({med([r.ours_s for r in results]) * 1000:.0f} ms / "
                  f"{med([r.bare_s for r in results]) * 1000:.0f} ms)", "<= 1.2", ratio <= 1.2)
    report.details += [
        "### Launch -> first request (bench/launch.py)", "",
        "| ours ms | bare ms | ratio | ours: first contact (GET /models) ms "
        "| ours whole process ms | bare whole process ms | load |",
        "|---|---|---|---|---|---|---|",
        *[f"| {r.ours_s * 1000:.0f} | {r.bare_s * 1000:.0f} | {r.ratio:.2f} "
          f"| {r.contact_s * 1000:.0f} | {r.ours_total_s * 1000:.0f} "
          f"| {r.bare_total_s * 1000:.0f} | {r.load} |" for r in results], ""]


def ratelimit_part(report: Report, repeat: int, quick: bool) -> None:
    import ratelimit

    lines = ["### An endpoint limited to 600 requests per minute (bench/ratelimit.py)", "",
             "A sliding window (the simulator's), 16 workers, latency 100±50 ms; "
             + ("quick: 100 per 10 s for 50 s." if quick else "5 minutes."), "",
             "| workflow.rpm | accepted / what the limit allows | 429s | 429s after the first "
             "window | accepted/429s per window | load |", "|---|---|---|---|---|---|"]
    for setting in (None, 600):
        results = [ratelimit.measure(setting, quick) for _ in range(repeat)]
        ratio = med([r.ratio for r in results])
        late = max(r.limited_after_first for r in results)
        name = "unset" if setting is None else str(setting)
        report.target(f"600 requests/minute, workflow.rpm {name}: share of the limit; 429s "
                      "after the first window (max of the runs)", f"{ratio:.3f}; {late}",
                      ">= 0.95; 0", ratio >= 0.95 and late == 0)
        for r in results:
            windows = ", ".join(f"{a}/{b}" for a, b in r.per_window)
            lines.append(f"| {name} | {r.accepted} / {r.allowed:.0f} = {r.ratio:.3f} "
                         f"| {r.limited} | {r.limited_after_first} | {windows} | {r.load} |")
    report.details += [*lines, ""]


def scale_part(report: Report, repeat: int, quick: bool) -> None:
    import scale

    small, big = (1000, 5000) if quick else (2000, 20000)
    rounds = {n: [scale.measure(n) for _ in range(repeat)] for n in (small, big)}

    def m(n: int, get: Callable[[Any], float]) -> float:
        return med([get(s) for s in rounds[n]])

    rss_small = m(small, lambda s: s.ours.fresh.rss_mb)
    rss_big = m(big, lambda s: s.ours.fresh.rss_mb)
    report.target(f"peak RSS of a {big // 1000}k-image run / a {small // 1000}k-image run",
                  f"{rss_big:.0f} MB / {rss_small:.0f} MB = {rss_big / rss_small:.2f}",
                  "flat (about 1)", rss_big / rss_small <= 1.25)
    lines = ["### Memory with the run's size, and the naive baseline (bench/scale.py)", "",
             "Fresh runs, then a rerun after 1% more input lines, then the export; simulator "
             "latency 100 ms, 32 workers; each program in its own process. The naive baseline "
             "is the reference implementation's approach (bench/naive_run.py: a thread pool, "
             "`chat.completions.create`, one JSON checkpoint file per image per step, merged "
             "at the end; no retries, no ledger).", "",
             "| images | program | fresh: s, req/s, peak MB | resume: first new request s, "
             "whole s, peak MB | export: s, peak MB |", "|---|---|---|---|---|"]
    for n in (small, big):
        for name in ("ours", "naive"):
            def side(s: Any, name: str = name) -> Any:
                return getattr(s, name)
            lines.append(
                f"| {n} | {name} | {m(n, lambda s: side(s).fresh.seconds):.1f}, "
                f"{m(n, lambda s: side(s).fresh.rate):.0f}, "
                f"{m(n, lambda s: side(s).fresh.rss_mb):.0f} "
                f"| {m(n, lambda s: side(s).resume.first_request_s or 0):.2f}, "
                f"{m(n, lambda s: side(s).resume.seconds):.1f}, "
                f"{m(n, lambda s: side(s).resume.rss_mb):.0f} "
                f"| {m(n, lambda s: side(s).export.seconds):.2f}, "
                f"{m(n, lambda s: side(s).export.rss_mb):.0f} |")
    loads = ", ".join(s.load for n in rounds for s in rounds[n])
    report.details += [*lines, "", f"Load during these runs: {loads}.", ""]


TARGETS = {
    "resume": [("100k/1M images, 99% done: start -> first new request", "<= 2 s / <= 10 s"),
               ("peak RSS of that rerun", "<= 150 MB / <= 300 MB"),
               ("an unchanged rerun: events appended", "a handful"),
               ("`status` at 100k / `export` of 1M events", "<= 1 s / <= 10 s")],
    "ledger": [("ledger bytes per image beyond the raw answer text", "<= 2 KB")],
    "throughput": [("throughput at 8, 32, 64 workers / the bare loop", ">= 0.97"),
                   ("CPU overhead per request", "<= 1 ms")],
    "launch": [("launch -> first request / a bare script", "<= 1.2")],
    "ratelimit": [("600 requests/minute: share of the limit over 5 minutes; 429s after the "
                   "start", ">= 0.95; 0")],
    "scale": [("peak RSS of a 20k-image run / a 2k-image run", "flat")],
}
BODIES = {"resume": resume_part, "ledger": ledger_part, "throughput": throughput_part,
          "launch": launch_part, "ratelimit": ratelimit_part, "scale": scale_part}


RESULTS = WORK / "run_results"
"""one JSON file per part, so that parts run apart (or at the same time) fill one section"""


def save(part: str, report: Report, started: str, args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{part}.json").write_text(json.dumps({
        "date": datetime.date.today().isoformat(), "quick": args.quick, "repeat": args.repeat,
        "load": f"{started}-{load()}", "targets": report.targets, "details": report.details}))


def write() -> str:
    """The section from every part's latest results, in PARTS order."""
    saved = {p: json.loads((RESULTS / f"{p}.json").read_text()) for p in PARTS
             if (RESULTS / f"{p}.json").exists()}
    rows = [row for p in PARTS if p in saved for row in saved[p]["targets"]]
    rows += [f"| {figure} | pending (not run) | {target} | pending |"
             for p in PARTS if p not in saved for figure, target in TARGETS[p]]
    runs = "; ".join(f"{p} {s['date']}{' --quick' if s['quick'] else ''}, median of "
                     f"{s['repeat']}, load {s['load']}" for p, s in saved.items())
    section = [
        BEGIN,
        f"Measured by `python bench/run.py` on {machine()}. Each figure is the median of its "
        "runs; other work shares the 2 cores, so the load average (1 minute, before-after) is "
        f"given with each part: {runs}.", "",
        "| figure | measured | target | |", "|---|---|---|---|", *rows, "",
        *[line for p in PARTS if p in saved for line in saved[p]["details"]], END]
    text = "\n".join(section)
    path = ROOT / "BENCHMARKS.md"
    current = path.read_text(encoding="utf-8")
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        current = head + text + rest.split(END, 1)[1]
    else:
        current = current.rstrip("\n") + f"\n\n{HEADING}\n\n{text}\n"
    path.write_text(current, encoding="utf-8")
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--write-only", action="store_true",
                        help="write the section from the results saved, measure nothing")
    args = parser.parse_args()
    for part in PARTS if not args.write_only else ():
        if part not in args.only:
            continue
        print(f"-- {part}", flush=True)
        started = load()
        report = Report()
        _try(report, part, TARGETS[part],
             lambda part=part, report=report: BODIES[part](report, args.repeat, args.quick))
        save(part, report, started, args)
        write()
    print(write())
    print(f"\nwritten to {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
