"""Synthetic scenes and dataset writers of the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from auto_label.sim import (
    append_grounding_images,
    make_scene,
    write_grounding_dataset,
    write_referring_dataset,
)
from auto_label.sim.language import BACKGROUND, COLORS, PALETTE, SHAPES
from auto_label.sim.scenes import DEFAULT_SIZES


def test_scene_is_deterministic_and_seed_dependent():
    a, b = make_scene(7, 3), make_scene(7, 3)
    assert a.caption == b.caption and a.objects == b.objects
    assert a.image.tobytes() == b.image.tobytes()
    others = [make_scene(8, 3), make_scene(7, 4)]
    assert all(o.objects != a.objects for o in others)


def _exact_color_bbox(image: Image.Image, rgb: tuple[int, int, int], offset: tuple[int, int]):
    diff = ImageChops.difference(image.convert("RGB"), Image.new("RGB", image.size, rgb))
    r, g, b = diff.split()
    mask = ImageChops.lighter(ImageChops.lighter(r, g), b).point(lambda v: 255 if v == 0 else 0)
    x1, y1, x2, y2 = mask.getbbox()
    return (x1 + offset[0], y1 + offset[1], x2 + offset[0], y2 + offset[1])


def test_scene_truth_matches_the_drawn_pixels():
    for index in range(30):
        scene = make_scene(1, index)
        assert (scene.width, scene.height) in DEFAULT_SIZES
        assert 2 <= len(scene.objects) <= 6
        canvas = Image.new("L", scene.image.size, 0)
        for obj in scene.objects:
            assert obj.color in COLORS and obj.shape in SHAPES
            x1, y1, x2, y2 = obj.bbox
            assert 0 <= x1 < x2 <= scene.width and 0 <= y1 < y2 <= scene.height
            # exclusive right/bottom edges: the box is exactly the extent of the colour there
            ox, oy = max(0, x1 - 3), max(0, y1 - 3)
            crop = scene.image.crop((ox, oy, min(scene.width, x2 + 3), min(scene.height, y2 + 3)))
            assert _exact_color_bbox(crop, PALETTE[obj.color], (ox, oy)) == obj.bbox
            # no two shapes overlap, not even their boxes
            region = canvas.crop(obj.bbox)
            assert region.getbbox() is None
            canvas.paste(255, obj.bbox)
        assert scene.image.getpixel((0, 0)) == BACKGROUND


def test_caption_lists_every_kind_with_its_count():
    seen_templates = set()
    for index in range(40):
        scene = make_scene(2, index)
        text = scene.caption.lower()
        seen_templates.add(text.split()[0])
        counts: dict[tuple[str, str], int] = {}
        for obj in scene.objects:
            counts[(obj.color, obj.shape)] = counts.get((obj.color, obj.shape), 0) + 1
        for (color, shape), count in counts.items():
            noun = shape if count == 1 else shape + "s"
            word = {1: "a", 2: "two", 3: "three"}[count]
            if count == 1 and color[0] in "aeiou":
                word = "an"
            assert f"{word} {color} {noun}" in text, (scene.caption, counts)
    assert len(seen_templates) >= 4  # the filler varies


def test_custom_size_and_duplicates_happen():
    scene = make_scene(0, 0, size=(2400, 1600))
    assert scene.image.size == (2400, 1600)
    dup = 0
    for index in range(60):
        kinds = [(o.color, o.shape) for o in make_scene(3, index).objects]
        dup += len(kinds) != len(set(kinds))
    assert dup >= 10


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_write_grounding_dataset_layout(tmp_path: Path):
    ds = write_grounding_dataset(tmp_path / "g", 6, seed=4, image_format="mixed")
    inputs = _lines(ds.input_path)
    truth = _lines(ds.ground_truth_path)
    assert len(inputs) == len(truth) == len(ds) == 6
    assert [t["image_id"] for t in truth] == [f"scene_{i:04d}" for i in range(6)]
    exts = set()
    for inp, gt in zip(inputs, truth, strict=True):
        assert inp["image_path"] == gt["image_path"] and inp["caption"] == gt["caption"]
        assert not Path(inp["image_path"]).is_absolute()
        exts.add(Path(inp["image_path"]).suffix)
        with Image.open(ds.root / inp["image_path"]) as im:
            assert im.size == (gt["width"], gt["height"])
            assert im.format == ("PNG" if inp["image_path"].endswith(".png") else "JPEG")
        assert all(set(o) == {"color", "shape", "bbox"} for o in gt["objects"])
    assert exts == {".png", ".jpg"}


def test_append_grounding_images_adds_new_lines(tmp_path: Path):
    root = tmp_path / "g"
    write_grounding_dataset(root, 3, seed=1, sizes=(320, 240))
    before = (root / "input.jsonl").read_text()
    grown = append_grounding_images(root, 2, seed=1, sizes=(320, 240))
    assert grown.added == ["scene_0003", "scene_0004"]
    after = (root / "input.jsonl").read_text()
    assert after.startswith(before) and len(after.splitlines()) == 5
    assert len(_lines(root / "ground_truth.jsonl")) == 5 == len(grown)
    assert len(list((root / "images").iterdir())) == 5
    # rewriting starts afresh
    again = write_grounding_dataset(root, 2, seed=1, sizes=[(320, 240), (640, 480)])
    assert len(_lines(again.input_path)) == 2 and len(list((root / "images").iterdir())) == 2


def test_write_referring_dataset_kitti(tmp_path: Path):
    ds = write_referring_dataset(tmp_path / "r", 4, seed=2, image_format="jpg")
    truth = _lines(ds.ground_truth_path)
    for gt in truth:
        rows = (ds.labels_dir / f"{gt['image_id']}.txt").read_text().splitlines()
        assert len(rows) == len(gt["objects"])
        for row, obj in zip(rows, gt["objects"], strict=True):
            cols = row.split()
            assert len(cols) == 15
            assert cols[0] == obj["shape"] and cols[1:4] == ["0.00", "0", "0.00"]
            assert [float(v) for v in cols[4:8]] == obj["bbox"]
            assert all(c == "0.00" for c in cols[8:]) and "." in cols[4]
        assert (ds.root / gt["image_path"]).suffix == ".jpg"


def test_bad_image_format_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="image_format"):
        write_grounding_dataset(tmp_path, 1, image_format="gif")
