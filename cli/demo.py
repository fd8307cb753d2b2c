"""The demo: generated scenes, the VLM simulator, and the pipelines end to end through the real SDK.

Nothing here reaches the network beyond 127.0.0.1. The simulator is a test double that answers from
the pixels of the scenes it generated; it is not a backend for real data.
"""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from auto_label.api import ProgressSink, RunSummary, generate, load_spec
from auto_label.cli.hints import not_ok_reasons
from auto_label.evaluate import EvalReport, evaluate

DEMO_KEY = "demo-key-not-secret"


@dataclass(frozen=True)
class DemoResult:
    pipeline: str
    spec: Path
    summary: RunSummary
    match: EvalReport
    truth: Path


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
              coordinates: xyxy_pixel   # how the simulator answers (no profile knows it)
              temperature: 0.0
              max_tokens: 2048
              timeout: 10
          workflow:
            steps: ["0", "1"]
            max_workers: 8
            retries:
              backoff_base: 0.1
              backoff_max: 2
              parse_retries: 3  # the simulator's injected junk, 3%: four in a row ~1 in 10^6
          data:
            input_jsonl: {data / "input.jsonl"}
            image_root: {data}
        """))


def _referring_spec(path: Path, results: Path, data: Path, base_url: str) -> None:
    path.write_text(textwrap.dedent(f"""\
        # Written by `auto_label demo`: the Gemini protocol of the simulator the demo started
        # (random port), through the real google-genai SDK. Works only while a demo runs.
        results_dir: {results}
        autolabel_type: image_referring_expression
        image_referring_expression:
          vlm:
            backend: gemini
            gemini:
              base_url: {base_url}
              api_key: {DEMO_KEY}
              model: gemini-3.1-flash-lite-preview
              media_resolution: MEDIA_RESOLUTION_HIGH
              timeout: 10
          workflow:
            steps: ["0", "1", "2", "3"]
            max_workers: 8
            output_format: both
            retries:
              backoff_base: 0.1
              backoff_max: 2
              parse_retries: 3  # the simulator's injected junk, 3%: four in a row ~1 in 10^6
          data:
            image_dir: {data / "images"}
            kitti_label_dir: {data / "labels"}
        """))


def run_demo(directory: Path, *, images: int = 12,
             progress: Callable[[], ProgressSink] | None = None,
             console_print: Callable[[str], None] = print,
             command: str = "auto_label") -> list[DemoResult]:
    """Run the demo in `directory`; returns what each pipeline produced and how it scored. The
    closing hints name `command` (the command the demo was started with) and say which steps
    failed in a run that is not ok (`DemoResult.summary.ok`)."""
    from auto_label.sim import (
        SimConfig,
        Simulator,
        write_grounding_dataset,
        write_referring_dataset,
    )

    directory = Path(directory).resolve()
    results: list[DemoResult] = []
    config = SimConfig(seed=7, latency_mean=0.05, latency_jitter=0.03, retry_after=0.2,
                       api_key=DEMO_KEY, group_noise=0.3,
                       faults={"rate_limit": 0.05, "server_error": 0.03, "malformed": 0.03})
    with Simulator(config) as sim:
        console_print(f"VLM simulator listening at {sim.base_url} (OpenAI and Gemini protocols)")
        data = directory / "image_grounding_data"
        dataset = write_grounding_dataset(data, images, seed=7, image_format="mixed")
        spec_path = directory / "image_grounding.yaml"
        results_dir = directory / "results" / "image_grounding"
        _grounding_spec(spec_path, results_dir, data, sim.openai_base_url)
        console_print(f"image_grounding: {len(dataset)} scenes in {data}, spec {spec_path}")
        summary = generate(load_spec(spec_path), progress=progress() if progress else None)
        results.append(DemoResult("image_grounding", spec_path, summary,
                                  evaluate(results_dir, dataset.ground_truth_path),
                                  dataset.ground_truth_path))

        data = directory / "image_referring_expression_data"
        referring = write_referring_dataset(data, images, seed=8, image_format="mixed")
        spec_path = directory / "image_referring_expression.yaml"
        results_dir = directory / "results" / "image_referring_expression"
        _referring_spec(spec_path, results_dir, data, sim.gemini_base_url)
        console_print(f"image_referring_expression: {len(referring)} scenes with KITTI labels in "
                      f"{data}, spec {spec_path}")
        summary = generate(load_spec(spec_path), progress=progress() if progress else None)
        results.append(DemoResult("image_referring_expression", spec_path, summary,
                                  evaluate(results_dir, referring.ground_truth_path),
                                  referring.ground_truth_path))
    for result in results:
        console_print(_describe(result, command))
        for reason in not_ok_reasons(result.summary):
            console_print(f"  NOT OK: {reason}")
        for example in result.summary.examples[:1] if not result.summary.ok else []:
            console_print(f"  e.g. {example}")
    console_print(f"What a ledger holds: {command} status {shlex.quote(str(results_dir))} "
                  "--check")
    return results


def _describe(result: DemoResult, command: str) -> str:
    summary, m = result.summary, result.match
    head = f"{result.pipeline}: {summary.records} records in {summary.outputs[0]}"
    tail = (f"{summary.requests} requests (injected 429s, 500s and junk answers were retried)"
            if summary.requests else "no request: every step was already in the ledger")
    score = (f"  scored with: {command} eval {shlex.quote(str(m.results_dir))} --truth "
             f"{shlex.quote(str(result.truth))}")
    if m.grounding is not None:
        g = m.grounding
        correct = sum(o.top_iou >= 0.5 for o in g.outcomes)
        return (f"{head}\n  {correct} of {g.phrases} ground-truth phrases grounded (Acc@0.5 "
                f"{g.accuracy(0.5):.3f}, mean IoU {g.mean_iou:.3f}); {tail}\n{score}")
    r = m.referring
    assert r is not None
    legacy = [p for p in summary.outputs if p.is_dir()]
    where = f"; legacy files in {legacy[0].parent}" if legacy else ""
    return (f"{head}\n  {r.described} of {r.objects} regions described with the right colour "
            f"and type; {r.correct} of {r.judged} expressions on the boxes their words name"
            f"{where}; {tail}\n{score}")
