"""The simulator plays documented behaviours of real servers and models (sources in sim/frames.py
and sim/boxes.py): EXIF orientation applied before the model sees the image (vLLM,
transformers), Qwen2.5-VL's pixel boxes in the frame its processor resized the image to
(`smart_resize`), Qwen3-VL's relative 0-1000 boxes. Asked through the real SDKs.

The test images and expected boxes are built here with Pillow (the stored pixels are the upright
scene transformed so that applying the tag gives it back), independently of the simulator's code.
"""

from __future__ import annotations

import io
import json

import openai
import pytest
from google import genai
from google.genai import types
from openai import OpenAI
from PIL import Image, ImageOps
from simtest_helpers import kinds, openai_messages

from auto_label.sim import SimConfig, Simulator, make_scene, smart_resize
from auto_label.sim.__main__ import _config, _parser

T = Image.Transpose
# The transposition that turns the upright scene into the stored pixels for each tag: the
# inverse of what a viewer (and PIL.ImageOps.exif_transpose) does to display it.
STORE = {1: None, 2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE,
         6: T.ROTATE_90, 7: T.TRANSVERSE, 8: T.ROTATE_270}
QWEN_SERVER_MAX = 1280 * 28 * 28  # a max_pixels servers are often started with


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def stored_box(box, method, size):
    """Where a box of the upright image lies once the image is transposed by `method`."""
    if method is None:
        return tuple(box)
    mask = Image.new("L", size)
    mask.paste(255, tuple(box))
    return mask.transpose(method).getbbox()


def tagged(upright: Image.Image, tag: int, fmt: str = "JPEG") -> bytes:
    """The upright image stored as a camera would, with EXIF Orientation `tag`."""
    stored = upright if STORE[tag] is None else upright.transpose(STORE[tag])
    exif = Image.Exif()
    exif[0x0112] = tag
    buf = io.BytesIO()
    stored.save(buf, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))
    data = buf.getvalue()
    # The test's own check that the file is built right: Pillow shows it upright.
    with Image.open(io.BytesIO(data)) as shown:
        assert shown.getexif()[0x0112] == tag
        assert ImageOps.exif_transpose(shown).size == upright.size
    return data


def ground(client, prompts, exprs, image, mime="image/jpeg", convention="xyxy_pixel",
           w=640, h=480):
    reply = client.chat.completions.create(
        model="qwen-sim", temperature=0, max_tokens=4000,
        messages=openai_messages(prompts.ground_expressions(exprs, convention, w, h), image, mime))
    return json.loads(reply.choices[0].message.content)


def to_pixels(box, convention, w, h):
    if convention == "xyxy_1000":
        return [box[0] * w / 1000, box[1] * h / 1000, box[2] * w / 1000, box[3] * h / 1000]
    if convention == "yxyx_1000":
        return [box[1] * w / 1000, box[0] * h / 1000, box[3] * w / 1000, box[2] * h / 1000]
    return list(box)


def assert_matches(answer, truth, convention="xyxy_pixel", w=0, h=0, scale=(1.0, 1.0)):
    """Every expression's boxes match its kind's true boxes one to one with IoU >= 0.9."""
    for (color, shape), want in truth.items():
        got = [to_pixels(b, convention, w, h) for b in answer[f"the {color} {shape}s"]["bboxes"]]
        got = [[b[0] * scale[0], b[1] * scale[1], b[2] * scale[0], b[3] * scale[1]]
               for b in got]
        assert len(got) == len(want), (color, shape, got, want)
        for box in want:
            best = max(got, key=lambda g, box=box: iou(g, box))
            assert iou(best, box) >= 0.9, (color, shape, best, box)
            got.remove(best)


@pytest.fixture
def truth(scene):
    return kinds(scene.objects)


@pytest.fixture
def exprs(truth):
    return [f"the {c} {s}s" for c, s in truth]


# --- EXIF orientation -------------------------------------------------------------------------

@pytest.mark.parametrize("tag", range(1, 9))
def test_every_orientation_is_applied_like_vllm_and_ignored_on_request(tag, scene, truth, exprs,
                                                                       prompts):
    image = tagged(scene.image, tag)
    w, h = scene.width, scene.height
    stored_size = (w, h) if tag < 5 else (h, w)
    with Simulator(SimConfig()) as sim, \
            OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0) as client:
        assert_matches(ground(client, prompts, exprs, image), truth)
        (rec,) = sim.requests()
        assert (rec.received_size, rec.orientation, rec.image_size) == (stored_size, tag, (w, h))
    with Simulator(SimConfig(exif="ignore")) as sim, \
            OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0) as client:
        stored_truth = {k: [stored_box(b, STORE[tag], (w, h)) for b in v]
                        for k, v in truth.items()}
        assert_matches(ground(client, prompts, exprs, image), stored_truth)
        (rec,) = sim.requests()
        assert (rec.received_size, rec.orientation, rec.image_size) == (
            stored_size, tag, stored_size)
        assert sim.stats()["requests"][0]["received_size"] == list(stored_size)


