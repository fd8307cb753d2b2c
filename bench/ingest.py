"""Image ingestion cost per request, and decodes per image per run (run by hand).

    .venv/bin/python bench/ingest.py [--images 30] [--repeat 3]

1920x1080 photo-like JPEGs (~500 KB: blurred colour noise) are prepared for sending the way a run
prepares them (`pipelines.images.prepare`): as they are; with EXIF orientation 6; downscaled by
max_image_side 1024; in Qwen2.5-VL's default smart_resize frame; oriented and in a 1,003,520-pixel
frame (decoded in draft mode). Reported: milliseconds of one core per image (median of the
repeats), and the bytes sent. Then a referring run (4 steps per image) and a rerun with another
temperature against the simulator count how many times each image is decoded per run (target 1).
Appends the figures to BENCHMARKS.md with the date and the machine.
"""

from __future__ import annotations

import argparse
import datetime
import io
import platform
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from PIL import Image, ImageFilter

from auto_label import generate, load_spec
from auto_label.backends.base import ModelFrame, SmartResize
from auto_label.pipelines.engine import image_cache, seeding
from auto_label.pipelines.images.decode import IngestSettings
from auto_label.pipelines.images.prepare import prepare
from auto_label.sim import SimConfig, Simulator, write_referring_dataset

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1920, 1080)


def photo(seed: int, orientation: int = 1) -> bytes:
    noise = [Image.effect_noise(SIZE, 90).point(lambda v, s=seed + c: (v + 37 * s) % 256)
             for c in range(3)]
    image = Image.merge("RGB", noise).filter(ImageFilter.GaussianBlur(1.2))
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
        image = image.transpose(Image.Transpose.ROTATE_90)
    image.save(buffer, "JPEG", quality=85, exif=exif.tobytes())
    return buffer.getvalue()


CASES = {
    "as it is": (1, ModelFrame("xyxy_pixel")),
    "EXIF orientation 6": (6, ModelFrame("xyxy_pixel")),
    "max_image_side 1024": (1, ModelFrame("xyxy_pixel", max_image_side=1024)),
    "smart_resize, Qwen2.5-VL defaults": (1, ModelFrame("xyxy_pixel",
                                                        smart_resize=SmartResize())),
    "orientation 6 + smart_resize max 1,003,520": (
        6, ModelFrame("xyxy_pixel", smart_resize=SmartResize(max_pixels=1003520))),
}


def encode_costs(images: int, repeat: int) -> list[tuple[str, float, float, float]]:
    rows = []
    for name, (orientation, frame) in CASES.items():
        files = [photo(i, orientation) for i in range(images)]
        times = []
        sent = 0
        for _ in range(repeat):
            start = time.process_time()
            sent = 0
            for data in files:
                sent += len(prepare(data, name="bench", sha256="s", settings=IngestSettings(),
                                    frame=frame).prepared.data)
            times.append((time.process_time() - start) / images * 1000)
        size = sum(len(f) for f in files) / images / 1000
        rows.append((name, size, statistics.median(times), sent / images / 1000))
    return rows


def decodes_per_run() -> tuple[float, float]:
    decoded: Counter[str] = Counter()
    for module in (seeding, image_cache):
        original = module.prepare

        def counting(data, *, name, original=original, **kwargs):  # type: ignore[no-untyped-def]
            decoded[name] += 1
            return original(data, name=name, **kwargs)

        module.prepare = counting  # type: ignore[assignment]
    per_run = []
    with tempfile.TemporaryDirectory() as tmp, Simulator(SimConfig(seed=2)) as sim:
        data = write_referring_dataset(Path(tmp) / "data", 40, seed=3, image_format="jpg")
        for temperature in ("0.0", "0.5"):
            decoded.clear()
            generate(load_spec(None, [
                f"results_dir={tmp}/out", "autolabel_type=image_referring_expression",
                "image_referring_expression.vlm.backend=openai",
                f"image_referring_expression.vlm.openai.base_url={sim.openai_base_url}",
                "image_referring_expression.vlm.openai.model_name=sim",
                "image_referring_expression.vlm.openai.coordinates=xyxy_pixel",
                f"image_referring_expression.vlm.openai.temperature={temperature}",
                f"image_referring_expression.data.image_dir={data.root / 'images'}",
                f"image_referring_expression.data.kitti_label_dir={data.root / 'labels'}",
                "image_referring_expression.workflow.max_workers=8"]))
            per_run.append(max(decoded.values()))
    return per_run[0], per_run[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = encode_costs(args.images, args.repeat)
    first, rerun = decodes_per_run()
    today = datetime.date.today().isoformat()
    lines = [
        f"\n## Image ingestion: {today}\n",
        f"Machine: {platform.system()} {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"Python {platform.python_version()}. {args.images} photo-like {SIZE[0]}x{SIZE[1]} "
        f"JPEGs per case, median of {args.repeat}. `bench/ingest.py`.\n",
        "| case | file KB | ms of one core per image | KB sent |",
        "|---|---|---|---|",
        *[f"| {name} | {size:.0f} | {ms:.1f} | {sent:.0f} |" for name, size, ms, sent in rows],
        "",
        f"Decodes per image in a referring run of 40 JPEGs (4 steps each): at most {first} in "
        f"the first run, at most {rerun} in a rerun that asks every step again (target 1).\n",
    ]
    text = "\n".join(lines)
    print(text)
    with (ROOT / "BENCHMARKS.md").open("a", encoding="utf-8") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
