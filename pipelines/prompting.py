"""What the prompts of both pipelines share: how a box is written in each coordinate convention.

Each pipeline's `prompts` module holds its templates, each with a `PromptVersion` (task, version,
a rendering with fixed arguments). The version is part of the step fingerprint: editing a
template's wording means bumping its version, so images completed with the old wording are asked
again and the ledger keeps both answers. The tests pin every version's rendering.
"""

from __future__ import annotations

from collections.abc import Callable

from auto_label.boxes import CONVENTIONS, Convention

_BOX_FORMATS: dict[str, str] = {
    "xyxy_pixel": (
        "[x1, y1, x2, y2] in pixels of this image ({width}x{height}), where (x1, y1) is the "
        "top-left corner and (x2, y2) the bottom-right corner"
    ),
    "xyxy_1000": (
        "[x1, y1, x2, y2] normalized to 0-1000 (0 is the left or top edge of the image, 1000 the "
        "right or bottom edge), where (x1, y1) is the top-left corner"
    ),
    "yxyx_1000": (
        "[y_min, x_min, y_max, x_max] normalized to 0-1000 (0 is the top or left edge of the "
        "image, 1000 the bottom or right edge)"
    ),
}


def box_format(convention: Convention, width: int, height: int) -> str:
    """How a box is written in `convention`, for an image of the size the model is sent."""
    return _BOX_FORMATS[convention].format(width=width, height=height)


def box_template(convention: Convention) -> str:
    """`box_format` with the size left as the template placeholders `${width}` and `${height}`
    (the 0-1000 conventions name no size)."""
    return _BOX_FORMATS[convention].format(width="${width}", height="${height}")


def in_every_convention(render: Callable[[Convention], str]) -> str:
    """A template's example rendered once per convention (so that a pin covers every wording)."""
    return "\n\n".join(f"[{c}]\n{render(c)}" for c in CONVENTIONS)