def test_no_exif_records_no_orientation(sim, scene, truth, exprs, prompts):
    buf = io.BytesIO()
    scene.image.save(buf, "PNG")
    with OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0) as client:
        assert_matches(ground(client, prompts, exprs, buf.getvalue(), "image/png"), truth)
    (rec,) = sim.requests()
    assert rec.orientation is None and rec.received_size == rec.image_size == (640, 480)


def test_gemini_applies_the_orientation_too(sim, scene, truth, exprs, prompts):
    w, h = scene.width, scene.height
    image = tagged(scene.image, 8, "PNG")  # an eXIf chunk this time
    config = types.GenerateContentConfig(temperature=0.0, response_mime_type="application/json")
    with genai.Client(api_key="g", http_options=types.HttpOptions(
            base_url=sim.gemini_base_url)) as client:
        reply = client.models.generate_content(
            model="gemini-sim", config=config,
            contents=[types.Part.from_bytes(data=image, mime_type="image/png"),
                      prompts.ground_expressions(exprs, "yxyx_1000", w, h)])
    assert_matches(json.loads(reply.text), truth, "yxyx_1000", w, h)
    (rec,) = sim.requests()
    assert (rec.protocol, rec.received_size, rec.orientation, rec.image_size) == (
        "gemini", (h, w), 8, (w, h))


# --- Qwen3-VL: relative 0-1000 ----------------------------------------------------------------

@pytest.mark.parametrize("tag", [1, 6])
def test_qwen3_relative_boxes_through_the_sdk(tag, scene, truth, exprs, prompts):
    w, h = scene.width, scene.height
    with Simulator(SimConfig(convention_openai="xyxy_1000")) as sim, \
            OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0) as client:
        answer = ground(client, prompts, exprs, tagged(scene.image, tag), convention="xyxy_1000")
    boxes = [b for v in answer.values() for b in v["bboxes"]]
    assert boxes and all(0 <= v <= 1000 for b in boxes for v in b)
    assert max(v for b in boxes for v in b) > max(w, h) / 2  # not pixels of a 640x480 image
    assert_matches(answer, truth, "xyxy_1000", w, h)


# --- Qwen2.5-VL: smart_resize and the model's frame -------------------------------------------

@pytest.mark.parametrize(("height", "width", "kw", "expected"), [
    # 1080x1920 portrait, server max_pixels 1280*28*28: rounds to 1932x1092 = 2109744 px, over
    # 1003520, so beta = sqrt(1920*1080/1003520) = 1.43747; 1920/beta/28 = 47.70 -> 47*28 = 1316
    # and 1080/beta/28 = 26.83 -> 26*28 = 728.
    (1920, 1080, {"max_pixels": QWEN_SERVER_MAX}, (1316, 728)),
    (1080, 1920, {"max_pixels": QWEN_SERVER_MAX}, (728, 1316)),
    # not multiples of 28: 300/28 = 10.71 -> 11*28 = 308, 500/28 = 17.86 -> 18*28 = 504
    (300, 500, {}, (308, 504)),
    # a tie: 70/28 = 2.5 rounds half to even (Python's round) -> 2*28 = 56; 56*56 = 3136 is not
    # below min_pixels 3136
    (70, 70, {"min_pixels": 3136}, (56, 56)),
    # above max_pixels 12845056: 2996x5012 = 15015952 px; beta = sqrt(15e6/12845056) = 1.08063;
    # 3000/beta/28 = 99.15 -> 2772, 5000/beta/28 = 165.25 -> 4620
    (3000, 5000, {"max_pixels": 12845056}, (2772, 4620)),
    # below min_pixels 3136: 28x28 = 784 px; beta = sqrt(3136/1200) = 1.61658;
    # 30*beta/28 = 1.73 -> ceil 2 -> 56, 40*beta/28 = 2.31 -> ceil 3 -> 84
    (30, 40, {"min_pixels": 3136, "max_pixels": 12845056}, (56, 84)),
    # below a server's min_pixels 256*28*28 = 200704: 252x308 = 77616 px; beta = 1.61658;
    # 240*beta/28 = 13.86 -> 14*28 = 392, 320*beta/28 = 18.48 -> 19*28 = 532
    (240, 320, {"min_pixels": 256 * 28 * 28}, (392, 532)),
    # already a fixed point
    (476, 644, {}, (476, 644)),
])
def test_smart_resize_table(height, width, kw, expected):
    assert smart_resize(height, width, **kw) == expected


def test_smart_resize_refuses_what_transformers_refuses():
    with pytest.raises(ValueError):
        smart_resize(20, 400)  # a side under the factor
    with pytest.raises(ValueError):
        smart_resize(30, 30 * 201)  # aspect ratio above 200


def qwen25(**kw):
    return Simulator(SimConfig(model_frame="qwen2.5_smart_resize", max_pixels=QWEN_SERVER_MAX,
                               **kw))


