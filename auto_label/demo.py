"""The demo: generated scenes, the VLM simulator, and the pipelines end to end through the real SDK.

Nothing here reaches the network beyond 127.0.0.1. The simulator is a test double that answers from
the pixels of the scenes it generated; it is not a backend for real data.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from auto_label.api import generate
from auto_label.evaluate import MatchReport, match_ground_truth, read_jsonl
from auto_label.pipelines.progress import ProgressSink, RunSummary
from auto_label.spec_loader import load_spec

DEMO_KEY = "demo-key-not-secret"


@dataclass(frozen=True)
class DemoResult:
    pipeline: str
    spec: Path
    summary: RunSummary
    match: MatchReport


def _grounding_spec(path: Path, results: Path, data: Path, base_url: str) -> None:
    path.write_text(textwrap.dedent(f"""\
        # Written by `auto_label demo`. The base_url points at the simulator the demo started on a
        # random port, so this spec works only while a demo runs; copy it for your own endpoint.
        results_dir: {results}
        autolabel_type: image_grounding
        image_grounding:
          vlm:
            backend: openai
            openai:
              base_url: {base_url}
              api_key: {DEMO_KEY}
              model_name: simulated-vlm
              temperature: 0.0
              max_tokens: 2048
              timeout: 10
          workflow:
            steps: ["0", "1"]
            max_workers: 8
            retries:
              backoff_base: 0.1
              backoff_max: 2
          data:
            input_jsonl: {data / "input.jsonl"}
            image_root: {data}
        """))


def run_demo(directory: Path, *, images: int = 12,
             progress: Callable[[], ProgressSink] | None = None,
             console_print: Callable[[str], None] = print) -> list[DemoResult]:
    """Run the demo in `directory`; returns what each pipeline produced and how it scored."""
    from auto_label.sim import SimConfig, Simulator, write_grounding_dataset

    directory = Path(directory).resolve()
    results: list[DemoResult] = []
    config = SimConfig(seed=7, latency_mean=0.05, latency_jitter=0.03, retry_after=0.2,
                       api_key=DEMO_KEY,
                       faults={"rate_limit": 0.05, "server_error": 0.03, "malformed": 0.03})
    with Simulator(config) as sim:
        console_print(f"VLM simulator listening at {sim.openai_base_url} (OpenAI protocol)")
        data = directory / "image_grounding_data"
        dataset = write_grounding_dataset(data, images, seed=7, image_format="mixed")
        spec_path = directory / "image_grounding.yaml"
        results_dir = directory / "results" / "image_grounding"
        _grounding_spec(spec_path, results_dir, data, sim.openai_base_url)
        console_print(f"image_grounding: {len(dataset)} scenes in {data}, spec {spec_path}")
        summary = generate(load_spec(spec_path), progress=progress() if progress else None)
        match = match_ground_truth(read_jsonl(results_dir / "annotations.jsonl"),
                                   read_jsonl(dataset.ground_truth_path))
        results.append(DemoResult("image_grounding", spec_path, summary, match))
    for result in results:
        m = result.match
        console_print(
            f"{result.pipeline}: {result.summary.records} records in "
            f"{result.summary.outputs[0]}\n  {m.matched} of {m.truth} ground-truth boxes found "
            f"(IoU >= 0.5), {m.predicted} boxes predicted, {result.summary.requests} requests "
            f"(faults injected: 429, 500, junk answers; all retried)"
        )
    return results
