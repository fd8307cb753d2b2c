"""Build a big results_dir quickly: tiny real images, their input JSONL, and a ledger that holds
what a real `generate` would have written for most of them (run by hand, or imported).

    .venv/bin/python bench/build_ledger.py --images 100000 --done 0.99 --out /tmp/bench_x

    from build_ledger import build            # with bench/ on sys.path
    built = build(results_dir, data_dir, images=100_000, done=0.99)
    spec = load_spec(None, built.overrides(sim.openai_base_url))

Every image is a 16x16 PNG of its own (the simulator's background, one coloured square or
rectangle, and the image's number written as one-level changes of background pixels, which the
simulator does not see), listed in `data_dir/input.jsonl` with a caption naming its shape. The
ledger is written through the ledger API as a run writes it (`RunSession`, `Ledger.append` in
batches): `run_started`; per done image the seed `seeding.seed_image` makes of the file (its real
sha256 and stat), then each step run by the engine's own `StepExecutor` (so the requests, prompt
templates, responses and completions have exactly the shape a run gives them: prompts from the
step's `build`, outputs from its parser) under the fingerprints `planning.fingerprint` /
`completion_fingerprint` compute with the settings of `spec_overrides`; then `run_finished`. So a
real `generate` with `built.overrides(base_url)` reuses every done image and asks only for the
others (`tests/test_build_ledger.py`).

The executor's backend is the real openai backend against an in-process simulator, asked once per
kind of picture and prompt (colour, shape, place, caption: 432 kinds) and answering again from what
it said for every other image of that kind (the simulator answers from the pixels it sees, and the
number pixels are invisible to it). Undone images (`1 - done` of them, spread by `seed`) are
listed and written, never seeded: to a rerun they are new images. Only image_grounding is built.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from hashlib import sha256
from pathlib import Path
from typing import Any, cast

from auto_label.backends.base import Backend, VLMRequest, VLMResponse
from auto_label.backends.registry import create_backend
from auto_label.ledger.events import Event
from auto_label.ledger.writer import LedgerWriter
from auto_label.pipelines.contract import ImageInput, StepInput, StepOutput
from auto_label.pipelines.engine.execute import Completed, StepExecutor, StepJob
from auto_label.pipelines.engine.planning import (
    ImageFacts,
    Settings,
    completion_fingerprint,
    fingerprint,
)
from auto_label.pipelines.engine.seeding import seed_image
from auto_label.pipelines.engine.session import RunSession
from auto_label.pipelines.inputs import resolve_image_path
from auto_label.sim import SimConfig, Simulator
from auto_label.sim.language import BACKGROUND, PALETTE
from auto_label.spec import Spec
from auto_label.spec_loader import load_spec

SIDE = 16
MODEL = "sim"
PER_FOLDER = 1000
"""images per sub-folder of data_dir/images"""
SHAPES = {"square": (6, 6), "rectangle": (9, 5)}
CAPTIONS = ("In the image we can see a {color} {shape}.",
            "There is a {color} {shape} on a plain background.",
            "A {color} {shape} in the picture.")


def spec_overrides(results_dir: Path, data_dir: Path, base_url: str, *extra: str,
                   model: str = MODEL) -> list[str]:
    """The spec overrides of a generate run over this dataset (the build's fingerprints use the
    same settings): image_grounding, openai backend, `model` in xyxy_pixel, the simulator at
    `base_url`; the same settings as `common.write_spec`."""
    return [
        f"results_dir={results_dir}",
        "autolabel_type=image_grounding",
        "image_grounding.vlm.backend=openai",
        f"image_grounding.vlm.openai.base_url={base_url}",
        "image_grounding.vlm.openai.api_key=EMPTY",
        f"image_grounding.vlm.openai.model_name={model}",
        "image_grounding.vlm.openai.coordinates=xyxy_pixel",
        "image_grounding.vlm.openai.timeout=30",
        f"image_grounding.data.input_jsonl={data_dir / 'input.jsonl'}",
        f"image_grounding.data.image_root={data_dir}",
        *extra,
    ]


@dataclass(frozen=True)
class BuiltLedger:
    """What `build` made."""

    results_dir: Path
    data_dir: Path
    images: int
    """listed in data_dir/input.jsonl"""
    done: int
    """images whose steps the ledger holds"""
    undone: list[str] = field(repr=False)
    """the image ids left for a rerun (listed, written, never seeded)"""
    events: int
    seconds: float
    model: str = MODEL

    @property
    def input_jsonl(self) -> Path:
        return self.data_dir / "input.jsonl"

    def overrides(self, base_url: str, *extra: str) -> list[str]:
        """Spec overrides of a `generate` that reuses every done image (see `spec_overrides`)."""
        return spec_overrides(self.results_dir, self.data_dir, base_url, *extra,
                              model=self.model)


# -- images ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """What the simulator sees of a picture (its answers depend on nothing else)."""

    color: str
    shape: str
    x: int
    y: int
    caption: int


def kind_of(index: int, seed: int) -> Kind:
    """The picture of image `index`: a pure function of (index, seed)."""
    h = int.from_bytes(sha256(f"{seed}:{index}".encode()).digest()[:8], "big")
    colors = list(PALETTE)
    shape = "square" if h & 1 else "rectangle"
    h >>= 1
    color = colors[h % len(colors)]
    h //= len(colors)
    x, y = 1 + 2 * (h % 3), 1 + 3 * (h // 3 % 3)  # 9 places, inside for either shape
    return Kind(color, shape, x, y, h // 9 % len(CAPTIONS))


def png_bytes(index: int, kind: Kind) -> bytes:
    """A 16x16 RGB PNG: background, the kind's shape, and `index` in the first and last rows
    (bit set: red channel one level darker, which the simulator reads as background)."""
    w, h = SHAPES[kind.shape]
    background = bytes(BACKGROUND)
    darker = bytes((BACKGROUND[0] - 1, BACKGROUND[1], BACKGROUND[2]))
    fill = bytes(PALETTE[kind.color])
    rows = []
    for row in range(SIDE):
        if row in (0, SIDE - 1):
            base = 0 if row == 0 else SIDE
            pixels = b"".join(darker if index >> (base + col) & 1 else background
                              for col in range(SIDE))
        elif kind.y <= row < kind.y + h:
            pixels = background * kind.x + fill * w + background * (SIDE - kind.x - w)
        else:
            pixels = background * SIDE
        rows.append(b"\x00" + pixels)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(
            ">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b""))


def image_name(index: int) -> str:
    """The image's path under data_dir (its id is the file's stem)."""
    return f"images/{index // PER_FOLDER:04d}/img_{index:08d}.png"


def write_dataset(data_dir: Path, images: int, seed: int) -> None:
    """Write every image (skipping files already there with the same size) and input.jsonl."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "input.jsonl").open("w", encoding="utf-8") as listing:
        for index in range(images):
            kind = kind_of(index, seed)
            name = image_name(index)
            path = data_dir / name
            data = png_bytes(index, kind)
            if index % PER_FOLDER == 0:
                path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.stat().st_size != len(data):
                path.write_bytes(data)
            caption = CAPTIONS[kind.caption].format(color=kind.color, shape=kind.shape)
            listing.write(json.dumps({"image_path": name, "caption": caption}) + "\n")


