"""`auto_label probe`, the pure half: images with known objects, and which box convention and
frame explain what the model answered about them.

The images are drawn here (plain shapes on a light background, in colours any model names), in
shapes that tell frames apart: landscape and portrait, a side that is not a multiple of 28, and
images larger than the max_pixels servers are commonly started with, so that a model answering in
its processor's resized frame shows it. Each candidate reading (a convention, and for pixel boxes
the frame they are in) is scored by the IoU of the model's boxes with the truth.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from auto_label.backends.base import SmartResize
from auto_label.boxes import Convention, iou, to_pixels
from auto_label.pipelines.contract import Step, StepInput, StepOutput
from auto_label.pipelines.grounding import prompts
from auto_label.pipelines.grounding.parsers import parse_grounding
from auto_label.pipelines.images.frames import smart_resize

BACKGROUND = (244, 244, 238)
COLORS = {"red": (215, 35, 35), "blue": (35, 75, 215), "green": (35, 155, 55),
          "yellow": (235, 195, 25)}
COMMON_MAX_PIXELS = (12845056, 1003520, 802816, 501760, 200704)
"""Qwen2.5-VL's own default, and 1280, 1024, 640 and 256 x 28 x 28, which servers often set."""
MARGIN = 0.001
"""candidates within this mean IoU of the best count as tied (the same reading, in effect: for
sizes where two frames coincide): the simplest wins. Readings of one answer differ by a scale,
so even a noisy model's true frame scores higher than its neighbours."""
FITS = 0.5
"""a mean IoU below this: nothing explains the answers (the model may not ground at all)"""


@dataclass(frozen=True)
class ProbeObject:
    phrase: str
    box: tuple[int, int, int, int]
    """[x1, y1, x2, y2] in pixels of the image"""


@dataclass(frozen=True)
class ProbeImage:
    name: str
    size: tuple[int, int]
    objects: tuple[ProbeObject, ...]
    png: bytes = field(repr=False, default=b"")


class ProbeAnswer(StepOutput):
    """What the model answered for one probe image: each phrase's boxes, as written."""

    class_version = 1
    boxes: dict[str, list[list[float]]]

    def found(self) -> int:
        return sum(len(b) for b in self.boxes.values())


def _draw(name: str, size: tuple[int, int],
          shapes: Sequence[tuple[str, str, tuple[float, float, float, float]]]) -> ProbeImage:
    """`shapes`: (colour, rectangle|circle, box as fractions of the image)."""
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    objects = []
    for color, shape, (fx1, fy1, fx2, fy2) in shapes:
        box = (round(fx1 * width), round(fy1 * height), round(fx2 * width), round(fy2 * height))
        if shape == "circle":
            side = min(box[2] - box[0], box[3] - box[1])
            box = (box[0], box[1], box[0] + side, box[1] + side)
            draw.ellipse((box[0], box[1], box[2] - 1, box[3] - 1), fill=COLORS[color])
        else:
            draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=COLORS[color])
        objects.append(ProbeObject(f"the {color} {shape}", box))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return ProbeImage(name, size, tuple(objects), buffer.getvalue())


def probe_images() -> list[ProbeImage]:
    """Five images, two objects each (their boxes are exact: drawn with exclusive edges)."""
    return [
        _draw("landscape_640x480", (640, 480), [
            ("red", "rectangle", (0.08, 0.15, 0.52, 0.45)),
            ("blue", "circle", (0.6, 0.45, 0.9, 0.9))]),
        _draw("portrait_482x806", (482, 806), [  # neither side a multiple of 28
            ("green", "rectangle", (0.1, 0.06, 0.8, 0.3)),
            ("yellow", "circle", (0.25, 0.55, 0.85, 0.95))]),
        _draw("square_1000x1000", (1000, 1000), [
            ("blue", "rectangle", (0.55, 0.1, 0.92, 0.35)),
            ("red", "circle", (0.1, 0.5, 0.45, 0.9))]),
        _draw("large_1920x1440", (1920, 1440), [  # 2.8 MP: over 1280 x 28 x 28
            ("yellow", "rectangle", (0.05, 0.6, 0.5, 0.92)),
            ("green", "circle", (0.62, 0.08, 0.92, 0.48))]),
        _draw("tall_1080x1920", (1080, 1920), [
            ("red", "rectangle", (0.12, 0.7, 0.88, 0.9)),
            ("blue", "circle", (0.3, 0.1, 0.8, 0.4))]),
    ]


