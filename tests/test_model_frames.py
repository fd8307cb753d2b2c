"""The model's frame and convention: profiles, smart_resize, the convention alarm, and `probe`
choosing right for every way the simulator can answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import asked, grounding_overrides, read_jsonl
from typer.testing import CliRunner

from auto_label import generate, ledger_status, load_spec, probe
from auto_label.backends.base import ModelFrame, SmartResize
from auto_label.backends.openai_backend import OpenAIConfig
from auto_label.backends.profiles import PROFILES, model_frame
from auto_label.boxes import from_pixels_exact, to_pixels
from auto_label.cli.main import app
from auto_label.evaluate import match_ground_truth
from auto_label.pipelines.images.frames import sent_size, smart_resize, upright_size
from auto_label.sim import write_grounding_dataset

QWEN25 = "Qwen/Qwen2.5-VL-7B-Instruct"
QWEN3 = "Qwen/Qwen3-VL-8B-Instruct"
LARGE = (1920, 1080)


@pytest.mark.parametrize(("model", "family", "coordinates", "resize"), [
    ("gemini-2.5-flash", "Gemini", "yxyx_1000", False),
    ("Qwen/Qwen2.5-VL-72B-Instruct", "Qwen2.5-VL", "xyxy_pixel", True),
    ("qwen2_5_vl_7b", "Qwen2.5-VL", "xyxy_pixel", True),
    ("Qwen/Qwen3-VL-235B-A22B-Instruct", "Qwen3-VL", "xyxy_1000", False),
    ("Qwen/Qwen2-VL-7B-Instruct", "Qwen2-VL", "xyxy_1000", False),
    ("OpenGVLab/InternVL3-8B", "InternVL", "xyxy_1000", False),
    ("gpt-4o", None, "xyxy_pixel", False),
])
def test_profiles_give_defaults_and_an_explicit_value_wins(model, family, coordinates, resize):
    frame = model_frame(OpenAIConfig(model_name=model), model)
    assert (frame.profile, frame.coordinates, frame.smart_resize is not None) == (
        family, coordinates, resize)
    assert frame.defaulted is (family is None)
    explicit = OpenAIConfig.model_validate({"model_name": model, "coordinates": "yxyx_1000",
                                            "smart_resize": False})
    assert model_frame(explicit, model).coordinates == "yxyx_1000"
    assert model_frame(explicit, model).smart_resize is None
    assert all(p.source.startswith("https://") for p in PROFILES)


def test_smart_resize_follows_the_documented_algorithm():
    rule = SmartResize(max_pixels=1280 * 28 * 28)
    assert smart_resize(1920, 1080, rule) == (1316, 728)  # the 1080x1920 example
    assert smart_resize(480, 640, SmartResize()) == (476, 644)
    assert smart_resize(28 * 20, 28 * 30, SmartResize()) == (560, 840)  # a fixed point
    assert smart_resize(20, 20, SmartResize()) == (56, 56)  # below min_pixels
    assert sent_size((1080, 1920), ModelFrame("xyxy_pixel", smart_resize=rule)) == (728, 1316)
    assert sent_size((4000, 3000), ModelFrame("xyxy_pixel", max_image_side=1000,
                                              smart_resize=SmartResize())) == (1008, 756)


@settings(max_examples=300, deadline=None)
@given(st.integers(16, 4000), st.integers(16, 4000), st.integers(1, 8),
       st.sampled_from([0, 300, 1000]),
       st.sampled_from([None, 12845056, 1003520, 200704]),
       st.floats(0, 0.8), st.floats(0, 0.8), st.floats(0.05, 0.2), st.floats(0.05, 0.2))
def test_a_box_survives_send_model_frame_and_back(width, height, orientation, max_side, pixels,
                                                   fx, fy, fw, fh):
    upright = upright_size((width, height), orientation)
    frame = ModelFrame("xyxy_pixel", max_image_side=max_side,
                       smart_resize=SmartResize(max_pixels=pixels) if pixels else None)
    sent = sent_size(upright, frame)
    assert sent == sent_size(sent, ModelFrame("xyxy_pixel", smart_resize=frame.smart_resize))
    box = (fx * upright[0], fy * upright[1], (fx + fw) * upright[0], (fy + fh) * upright[1])
    for convention in ("xyxy_pixel", "xyxy_1000", "yxyx_1000"):
        written = from_pixels_exact(box, convention, sent, upright)
        back = to_pixels(written, convention, sent, upright)
        assert max(abs(a - b) for a, b in zip(back, box, strict=True)) < 1e-6
        # a model writes integers: at most half a unit of its frame off, and never drifting
        rounded = [round(v) for v in written]
        unit = max(upright[0] / sent[0], upright[1] / sent[1]) if convention == "xyxy_pixel" \
            else max(upright) / 1000
        again = to_pixels(rounded, convention, sent, upright)
        assert max(abs(a - b) for a, b in zip(again, box, strict=True)) <= unit / 2 + 1e-6


def large_dataset(tmp_path, n=3):
    return write_grounding_dataset(tmp_path / "data", n, seed=41, sizes=LARGE)


def run(tmp_path, sim, model, *extra):
    spec = load_spec(None, [o for o in grounding_overrides(
        tmp_path / "out", tmp_path / "data", sim.openai_base_url, *extra)
        if not o.endswith("model_name=sim-vlm")] + [
        f"image_grounding.vlm.openai.model_name={model}"])
    summary = generate(spec)
    return summary, read_jsonl(tmp_path / "out" / "annotations.jsonl")


def test_qwen25_answers_in_its_processors_frame_and_smart_resize_sends_that_frame(
        tmp_path, make_sim):
    data = large_dataset(tmp_path)
    sim = make_sim(model_frame="qwen2.5_smart_resize", max_pixels=1280 * 28 * 28)
    summary, records = run(tmp_path, sim, QWEN25,
                           "image_grounding.vlm.openai.smart_resize.max_pixels=1003520")
    assert summary.complete
    assert match_ground_truth(records, data.records, threshold=0.9).recall == 1.0
    assert {r.received_size for r in asked(sim)} == {(1316, 728)}  # sent at the frame
    assert {r.image_size for r in asked(sim)} == {(1316, 728)}  # and left alone there


def test_without_the_frame_qwen25_boxes_are_wrong_and_the_alarm_says_so(tmp_path, make_sim):
    data = large_dataset(tmp_path, n=8)
    sim = make_sim(model_frame="qwen2.5_smart_resize", max_pixels=1280 * 28 * 28)
    summary, records = run(tmp_path, sim, QWEN25, "image_grounding.vlm.openai.smart_resize=false")
    assert match_ground_truth(records, data.records, threshold=0.5).recall < 0.2
    assert summary.suspect_boxes and not summary.ok
    assert any("pixels of a smaller frame" in a and "smart_resize" in a for a in summary.alarms)


def test_qwen3_is_read_0_to_1000_by_its_profile(tmp_path, make_sim):
    data = large_dataset(tmp_path)
    sim = make_sim(convention_openai="xyxy_1000")
    summary, records = run(tmp_path, sim, QWEN3)
    assert summary.complete and summary.alarms == []
    assert match_ground_truth(records, data.records, threshold=0.9).recall == 1.0


def test_a_wrong_convention_sounds_the_alarm_once_in_output_summary_and_status(tmp_path,
                                                                               make_sim):
    from test_resume import write_spec

    large_dataset(tmp_path, n=8)
    sim = make_sim(convention_openai="xyxy_1000")  # Qwen3-VL, read as pixels
    path = write_spec(tmp_path / "spec.yaml", [
        *grounding_overrides(tmp_path / "out", tmp_path / "data", sim.openai_base_url),
        "image_grounding.vlm.openai.coordinates=xyxy_pixel"])
    result = CliRunner().invoke(app, ["generate", "-e", str(path), "--plain"])
    assert result.exit_code == 1  # every image completed, but the boxes look wrong
    alarms = [line for line in result.output.splitlines() if "another coordinate" in line]
    assert len(alarms) == 2, result.output  # once as the run goes, once in the summary
    assert "auto_label probe -e SPEC" in alarms[0]
    assert "vlm.openai.coordinates" in alarms[0]
    status = ledger_status(tmp_path / "out")
    assert len(status.warnings) == 1 and "0-1000" in status.warnings[0]
    shown = CliRunner().invoke(app, ["status", str(tmp_path / "out")])
    assert "WARNING run 1: boxes look like another coordinate convention" in shown.output
    again = CliRunner().invoke(app, ["generate", "-e", str(path), "--plain"])  # all cached
    assert again.exit_code == 1 and "come from run 1, whose boxes looked like" in again.output
    assert "WARNING run 1" in CliRunner().invoke(app, ["status", str(tmp_path / "out")]).output


def test_an_unknown_model_without_coordinates_gets_one_warning_line(tmp_path, sim):
    write_grounding_dataset(tmp_path / "data", 1, seed=42)
    summary, _ = run(tmp_path, sim, "my-finetune-v3")
    assert len(summary.alarms) == 1
    assert "no profile knows the model 'my-finetune-v3'" in summary.alarms[0]
    assert "xyxy_pixel" in summary.alarms[0] and "auto_label probe" in summary.alarms[0]
    known, _ = run(tmp_path, sim, "sim-vlm", "image_grounding.vlm.openai.coordinates=xyxy_pixel")
    assert known.alarms == []


@pytest.mark.parametrize(("server", "coordinates", "max_pixels"), [
    ({}, "xyxy_pixel", None),
    ({"model_frame": "qwen2.5_smart_resize"}, "xyxy_pixel", 12845056),
    ({"model_frame": "qwen2.5_smart_resize", "max_pixels": 1003520}, "xyxy_pixel", 1003520),
    ({"model_frame": "qwen2.5_smart_resize", "max_pixels": 200704}, "xyxy_pixel", 200704),
    ({"convention_openai": "xyxy_1000"}, "xyxy_1000", None),
    ({"convention_openai": "yxyx_1000"}, "yxyx_1000", None),
])
def test_probe_finds_how_each_server_answers(tmp_path, make_sim, server, coordinates,
                                             max_pixels):
    sim = make_sim(**server)
    report = probe(load_spec(None, [
        f"results_dir={tmp_path / 'out'}", "autolabel_type=image_grounding",
        "image_grounding.vlm.backend=openai",
        f"image_grounding.vlm.openai.base_url={sim.openai_base_url}",
        "image_grounding.vlm.openai.api_key=" + sim.config.api_key,
        f"image_grounding.vlm.openai.model_name={QWEN25}",
        f"image_grounding.data.input_jsonl={tmp_path / 'none.jsonl'}"]))
    best = report.best.candidate
    assert (best.coordinates, best.smart_resize.max_pixels if best.smart_resize else None) == (
        coordinates, max_pixels)
    assert report.fits and report.best.hits == report.best.objects == 10
    assert report.requests == 5 == len(asked(sim))
    lines = report.spec_lines()
    assert f"      coordinates: {coordinates}" in lines
    status = ledger_status(tmp_path / "out", check=True)
    assert status.problems == [] and status.requests == 5 and status.images == 0


def test_probe_through_gemini_and_the_cli(tmp_path, sim):
    from test_resume import write_spec

    path = write_spec(tmp_path / "spec.yaml", [
        f"results_dir={tmp_path / 'out'}", "autolabel_type=image_grounding",
        f"image_grounding.vlm.gemini.base_url={sim.gemini_base_url}",
        f"image_grounding.vlm.gemini.api_key={sim.config.api_key}",
        f"image_grounding.data.input_jsonl={tmp_path / 'none.jsonl'}"])
    result = CliRunner().invoke(app, ["probe", "-e", str(path)])
    assert result.exit_code == 0, result.output
    assert "yxyx_1000 fits best" in result.output
    assert "the spec already reads boxes this way" in result.output
    assert "      coordinates: yxyx_1000" in result.output


@settings(max_examples=60, deadline=None)
@given(st.integers(40, 900), st.integers(40, 900), st.integers(1, 8),
       st.sampled_from([0, 200]), st.sampled_from([None, 200704, 50176]),
       st.floats(0.05, 0.55), st.floats(0.05, 0.55), st.floats(0.2, 0.4), st.floats(0.2, 0.4))
def test_a_drawn_box_comes_back_through_the_real_pixels(width, height, orientation, max_side,
                                                        pixels, fx, fy, fw, fh):
    """The pixel path, not only the arithmetic: a box drawn in the upright picture, stored as a
    camera tagging `orientation` stores it, prepared for sending, found again in the pixels sent
    and read back as a model answering in sent pixels would be, lands where it was drawn (within
    one pixel of the sent frame, scaled)."""
    import io

    from photos import INVERSE
    from PIL import Image, ImageDraw

    from auto_label.pipelines.images.decode import IngestSettings
    from auto_label.pipelines.images.prepare import prepare

    upright = Image.new("RGB", (width, height), (240, 240, 240))
    box = (round(fx * width), round(fy * height), round((fx + fw) * width),
           round((fy + fh) * height))
    ImageDraw.Draw(upright).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(200, 0, 0))
    transpose = INVERSE[orientation]
    stored = upright.transpose(transpose) if transpose is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "PNG", exif=exif.tobytes())
    frame = ModelFrame("xyxy_pixel", max_image_side=max_side,
                       smart_resize=SmartResize(max_pixels=pixels) if pixels else None)
    sent = prepare(buffer.getvalue(), name="p", sha256="s", settings=IngestSettings(),
                   frame=frame).prepared
    assert sent.original_size == (width, height)
    with Image.open(io.BytesIO(sent.data)) as image:
        assert image.size == sent.sent_size
        # the red box: where green is low (the background is light gray)
        mask = Image.eval(image.convert("RGB").getchannel("G"), lambda v: 255 if v < 120 else 0)
        bbox = mask.getbbox()
    assert bbox is not None
    back = to_pixels(bbox, "xyxy_pixel", sent.sent_size, sent.original_size)
    scale = max(width / sent.sent_size[0], height / sent.sent_size[1])
    assert max(abs(a - b) for a, b in zip(back, box, strict=True)) <= 1.5 * scale + 1