def image_input(index: int, seed: int, data_dir: Path) -> ImageInput:
    """Image `index` as the pipeline's reader lists it from input.jsonl."""
    kind = kind_of(index, seed)
    name = image_name(index)
    path = resolve_image_path(name, str(data_dir))
    return ImageInput(image_id=Path(name).stem, path=path, image_path=str(path),
                      caption=CAPTIONS[kind.caption].format(color=kind.color, shape=kind.shape),
                      source=f"{data_dir / 'input.jsonl'}:{index + 1}")


# -- answers and events -----------------------------------------------------------------------

class Canned:
    """The backend a run would use, asking the simulator once per kind of picture and prompt
    and answering again from what it said (a fresh response id each time). Set `kind` before
    each image."""

    def __init__(self, backend: Backend) -> None:
        self.real = backend
        self.name = backend.name
        self.model = backend.model
        self.frame = backend.frame
        self.endpoint = backend.endpoint
        self.token_limit = backend.token_limit
        self.completion_includes_thinking = backend.completion_includes_thinking
        self.kind: Kind | None = None
        self.asked = 0
        """requests the simulator really answered"""
        self._known: dict[tuple[Kind | None, str], VLMResponse] = {}
        self._ids = itertools.count()

    def preflight(self) -> None:
        self.real.preflight()

    def describe(self) -> dict[str, Any]:
        return self.real.describe()

    def complete(self, request: VLMRequest) -> VLMResponse:
        key = (self.kind, str(request.prompt))
        known = self._known.get(key)
        if known is None:
            known = self._known[key] = self.real.complete(request)
            self.asked += 1
        return replace(known, response_id=f"{known.response_id or 'sim'}-{next(self._ids)}")

    def close(self) -> None:
        self.real.close()


