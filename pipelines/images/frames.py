"""The sizes an image goes through, as pure functions: stored -> upright (EXIF orientation) ->
sent (downscaled by `max_image_side`, then to the processor's `smart_resize` frame).

Boxes are stored in pixels of the upright image (the frame the seed event records); a model writes
them in its convention relative to the image as sent, and `auto_label.boxes` converts between the
two exactly. Sizes are (width, height).
"""

from __future__ import annotations

import math

from auto_label.backends.base import ModelFrame, SmartResize

TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})
"""EXIF orientations that swap width and height (the four involving a 90-degree turn)."""


def upright_size(stored: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The (width, height) a viewer shows for a stored image with this EXIF orientation tag."""
    width, height = stored
    return (height, width) if orientation in TRANSPOSED_ORIENTATIONS else (width, height)


def scaled_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """`size` downscaled so that its longest side is `max_side` (0, or a smaller image: as is);
    each side rounded, at least 1."""
    width, height = size
    longest = max(width, height)
    if max_side <= 0 or longest <= max_side:
        return size
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def smart_resize(height: int, width: int, rule: SmartResize) -> tuple[int, int]:
    """(height, width) of the frame a Qwen2-VL-style processor resizes an image to.

    Our own implementation of the documented algorithm (transformers,
    src/transformers/models/qwen2_vl/image_processing_qwen2_vl.py, `smart_resize`): each side
    rounded to the nearest multiple of `factor` (Python's round, halves to even); if the area is
    above `max_pixels`, both sides are scaled down by sqrt(area / max_pixels) and floored to the
    factor; if below `min_pixels`, scaled up by sqrt(min_pixels / area) and ceiled. A side never
    goes below one factor. The result is a fixed point: sending an image at that size makes the
    processor leave it alone.
    """
    factor = rule.factor
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > rule.max_pixels:
        beta = math.sqrt((height * width) / rule.max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < rule.min_pixels:
        beta = math.sqrt(rule.min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def sent_size(upright: tuple[int, int], frame: ModelFrame) -> tuple[int, int]:
    """(width, height) of the image as it is sent: downscaled by `max_image_side`, then brought to
    the processor's frame when the model has one."""
    width, height = scaled_size(upright, frame.max_image_side)
    if frame.smart_resize is not None:
        height, width = smart_resize(height, width, frame.smart_resize)
    return width, height
