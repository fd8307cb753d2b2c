"""Real photos in, end to end through the real SDKs against the simulator behaving like real
servers: the model sees the picture a person sees, and every box comes back in that frame."""

from __future__ import annotations

import json

import photos
import pytest
from support import SIM_KEY, grounding_overrides, read_jsonl

from auto_label import generate, ledger_status, load_spec
from auto_label.evaluate import match_ground_truth
from auto_label.ledger import Ledger
from auto_label.ledger.events import ImageSeeded


def dataset(tmp_path):
    shots = [photos.oriented(o, o) for o in range(1, 9)]
    shots += [
        photos.oriented(6, 20, fmt="PNG"),  # an eXIf chunk in a PNG
        photos.sixteen_bit("PNG"), photos.sixteen_bit("TIFF"),
        photos.palette_png_with_transparency(9), photos.rgba_webp(10),
        photos.animated_gif(11), photos.heic_named_jpg(12),
        photos.jpeg_with_tail("jpeg_padded", 13, b"\x00" * 4096),
        photos.jpeg_with_tail("jpeg_motion_photo", 14, photos.MOTION_PHOTO_TRAILER),
    ]
    shots[8].name = "orient_6_png"
    return photos.write(tmp_path / "data", shots), shots


def run(tmp_path, sim, out="out", *extra):
    spec = load_spec(None, grounding_overrides(
        tmp_path / out, tmp_path / "data", sim.openai_base_url,
        "image_grounding.vlm.openai.coordinates=xyxy_pixel", *extra))
    summary = generate(spec)
    return summary, read_jsonl(tmp_path / out / "annotations.jsonl")