@dataclass(frozen=True)
class Candidate:
    """One way to read the answers: a convention, and for pixel boxes the processor frame."""

    coordinates: Convention
    smart_resize: SmartResize | None = None

    def describe(self) -> str:
        if self.smart_resize is None:
            return self.coordinates + (" (pixels of the image as sent)"
                                       if self.coordinates == "xyxy_pixel" else "")
        rule = self.smart_resize
        return (f"xyxy_pixel in the smart_resize frame (factor {rule.factor}, max_pixels "
                f"{rule.max_pixels:,})")

    def frame(self, size: tuple[int, int]) -> tuple[int, int]:
        """The (width, height) pixel boxes are relative to, for an image sent at `size`."""
        if self.smart_resize is None:
            return size
        height, width = smart_resize(size[1], size[0], self.smart_resize)
        return width, height


def candidates() -> list[Candidate]:
    """Every reading the probe weighs, simplest first (ties go to the earlier one)."""
    pixel_frames = [Candidate("xyxy_pixel", SmartResize(max_pixels=m)) for m in COMMON_MAX_PIXELS]
    return [Candidate("xyxy_1000"), Candidate("yxyx_1000"), Candidate("xyxy_pixel"),
            *pixel_frames]


@dataclass(frozen=True)
class Score:
    candidate: Candidate
    mean_iou: float
    hits: int
    """objects whose best box has IoU >= 0.5"""
    objects: int


def score(images: Sequence[ProbeImage], answers: Mapping[str, ProbeAnswer],
          candidate: Candidate) -> Score:
    """How well `candidate` explains the answers: per object, the best IoU of its boxes read
    that way with the truth (0 when the model gave none, or the image got no answer)."""
    ious: list[float] = []
    for image in images:
        answer = answers.get(image.name)
        frame = candidate.frame(image.size)
        for obj in image.objects:
            best = 0.0
            for values in (answer.boxes.get(obj.phrase, []) if answer else []):
                try:
                    box = to_pixels(values, candidate.coordinates, frame, image.size)
                except ValueError:
                    continue
                best = max(best, iou(box, obj.box))
            ious.append(best)
    hits = sum(1 for v in ious if v >= 0.5)
    return Score(candidate, sum(ious) / len(ious) if ious else 0.0, hits, len(ious))


def ranked(images: Sequence[ProbeImage], answers: Mapping[str, ProbeAnswer]) -> list[Score]:
    """Every candidate's score, best first; within MARGIN of each other the simpler comes first."""
    scores = [score(images, answers, c) for c in candidates()]
    best = max(s.mean_iou for s in scores)

    def key(item: tuple[int, Score]) -> tuple[int, float]:
        index, entry = item
        return (0, index) if entry.mean_iou >= best - MARGIN else (1, -entry.mean_iou)

    return [entry for _, entry in sorted(enumerate(scores), key=key)]


def _build(ctx: StepInput) -> str:
    phrases = list(ctx.extra["phrases"])
    return prompts.ground_expressions(phrases, ctx.convention, *ctx.sent_size)


def _parse(text: str, ctx: StepInput) -> ProbeAnswer:
    found = parse_grounding(text, list(ctx.extra["phrases"]))
    return ProbeAnswer(boxes={phrase: [list(values) for values, _ in boxes]
                              for phrase, boxes in found.items()})


PROBE_STEP = Step(number="probe", name="probe", prompt=prompts.GROUND, needs=(),
                  output=ProbeAnswer, build=_build, parse=_parse)
"""The grounding step's own prompt, about the probe's objects; the answer kept as written."""


def probe_input(image: ProbeImage, convention: Convention) -> StepInput:
    """What the probe step is given for one image (sent as it is: the model's own frame shows)."""
    return StepInput(image_id=f"probe:{image.name}", caption=None,
                     extra={"phrases": [o.phrase for o in image.objects]}, upstream={},
                     convention=convention, sent_size=image.size, original_size=image.size)


def spec_lines(pipeline: str, backend: str, best: Score, current: Candidate) -> str:
    """The spec lines that read boxes the way `best` does (YAML, with a comment saying why)."""
    chosen = best.candidate
    head = (f"# auto_label probe: {chosen.describe()} fits best (mean IoU "
            f"{best.mean_iou:.2f}, {best.hits} of {best.objects} objects found)")
    if chosen == current:
        head += "; the spec already reads boxes this way"
    rule = chosen.smart_resize
    resize = ("false" if rule is None else
              f"{{factor: {rule.factor}, min_pixels: {rule.min_pixels}, "
              f"max_pixels: {rule.max_pixels}}}")
    return "\n".join([head, f"{pipeline}:", "  vlm:", f"    {backend}:",
                      f"      coordinates: {chosen.coordinates}",
                      f"      smart_resize: {resize}"])
