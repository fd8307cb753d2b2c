"""Command line of the VLM SIMULATOR (for tests and demos; it is not a backend for real data).

    python -m auto_label.sim serve [--port N] [--latency 0.1] [--fault rate_limit=0.1 ...]
                                   [--rpm N] [--api-key K] [--seed S]
                                   [--convention-openai xyxy_pixel|xyxy_1000|yxyx_1000]
                                   [--convention-gemini ...] [--exif apply|ignore]
                                   [--model-frame sent|qwen2.5_smart_resize]
                                   [--min-pixels 3136] [--max-pixels 12845056]
                                   [--resize-factor 28]
                                   [--served-model NAME ...] [--answer-style plain|...]
                                   [--quota-retry-delay 3.0]
                                   [--batch-delay 0] [--batch-expire 0] [--batch-errors 0]
    python -m auto_label.sim scenes DIR -n 20 [--kind grounding|referring] [--seed S]
                                   [--format png|jpg|mixed]

A Qwen2.5-VL behind vLLM started with a lower max_pixels, for instance:
    python -m auto_label.sim serve --model-frame qwen2.5_smart_resize --max-pixels 1003520
and a Qwen3-VL (relative 0-1000 boxes): --convention-openai xyxy_1000.

Real endpoints (sources in catalog.py, quotas.py, styles.py):
    --served-model NAME    (repeatable; default: none, any model name is accepted) the models
                           GET /v1/models lists; a request for another gets vLLM's 404 ("The
                           model `x` does not exist.") or Google's 404 NOT_FOUND
    --answer-style STYLE   (default plain) plain, content_parts (Magistral's content list),
                           reasoning_only / reasoning_cut (vLLM's reasoning fields, content
                           null), python_literal, gemini_native (box_2d + label),
                           label_variants, explicit_empty
    --quota-retry-delay S  (default 3.0) the wait the fault quota_minute announces, in Gemini's
                           RetryInfo and OpenAI's x-ratelimit-reset-requests; with
                           --fault quota_minute=RATE and --fault quota_day=RATE (1.0: always)

A vLLM serving one thinking model that spends its whole token budget thinking:
    python -m auto_label.sim serve --served-model qwen3-vl-thinking --answer-style reasoning_cut
and a Gemini free tier out of its per-minute quota on every request:
    python -m auto_label.sim serve --fault quota_minute=1.0 --quota-retry-delay 19

Batch APIs (OpenAI's Batch API, Gemini's Batch Mode; sources in batch_openai.py, batch_gemini.py):
    --batch-delay S        (default 0) seconds a job stays pending, then running, before it ends
    --batch-expire RATE    (default 0) rate of jobs that expire instead of completing
    --batch-errors RATE    (default 0) rate of requests inside a job answered with an error
for instance jobs that take a minute and one request in ten failing:
    python -m auto_label.sim serve --batch-delay 60 --batch-errors 0.1
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .boxes import CONVENTIONS
from .datasets import write_grounding_dataset, write_referring_dataset
from .faults import ANSWER_STYLES, FAULT_KINDS, SimConfig
from .frames import EXIF_MODES, MODEL_FRAMES
from .server import Simulator


def _fault(text: str) -> tuple[str, float]:
    kind, sep, rate = text.partition("=")
    if not sep or kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(f"expected KIND=RATE with KIND in {FAULT_KINDS}")
    try:
        return kind, float(rate)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad rate {rate!r}") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m auto_label.sim",
        description="A SIMULATED vision-language model for tests and demos (not for real data).")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the OpenAI and Gemini protocols on 127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    serve.add_argument("--latency", type=float, default=0.0, help="mean latency, seconds")
    serve.add_argument("--jitter", type=float, default=0.0, help="latency jitter, seconds")
    serve.add_argument("--fault", type=_fault, action="append", default=[],
                       metavar="KIND=RATE", help=f"fault rate; KIND in {', '.join(FAULT_KINDS)}")
    serve.add_argument("--rpm", type=int, default=None, help="requests per minute limit")
    serve.add_argument("--api-key", default=None, help="require this API key")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--convention-openai", "--openai-convention", dest="openai_convention",
                       choices=CONVENTIONS, default="xyxy_pixel",
                       help="box convention of OpenAI-protocol answers (Qwen3-VL: xyxy_1000)")
    serve.add_argument("--convention-gemini", "--gemini-convention", dest="gemini_convention",
                       choices=CONVENTIONS, default="yxyx_1000",
                       help="box convention of Gemini answers")
    serve.add_argument("--exif", choices=EXIF_MODES, default="apply",
                       help="apply the EXIF orientation of received images (as vLLM) or not")
    serve.add_argument("--model-frame", choices=MODEL_FRAMES, default="sent",
                       help="frame of pixel boxes: the image as sent, or as Qwen2.5-VL resizes it")
    serve.add_argument("--min-pixels", type=int, default=3136,
                       help="smart_resize min_pixels (qwen2.5_smart_resize frame)")
    serve.add_argument("--max-pixels", type=int, default=12845056,
                       help="smart_resize max_pixels (qwen2.5_smart_resize frame)")
    serve.add_argument("--resize-factor", type=int, default=28,
                       help="smart_resize factor: patch size x merge size")
    serve.add_argument("--served-model", dest="served_models", action="append", default=[],
                       metavar="NAME", help="a served model name (repeatable; none: any name)")
    serve.add_argument("--answer-style", choices=ANSWER_STYLES, default="plain",
                       help="the shape of answers, as a kind of real server or model gives them")
    serve.add_argument("--quota-retry-delay", type=float, default=3.0,
                       help="seconds a quota_minute fault tells the client to wait")
    serve.add_argument("--batch-delay", type=float, default=0.0,
                       help="seconds a batch job stays pending, then running, before it ends")
    serve.add_argument("--batch-expire", type=float, default=0.0,
                       help="rate of batch jobs that expire instead of completing")
    serve.add_argument("--batch-errors", type=float, default=0.0,
                       help="rate of requests inside a batch job answered with an error")
    serve.add_argument("--hang-seconds", type=float, default=30.0)
    serve.add_argument("--group-noise", type=float, default=0.0)
    serve.add_argument("--extra-box", type=float, default=0.0)
    serve.add_argument("--fences", type=float, default=0.0,
                       help="rate of JSON answers wrapped in a markdown code fence")
    scenes = sub.add_parser("scenes", help="write a synthetic dataset with ground truth")
    scenes.add_argument("directory")
    scenes.add_argument("-n", type=int, default=20, help="number of images")
    scenes.add_argument("--kind", choices=("grounding", "referring"), default="grounding")
    scenes.add_argument("--seed", type=int, default=0)
    scenes.add_argument("--format", choices=("png", "jpg", "mixed"), default="png")
    scenes.add_argument("--force", action="store_true",
                        help="replace the dataset files already in DIR (input.jsonl, "
                             "ground_truth.jsonl, images/scene_*, labels/scene_*)")
    return parser


def _config(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        seed=args.seed, convention_openai=args.openai_convention,
        convention_gemini=args.gemini_convention, latency_mean=args.latency,
        latency_jitter=args.jitter, faults=dict(args.fault), rpm=args.rpm, api_key=args.api_key,
        hang_seconds=args.hang_seconds, group_noise=args.group_noise, extra_box=args.extra_box,
        fences=args.fences, exif=args.exif, model_frame=args.model_frame,
        min_pixels=args.min_pixels, max_pixels=args.max_pixels, resize_factor=args.resize_factor,
        served_models=tuple(args.served_models), answer_style=args.answer_style,
        quota_retry_delay=args.quota_retry_delay, batch_delay=args.batch_delay,
        batch_expire=args.batch_expire, batch_errors=args.batch_errors)


def _serve(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    sim = Simulator(config, port=args.port).start()
    print("auto-label VLM simulator (synthetic scenes only; not a real model)")
    print(f"OPENAI_BASE_URL={sim.openai_base_url}")
    print(f"GEMINI_BASE_URL={sim.gemini_base_url}")
    print("Ctrl-C to stop", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _scenes(args: argparse.Namespace) -> int:
    root = Path(args.directory)
    taken = [name for name in ("input.jsonl", "ground_truth.jsonl") if (root / name).exists()]
    if taken and not args.force:
        print(f"error: {root} already holds {', '.join(taken)}: writing scenes there replaces "
              "them (and its scene_* images and labels); use --force, or another directory",
              file=sys.stderr)
        return 2
    writer = write_grounding_dataset if args.kind == "grounding" else write_referring_dataset
    dataset = writer(args.directory, args.n, args.seed, image_format=args.format)
    print(f"wrote {len(dataset)} {args.kind} scenes to {dataset.root}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _scenes(args)


if __name__ == "__main__":
    sys.exit(main())