def test_qwen25_answers_pixels_of_its_resized_frame(prompts):
    scene = make_scene(5, 1, size=(1080, 1920))
    truth = kinds(scene.objects)
    exprs = [f"the {c} {s}s" for c, s in truth]
    buf = io.BytesIO()
    scene.image.save(buf, "PNG")
    with qwen25() as sim, OpenAI(base_url=sim.openai_base_url, api_key="k",
                                 max_retries=0) as client:
        answer = ground(client, prompts, exprs, buf.getvalue(), "image/png", w=1080, h=1920)
    (rec,) = sim.requests()
    assert (rec.received_size, rec.image_size) == ((1080, 1920), (728, 1316))
    boxes = [b for v in answer.values() for b in v["bboxes"]]
    assert all(b[2] <= 728 and b[3] <= 1316 for b in boxes)
    # scaled back by hand from the 728x1316 frame to the 1080x1920 image sent, they are right...
    assert_matches(answer, truth, scale=(1080 / 728, 1920 / 1316))
    # ...and read as pixels of the image sent, they are not
    with pytest.raises(AssertionError):
        assert_matches(answer, truth)


def test_qwen25_orientation_comes_before_the_resize(prompts):
    scene = make_scene(5, 1, size=(1080, 1920))
    truth = kinds(scene.objects)
    exprs = [f"the {c} {s}s" for c, s in truth]
    with qwen25() as sim, OpenAI(base_url=sim.openai_base_url, api_key="k",
                                 max_retries=0) as client:
        answer = ground(client, prompts, exprs, tagged(scene.image, 6), w=1080, h=1920)
    (rec,) = sim.requests()
    assert (rec.received_size, rec.orientation, rec.image_size) == ((1920, 1080), 6, (728, 1316))
    assert_matches(answer, truth, scale=(1080 / 728, 1920 / 1316))


def test_an_image_sent_at_a_fixed_point_comes_back_in_its_own_pixels(prompts):
    scene = make_scene(5, 1, size=(1080, 1920))
    small = scene.image.resize((728, 1316), Image.Resampling.LANCZOS)
    sx, sy = 728 / 1080, 1316 / 1920
    truth = {k: [(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in v]
             for k, v in kinds(scene.objects).items()}
    exprs = [f"the {c} {s}s" for c, s in truth]
    buf = io.BytesIO()
    small.save(buf, "PNG")
    answers = []
    for sim in (qwen25(), Simulator(SimConfig())):
        with sim, OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0) as client:
            answers.append(ground(client, prompts, exprs, buf.getvalue(), "image/png",
                                  w=728, h=1316))
            (rec,) = sim.requests()
            assert rec.received_size == rec.image_size == (728, 1316)
    assert_matches(answers[0], truth)
    assert answers[0] == answers[1]  # analysed as is: the same pixels as without the frame


def test_normalised_boxes_do_not_depend_on_the_frame(prompts, scene, truth, exprs):
    buf = io.BytesIO()
    scene.image.save(buf, "PNG")
    with qwen25(convention_openai="xyxy_1000") as sim, \
            OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0) as client:
        answer = ground(client, prompts, exprs, buf.getvalue(), "image/png", "xyxy_1000")
    assert sim.requests()[0].image_size == (644, 476)
    assert_matches(answer, truth, "xyxy_1000", scene.width, scene.height)


def test_an_image_the_processor_refuses_is_a_400(scene):
    buf = io.BytesIO()
    scene.image.resize((400, 20)).save(buf, "PNG")
    with qwen25() as sim, OpenAI(base_url=sim.openai_base_url, api_key="k",
                                 max_retries=0) as client:
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", messages=openai_messages(
                "Write a caption of this whole image.", buf.getvalue(), "image/png"))
        assert [r.outcome for r in sim.requests()] == ["bad_request"]


# --- configuration and command line -----------------------------------------------------------

def test_config_defaults_and_validation():
    cfg = SimConfig()
    assert (cfg.exif, cfg.model_frame, cfg.min_pixels, cfg.max_pixels, cfg.resize_factor) == (
        "apply", "sent", 3136, 12845056, 28)
    for bad in ({"exif": "rotate"}, {"model_frame": "qwen3"}, {"min_pixels": 10, "max_pixels": 5},
                {"resize_factor": 0}):
        with pytest.raises(ValueError):
            SimConfig(**bad)


def test_serve_flags():
    cfg = _config(_parser().parse_args([
        "serve", "--exif", "ignore", "--model-frame", "qwen2.5_smart_resize", "--min-pixels",
        "200704", "--max-pixels", "1003520", "--resize-factor", "32", "--convention-openai",
        "xyxy_1000", "--convention-gemini", "xyxy_pixel"]))
    assert (cfg.exif, cfg.model_frame, cfg.min_pixels, cfg.max_pixels, cfg.resize_factor,
            cfg.convention_openai, cfg.convention_gemini) == (
        "ignore", "qwen2.5_smart_resize", 200704, 1003520, 32, "xyxy_1000", "xyxy_pixel")
    default = _config(_parser().parse_args(["serve", "--openai-convention", "yxyx_1000"]))
    assert (default.exif, default.model_frame, default.max_pixels, default.convention_openai) == (
        "apply", "sent", 12845056, "yxyx_1000")
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--exif", "sideways"])
