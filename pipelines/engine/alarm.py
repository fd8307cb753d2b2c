"""The convention alarm: boxes that look like another coordinate convention, said once, loudly.

A model answering in a convention other than the configured one gives wrong boxes that still
parse. Two signs show it in a run's raw answers (before conversion):

- under `xyxy_pixel`, on images sent much larger than 1000 px, every box stays within 0-1000:
  the model answers 0-1000 (Qwen3-VL, Qwen2-VL, InternVL, Gemini);
- boxes keep falling outside the image as sent (beyond its pixel size, or beyond 1000 for the
  normalized conventions): the model answers in another convention or frame;
- under `xyxy_pixel`, no box ever reaches the right or bottom fifth of the images: the model
  answers in pixels of a smaller frame (Qwen2.5-VL's processor resize, when the server's
  max_pixels is below the image's size).

`auto_label probe -e SPEC` measures which convention and frame fit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from auto_label.boxes import NORMALIZED_RANGE, Convention

MIN_BOXES = 20
"""boxes seen before any verdict"""
LARGE_SIDE = 1500
"""a sent image whose longest side is at least this is much larger than 1000 px"""
INSIDE_SHARE = 0.9
OUTSIDE_SHARE = 0.2
REACH = 0.8
"""under xyxy_pixel, boxes that never reach past this share of the width and of the height"""
SLACK = 1.02
"""a value this far past the edge still counts as inside (models round, and reach the edge)"""


class ConventionAlarm:
    """Thread-safe; `observe` each raw model box with the size it was sent at; `on_alarm` is
    called once, with one line, when the boxes look wrong."""

    def __init__(self, convention: Convention, setting: str,
                 on_alarm: Callable[[str], None]) -> None:
        self.convention = convention
        self.setting = setting
        """the spec key to change, e.g. vlm.openai.coordinates"""
        self._on_alarm = on_alarm
        self._lock = threading.Lock()
        self.boxes = 0
        self.large = 0
        self.large_within_1000 = 0
        self.outside = 0
        self.reach = (0.0, 0.0)
        """the farthest right and bottom edges seen, as shares of the sent width and height"""
        self.fired = False

    def observe(self, values: Sequence[float], sent_size: tuple[int, int]) -> None:
        width, height = sent_size
        if self.convention == "xyxy_pixel":
            limits = (width, height, width, height)
        else:
            limits = (NORMALIZED_RANGE,) * 4
        outside = any(v < -limits[i] * (SLACK - 1) or v > limits[i] * SLACK
                      for i, v in enumerate(values[:4]))
        with self._lock:
            if self.fired:
                return
            self.boxes += 1
            self.outside += outside
            if self.convention == "xyxy_pixel":
                self.reach = (max(self.reach[0], max(values[0], values[2]) / width),
                              max(self.reach[1], max(values[1], values[3]) / height))
            if self.convention == "xyxy_pixel" and max(width, height) >= LARGE_SIDE:
                self.large += 1
                self.large_within_1000 += max(values[:4]) <= NORMALIZED_RANGE
            message = self._verdict()
            if message is not None:
                self.fired = True
        if message is not None:
            self._on_alarm(message)

    def _verdict(self) -> str | None:
        advice = (f"check with `auto_label probe -e SPEC` and set {self.setting} (now "
                  f"{self.convention})")
        if self.large >= MIN_BOXES and self.large_within_1000 >= INSIDE_SHARE * self.large:
            return (f"boxes look like another coordinate convention: {self.large_within_1000} "
                    f"of {self.large} boxes on images sent at {LARGE_SIDE} px or more stay "
                    f"within 0-1000, as 0-1000 models (xyxy_1000, yxyx_1000) answer; {advice}")
        if self.boxes >= MIN_BOXES and self.outside >= OUTSIDE_SHARE * self.boxes:
            return (f"boxes look like another coordinate convention or frame: {self.outside} of "
                    f"{self.boxes} boxes fall outside the image as sent; {advice}")
        if self.convention == "xyxy_pixel" and self.boxes >= MIN_BOXES and \
                max(self.reach) < REACH:
            return (f"boxes look like pixels of a smaller frame: in {self.boxes} boxes none "
                    f"reaches past {self.reach[0]:.0%} of the width or {self.reach[1]:.0%} of "
                    "the height of the images as sent, as a model answering in its processor's "
                    f"resize does (vlm.<backend>.smart_resize); {advice}")
        return None