def truth_of(root):
    return [json.loads(line) for line in (root / "ground_truth.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("server_exif", ["apply", "ignore"])
def test_every_kind_of_photo_gives_the_boxes_a_person_sees(tmp_path, make_sim, server_exif):
    root, shots = dataset(tmp_path)
    sim = make_sim(exif=server_exif)  # vLLM applies EXIF orientation; some servers do not
    summary, records = run(tmp_path, sim)
    assert summary.complete, summary.examples
    truth = truth_of(root)
    report = match_ground_truth(records, truth, threshold=0.9)
    assert report.matched == report.truth, report
    by_id = {r["image_id"]: r for r in records}
    for shot in shots:
        assert (by_id[shot.name]["width"], by_id[shot.name]["height"]) == shot.upright
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        seeds = {e.image_id: e for _, e in ledger.events(["image_seeded"])
                 if isinstance(e, ImageSeeded)}
    assert seeds["orient_6"].orientation == 6
    assert (seeds["orient_6"].stored_width, seeds["orient_6"].stored_height) == (360, 480)
    assert seeds["heic_as_jpg"].format == "HEIF"
    assert seeds["gray16_png"].conversion == "I;16 scaled to 8-bit by its range 321-3918"
    assert "transparency composited over white" in seeds["palette_trns"].conversion
    assert "transparency composited over white" in seeds["rgba_webp"].conversion
    assert "first frame of 2" in seeds["animated_gif"].conversion
    assert seeds["jpeg_motion_photo"].conversion is None  # sent as the file is
    assert seeds["orient_1"].image_key == seeds["orient_1"].sha256
    assert seeds["orient_6"].image_key != seeds["orient_6"].sha256
    sent = {r.image_sha256: r for r in sim.requests()}
    assert all(r.orientation in (None, 1) for r in sent.values())  # no tag left to apply


def test_the_same_image_gives_the_same_box_with_and_without_max_image_side(tmp_path, sim):
    photos.write(tmp_path / "data", [photos.oriented(6, 6, size=(960, 720)),
                                     photos.oriented(3, 3, size=(960, 720))])
    _, full = run(tmp_path, sim, "full")
    _, small = run(tmp_path, sim, "small", "image_grounding.vlm.openai.max_image_side=300")
    boxes = {r["image_id"]: sorted(i["bbox"] for e in r["expressions"] for i in e["instances"])
             for r in full}
    for record in small:
        again = sorted(i["bbox"] for e in record["expressions"] for i in e["instances"])
        assert len(again) == len(boxes[record["image_id"]])
        for a, b in zip(again, boxes[record["image_id"]], strict=True):
            assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 3  # 3.2x downscale


def test_ignoring_exif_keeps_boxes_in_the_stored_frame(tmp_path, sim):
    shot = photos.oriented(6, 6)
    photos.write(tmp_path / "data", [shot])
    summary, records = run(tmp_path, sim, "out", "image_grounding.data.exif_orientation=ignore")
    assert summary.complete
    assert (records[0]["width"], records[0]["height"]) == shot.stored == (360, 480)
    # the upright truth, stored turned 90 degrees: (x, y) upright is (y, W - x) stored
    width = shot.upright[0]
    stored_truth = [{"bbox": [y1, width - x2, y2, width - x1]}
                    for x1, y1, x2, y2 in (o["bbox"] for o in shot.truth)]
    report = match_ground_truth(records, [{"image_id": shot.name, "objects": stored_truth}],
                                threshold=0.9)
    assert report.matched == report.truth
    assert sim.requests()[-1].orientation in (None, 1)  # the tag stripped: the server sees that


def test_a_truncated_jpeg_and_an_image_over_the_pixel_limit_fail_alone(tmp_path, sim):
    good = photos.jpeg_with_tail("good", 1, b"")
    cut = photos.jpeg_with_tail("cut", 2, b"")
    cut.data = cut.data[: len(cut.data) * 6 // 10]
    large = photos.jpeg_with_tail("large", 3, b"")
    photos.write(tmp_path / "data", [good, cut, large])
    (tmp_path / "data" / "images" / "large.img").write_bytes(
        photos.jpeg(photos.make_scene(91, 3, (800, 600)).image))
    summary, records = run(tmp_path, sim, "out", "image_grounding.data.max_image_pixels=300000")
    assert [r["image_id"] for r in records] == ["good"]
    assert summary.failures == {"image_corrupt": 1, "image_too_large": 1}
    messages = " ".join(summary.examples)
    assert "cut.img: corrupt or truncated image" in messages
    assert "large.img: 800x600 is 0.5 megapixels, more than data.max_image_pixels (300,000)" \
        in messages


def test_pillows_own_bomb_check_never_speaks(monkeypatch):
    """Pillow warns past 89 MP and refuses past 179 MP; data.max_image_pixels is the one limit.
    With Pillow's limit made tiny, its warning would fail this test (warnings are errors here),
    and its error would fail the image. (Unit level: the simulator in this process decodes with
    Pillow too.)"""
    from PIL import Image

    from auto_label.backends.base import ModelFrame
    from auto_label.pipelines.images.decode import ImageProblem, IngestSettings
    from auto_label.pipelines.images.prepare import prepare

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = photos.jpeg_with_tail("big_for_pillow", 4, b"").data  # 480x360: 173 x the limit
    ingested = prepare(data, name="big.jpg", sha256="s",
                       settings=IngestSettings(max_image_pixels=0), frame=ModelFrame("xyxy_pixel"))
    assert ingested.prepared.sent_size == (480, 360)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    with pytest.raises(ImageProblem, match=r"data.max_image_pixels \(100,000\)"):
        prepare(data, name="big.jpg", sha256="s",
                settings=IngestSettings(max_image_pixels=100_000), frame=ModelFrame("xyxy_pixel"))


@pytest.mark.parametrize("backend", ["gemini"])
def test_orientation_through_gemini(tmp_path, sim, backend):
    shot = photos.oriented(8, 8)
    photos.write(tmp_path / "data", [shot])
    spec = load_spec(None, [
        f"results_dir={tmp_path / 'out'}", "autolabel_type=image_grounding",
        "image_grounding.vlm.backend=gemini",
        f"image_grounding.vlm.gemini.base_url={sim.gemini_base_url}",
        f"image_grounding.vlm.gemini.api_key={SIM_KEY}",
        f"image_grounding.data.input_jsonl={tmp_path / 'data' / 'input.jsonl'}",
        f"image_grounding.data.image_root={tmp_path / 'data'}"])
    assert generate(spec).complete
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    report = match_ground_truth(records, truth_of(tmp_path / "data"), threshold=0.9)
    assert report.matched == report.truth
    assert ledger_status(tmp_path / "out", check=True).problems == []


def test_each_image_is_read_and_decoded_at_most_once_per_run(tmp_path, sim, monkeypatch):
    from collections import Counter

    from support import referring_spec

    from auto_label.pipelines.engine import image_cache, seeding
    from auto_label.sim import write_referring_dataset

    data = write_referring_dataset(tmp_path / "data", 6, seed=58)
    decoded: Counter[str] = Counter()
    for module in (seeding, image_cache):
        original = module.prepare

        def counting(data_, *, name, original=original, **kwargs):
            decoded[name] += 1
            return original(data_, name=name, **kwargs)

        monkeypatch.setattr(module, "prepare", counting)
    assert generate(referring_spec(tmp_path / "out", data.root, sim)).complete  # 4 steps each
    assert sorted(decoded.values()) == [1] * 6
    decoded.clear()  # seeds still valid, another temperature: every step asks again
    again = generate(referring_spec(tmp_path / "out", data.root, sim,
                                    "image_referring_expression.vlm.openai.temperature=0.4"))
    assert again.requests >= 24 and sorted(decoded.values()) == [1] * 6
