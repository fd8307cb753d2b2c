"""What the speed benchmarks share: the simulator in its own process, specs, CPU clocks, the
machine's name, the load, medians. Large files go under /tmp/bench_speed (the disk is shared).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORK = Path("/tmp/bench_speed")
PYTHON = sys.executable
CODE = Path(os.environ.get("BENCH_CODE") or ROOT)
"""the source tree whose auto_label the benchmarks run (BENCH_CODE: e.g. an unpacked
`git archive` of an older commit, to measure before and after; run the bench scripts with
PYTHONPATH=$BENCH_CODE too, so that what they import in-process comes from it)"""


def auto_label(*args: str) -> tuple[list[str], dict[str, str], Path]:
    """(argv, env, cwd) of `python -m auto_label ARGS` from CODE, with bytecode caching on (as
    users run it: PYTHONDONTWRITEBYTECODE unset)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if CODE != ROOT:
        env["PYTHONPATH"] = str(CODE)
    return [PYTHON, "-m", "auto_label", *args], env, CODE  # -m: the cwd comes first on sys.path


def cpu_seconds() -> float:
    """User + system CPU this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    """User + system CPU of the children this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def load() -> str:
    """The 1-minute load average, to say how busy the machine was while measuring."""
    return f"{os.getloadavg()[0]:.2f}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


class SimProcess:
    """`python -m auto_label.sim serve ARGS` in its own process (its CPU is not ours); `command`
    another command that prints the same OPENAI_BASE_URL line."""

    def __init__(self, *args: str, command: Sequence[str] | None = None) -> None:
        command = list(command or [PYTHON, "-m", "auto_label.sim", "serve", *args])
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = ""
        for line in self.proc.stdout:
            if line.startswith("OPENAI_BASE_URL="):
                self.base_url = line.strip().split("=", 1)[1]
                break
        if not self.base_url:
            raise RuntimeError("the simulator did not start")
        self.root = self.base_url.removesuffix("/v1")

    def cpu_seconds(self) -> float:
        """User + system CPU the simulator process has used so far (Linux)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stats(self) -> dict[str, Any]:
        """GET /_sim/stats: every request the simulator saw, with its time (time.time())."""
        with urllib.request.urlopen(f"{self.root}/_sim/stats", timeout=30) as reply:
            return json.loads(reply.read())  # type: ignore[no-any-return]

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.root}/_sim/reset", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def overrides(results: Path, data: Path, base_url: str, workers: int,
              *extra: str) -> list[str]:
    """The overrides of a grounding run on `data` (a simulator dataset) against `base_url`."""
    return [
        f"results_dir={results}", "autolabel_type=image_grounding",
        "image_grounding.vlm.backend=openai", f"image_grounding.vlm.openai.base_url={base_url}",
        "image_grounding.vlm.openai.model_name=sim",
        "image_grounding.vlm.openai.coordinates=xyxy_pixel",
        f"image_grounding.workflow.max_workers={workers}",
        f"image_grounding.data.input_jsonl={data / 'input.jsonl'}",
        f"image_grounding.data.image_root={data}",
        *extra,
    ]


def write_spec(path: Path, results: Path, data: Path, base_url: str, workers: int,
               workflow: dict[str, Any] | None = None) -> Path:
    """A spec file for `auto_label generate -e` (same run as `overrides`)."""
    spec = {
        "results_dir": str(results),
        "autolabel_type": "image_grounding",
        "image_grounding": {
            "vlm": {"backend": "openai", "openai": {
                "base_url": base_url, "model_name": "sim", "coordinates": "xyxy_pixel"}},
            "workflow": {"max_workers": workers, **(workflow or {})},
            "data": {"input_jsonl": str(data / "input.jsonl"), "image_root": str(data)},
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return path


def peak_rss_mb(command: Sequence[str], **kwargs: Any) -> tuple[float, float, int]:
    """Run `command`; (wall seconds, peak RSS in MB, exit code).

    Through /usr/bin/time: Linux counts the RSS a child had before its exec (a copy of ours)
    in its ru_maxrss, so wait4 on a child of a large process reports at least that process's
    size. GNU time's own child starts from time's few MB."""
    import tempfile
    import time

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        started = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", report.name, *command],
                                **kwargs)
        status = proc.wait()
        seconds = time.perf_counter() - started
        kilobytes = int(Path(report.name).read_text().split()[-1])
    return seconds, kilobytes / 1024, status
