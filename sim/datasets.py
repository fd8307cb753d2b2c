"""Dataset writers of the VLM SIMULATOR: synthetic shape scenes on disk, with exact ground truth.

Test, demo and benchmark data only (not real images). Layouts:

grounding (``write_grounding_dataset``)::

    root/images/scene_0000.png            (or .jpg)
    root/input.jsonl                      {"image_path": "images/scene_0000.png", "caption": ...}
    root/ground_truth.jsonl               {"image_id", "image_path", "width", "height",
                                           "caption", "objects": [{"color", "shape", "bbox"}]}

referring (``write_referring_dataset``)::

    root/images/scene_0000.png
    root/labels/scene_0000.txt            KITTI rows: class 0.00 0 0.00 l t r b 0.00 x7
    root/ground_truth.jsonl

Paths in the JSONL files are relative to `root` (use image_root=root). Boxes are pixels with
exclusive right/bottom edges. The ``append_*`` functions add k new scenes to an existing dataset.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .language import counted
from .scenes import Scene, Size, make_scene, pick_size

Sizes = Size | Sequence[Size] | None
_FORMATS = ("png", "jpg", "mixed")


@dataclass
class GroundingDataset:
    """A grounding dataset on disk; `records` are the ground-truth rows, `added` the new ids."""

    root: Path
    records: list[dict[str, Any]]
    added: list[str] = field(default_factory=list)

    @property
    def input_path(self) -> Path:
        return self.root / "input.jsonl"

    @property
    def ground_truth_path(self) -> Path:
        return self.root / "ground_truth.jsonl"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    def __len__(self) -> int:
        return len(self.records)

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {r["image_id"]: r for r in self.records}


@dataclass
class ReferringDataset(GroundingDataset):
    """A referring dataset on disk: images, KITTI labels and ground truth."""

    @property
    def labels_dir(self) -> Path:
        return self.root / "labels"


def _extension(image_format: str, seed: int, index: int) -> str:
    if image_format not in _FORMATS:
        raise ValueError(f"image_format must be one of {_FORMATS}, not {image_format!r}")
    if image_format == "mixed":
        return "jpg" if random.Random(f"auto-label-sim-format:{seed}:{index}").random() < 0.5 \
            else "png"
    return image_format


def _ground_truth(scene: Scene, image_path: str) -> dict[str, Any]:
    """A truth row: the scene's objects, and the same truth in the unified schema of the tool's
    annotations.jsonl (its README, Output), so that `auto_label eval --truth` reads it as is:
    one expression per (colour, shape) kind, phrased as the caption names it ("three red
    squares"), with the boxes of its objects; one region per object with its type and colour."""
    kinds: dict[tuple[str, str], list[Any]] = {}
    for obj in scene.objects:
        kinds.setdefault((obj.color, obj.shape), []).append(obj)
    return {
        "image_id": scene.image_id,
        "image_path": image_path,
        "width": scene.width,
        "height": scene.height,
        "caption": scene.caption,
        "objects": [o.to_dict() for o in scene.objects],
        "expressions": [
            {"text": counted(len(objs), color, shape),
             "instances": [{"bbox": list(o.bbox)} for o in objs]}
            for (color, shape), objs in kinds.items()],
        "regions": [{"bbox": list(o.bbox), "type": o.shape, "color": o.color}
                    for o in scene.objects],
    }


def kitti_row(shape: str, box: Sequence[float]) -> str:
    """A KITTI label row: class, truncated, occluded, alpha, left top right bottom, 7 zeros."""
    left, top, right, bottom = (float(v) for v in box)
    return (f"{shape} 0.00 0 0.00 {left:.2f} {top:.2f} {right:.2f} {bottom:.2f} "
            + " ".join(["0.00"] * 7))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_scenes(root: Path, start: int, k: int, seed: int, sizes: Sizes, image_format: str,
                  labels: bool) -> list[tuple[Scene, str]]:
    """Render and save scenes number start..start+k-1; (scene, relative image path) each."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    if labels:
        (root / "labels").mkdir(parents=True, exist_ok=True)
    written: list[tuple[Scene, str]] = []
    for index in range(start, start + k):
        scene = make_scene(seed, index, pick_size(sizes, seed, index))
        ext = _extension(image_format, seed, index)
        rel = f"images/{scene.image_id}.{ext}"
        (root / rel).write_bytes(scene.encode(ext))
        if labels:
            rows = [kitti_row(o.shape, o.bbox) for o in scene.objects]
            (root / "labels" / f"{scene.image_id}.txt").write_text(
                "\n".join(rows) + "\n", encoding="utf-8")
        written.append((scene, rel))
    return written


def _next_index(root: Path, existing: list[dict[str, Any]]) -> int:
    """The first scene index whose id is not taken yet."""
    taken = {r["image_id"] for r in existing}
    index = len(existing)
    while f"scene_{index:04d}" in taken or any((root / "images").glob(f"scene_{index:04d}.*")):
        index += 1
    return index


def append_grounding_images(root: Path | str, k: int, seed: int = 0, *, sizes: Sizes = None,
                            image_format: str = "png") -> GroundingDataset:
    """Add `k` new scenes (new ids, new input and truth lines) to a grounding dataset."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    existing = _read_jsonl(root / "ground_truth.jsonl")
    start = _next_index(root, existing)
    written = _write_scenes(root, start, k, seed, sizes, image_format, labels=False)
    _append_jsonl(root / "input.jsonl",
                  [{"image_path": rel, "caption": scene.caption} for scene, rel in written])
    truth = [_ground_truth(scene, rel) for scene, rel in written]
    _append_jsonl(root / "ground_truth.jsonl", truth)
    return GroundingDataset(root, existing + truth, [s.image_id for s, _ in written])


def _clear(root: Path) -> None:
    """Remove what an earlier writer left: its JSONL files, scene images and labels."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("input.jsonl", "ground_truth.jsonl"):
        (root / name).unlink(missing_ok=True)
    for pattern in ("images/scene_*.png", "images/scene_*.jpg", "labels/scene_*.txt"):
        for path in root.glob(pattern):
            path.unlink()


def write_grounding_dataset(root: Path | str, n: int, seed: int = 0, *, sizes: Sizes = None,
                            image_format: str = "png") -> GroundingDataset:
    """Write a fresh grounding dataset of `n` scenes (an earlier one in `root` is replaced)."""
    root = Path(root)
    _clear(root)
    return append_grounding_images(root, n, seed, sizes=sizes, image_format=image_format)


def append_referring_images(root: Path | str, k: int, seed: int = 0, *, sizes: Sizes = None,
                            image_format: str = "png") -> ReferringDataset:
    """Add `k` new scenes (images, KITTI labels, truth lines) to a referring dataset."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    existing = _read_jsonl(root / "ground_truth.jsonl")
    start = _next_index(root, existing)
    written = _write_scenes(root, start, k, seed, sizes, image_format, labels=True)
    truth = [{**_ground_truth(scene, rel), "label_path": f"labels/{scene.image_id}.txt"}
             for scene, rel in written]
    _append_jsonl(root / "ground_truth.jsonl", truth)
    return ReferringDataset(root, existing + truth, [s.image_id for s, _ in written])


def write_referring_dataset(root: Path | str, n: int, seed: int = 0, *, sizes: Sizes = None,
                            image_format: str = "png") -> ReferringDataset:
    """Write a fresh referring dataset of `n` scenes (an earlier one in `root` is replaced)."""
    root = Path(root)
    _clear(root)
    return append_referring_images(root, n, seed, sizes=sizes, image_format=image_format)