class Collected:
    """What the executor puts into the writer, kept for one `Ledger.append`."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def put(self, *events: Event) -> int:
        self.events.extend(events)
        return 0

    def take(self) -> list[Event]:
        taken, self.events = self.events, []
        return taken


class _Builder:
    """Records images as a run does: `seed_image`, then each step through a `StepExecutor`
    (request, response, completion) with the fingerprints planning gives it."""

    def __init__(self, spec: Spec, session: RunSession, backend: Canned) -> None:
        self.backend = backend
        pipeline = spec.pipeline
        self.settings = Settings(pipeline, frozenset(spec.block.workflow.steps), False,
                                 backend.describe())
        self.ingest = spec.block.data.ingest_settings()
        self.run_id = session.run_id
        self.out = Collected()
        self.executor = StepExecutor(
            cast(Backend, backend), cast(LedgerWriter, self.out), spec.block.workflow.retries,
            threading.Event(), run_id=session.run_id, run_number=session.number,
            generation=session.generation,
            spec_block=pipeline.name)

    def events(self, index: int, kind: Kind, item: ImageInput) -> list[Event]:
        """What a run records for one image: its seed, then each step asked and answered."""
        seeded, prepared = seed_image(item, self.run_id, self.ingest, self.backend.frame)
        self.out.put(seeded)
        self.backend.kind = kind
        facts = ImageFacts(item, seeded.image_key)
        hashes: dict[str, str] = {}
        outputs: dict[str, StepOutput] = {}
        for step in self.settings.selected_steps:
            upstream = {n: hashes[n] for n in step.needs}
            asked = fingerprint(self.settings, facts, step, upstream)
            ctx = StepInput(image_id=item.image_id, caption=item.caption, extra=item.extra,
                            upstream={n: outputs[n] for n in step.needs},
                            convention=self.backend.frame.coordinates,
                            sent_size=prepared.sent_size,
                            original_size=(seeded.width, seeded.height))
            job = StepJob(item.image_id, step,
                          completion_fingerprint(asked, step.parser_version), upstream, ctx,
                          prepared, request_fingerprint=asked)
            result = self.executor.execute(job)
            if not isinstance(result, Completed):
                raise RuntimeError(f"{item.image_id} step {step.number}: {result}")
            hashes[step.number], outputs[step.number] = result.output_hash, result.output
        return self.out.take()


def undone_indices(images: int, done: float, seed: int) -> set[int]:
    """The images left undone: `images * (1 - done)` of them (rounded), spread by `seed`."""
    count = round(images * (1.0 - done))
    return set(random.Random(f"undone:{seed}").sample(range(images), count))


def build(results_dir: str | Path, data_dir: str | Path, images: int, done: float = 0.99,
          pipeline: str = "image_grounding", seed: int = 0, *, batch: int = 2000,
          model: str = MODEL, progress: Callable[[int], None] | None = None) -> BuiltLedger:
    """Write `images` images and their input under `data_dir`, and a ledger in `results_dir`
    (which must hold none yet) in which `done` of them (a fraction, 0-1) completed every step.

    Appends `batch` images' events per transaction. Raises ValueError for another pipeline than
    image_grounding, LedgerError when results_dir cannot hold a new ledger. `progress` is called
    with the number of images appended so far after each batch.
    """
    if pipeline != "image_grounding":
        raise ValueError(f"only image_grounding ledgers are built, not {pipeline}")
    if not 0.0 <= done <= 1.0:
        raise ValueError("done is a fraction between 0 and 1")
    results_dir, data_dir = Path(results_dir), Path(data_dir)
    if (results_dir / "ledger.db").exists():
        raise ValueError(f"{results_dir} already holds a ledger")
    started = time.perf_counter()
    write_dataset(data_dir, images, seed)
    undone = undone_indices(images, done, seed)
    with Simulator(SimConfig(seed=seed)) as sim:
        spec = load_spec(None, spec_overrides(results_dir, data_dir, sim.openai_base_url,
                                              model=model))
        backend = Canned(create_backend(spec.block.vlm))
        steps = [s.number for s in spec.pipeline.steps if s.number in spec.block.workflow.steps]
        session = RunSession.start(results_dir, pipeline=spec.pipeline.name, steps=steps,
                                   spec=spec.dump(), backend=backend.name, model=model,
                                   force=False)
        try:
            builder = _Builder(spec, session, backend)
            events = 1
            pending: list[Event] = []
            for index in range(images):
                if index not in undone:
                    pending.extend(builder.events(index, kind_of(index, seed),
                                                  image_input(index, seed, data_dir)))
                if (index + 1) % batch == 0 or index + 1 == images:
                    refused = session.ledger.append(pending)
                    if refused:
                        raise RuntimeError(f"{len(refused)} completions refused")
                    events += len(pending)
                    pending = []
                    if progress is not None:
                        progress(index + 1)
        except BaseException:
            session.close_on_error()
            backend.close()
            raise
        backend.close()
        kept = images - len(undone)
        session.finish("completed", {s: {"completed": kept} for s in steps})
    return BuiltLedger(results_dir, data_dir, images, kept,
                       sorted(Path(image_name(i)).stem for i in undone), events + 1,
                       time.perf_counter() - started, model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--done", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for data/ and results/ (e.g. /tmp/bench_100k)")
    args = parser.parse_args(argv)
    last = time.perf_counter()

    def say(count: int) -> None:
        nonlocal last
        if time.perf_counter() - last > 10 or count == args.images:
            print(f"  {count} images", file=sys.stderr, flush=True)
            last = time.perf_counter()

    built = build(args.out / "results", args.out / "data", args.images, args.done,
                  seed=args.seed, batch=args.batch, progress=say)
    print(f"{built.images} images ({built.done} done), {built.events} events in "
          f"{built.seconds:.1f} s: {built.results_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
