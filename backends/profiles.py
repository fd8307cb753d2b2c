"""Model profiles: from a model's name, the box convention and image frame of its family.

An explicit `coordinates` / `smart_resize` in the spec always wins; a model no profile matches
gets its backend's default convention and one warning line at the start of a run (run
`auto_label probe -e SPEC` to measure what the endpoint really answers). Each entry cites where
its convention is documented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from auto_label.backends.base import BackendConfig, ModelFrame, SmartResize
from auto_label.boxes import Convention


@dataclass(frozen=True)
class Profile:
    family: str
    pattern: str
    """a regular expression searched in the model name, case-insensitively"""
    coordinates: Convention
    smart_resize: SmartResize | None
    source: str


PROFILES: tuple[Profile, ...] = (
    # "Bounding boxes in the [y_min, x_min, y_max, x_max] format ... normalized to 0-1000 for
    # every image": ai.google.dev/gemini-api/docs/image-understanding (object detection).
    Profile("Gemini", r"gemini", "yxyx_1000", None,
            "https://ai.google.dev/gemini-api/docs/image-understanding"),
    # "Qwen3-VL's default coordinate system has been changed from the absolute coordinates used in
    # Qwen2.5-VL to relative coordinates ranging from 0 to 1000": QwenLM/Qwen3-VL
    # cookbooks/2d_grounding.ipynb, quoted in github.com/QwenLM/Qwen3-VL/issues/1741.
    Profile("Qwen3-VL", r"qwen3[-_.]?vl", "xyxy_1000", None,
            "https://github.com/QwenLM/Qwen3-VL/blob/main/cookbooks/2d_grounding.ipynb"),
    # Absolute pixels of the image as its processor resized it (smart_resize, factor 28 =
    # patch_size 14 x merge_size 2, min_pixels 3136, max_pixels 12845056): Qwen2.5-VL's
    # preprocessor_config.json; "qwen2.5-vl uses absolute coordinates": modelscope/ms-swift
    # docs/source/Customization/自定义数据集.md (github.com/modelscope/ms-swift/pull/6178).
    Profile("Qwen2.5-VL", r"qwen2[._]?5[-_.]?vl", "xyxy_pixel", SmartResize(),
            "https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/preprocessor_config.json"),
    # "qwen2-vl and internvl2.5 need bbox coordinates normalized to thousandths": ms-swift, same
    # page; Qwen2-VL's <|box_start|>(x1,y1),(x2,y2)<|box_end|> values lie in [0, 1000).
    Profile("Qwen2-VL", r"qwen2[-_.]?vl", "xyxy_1000", None,
            "https://github.com/modelscope/ms-swift/pull/6178"),
    Profile("InternVL", r"internvl", "xyxy_1000", None,
            "https://github.com/modelscope/ms-swift/pull/6178"),
)


def profile_for(model: str) -> Profile | None:
    """The first profile whose pattern the model name contains (case-insensitive), else None."""
    for profile in PROFILES:
        if re.search(profile.pattern, model, re.IGNORECASE):
            return profile
    return None


def model_frame(config: BackendConfig, model: str) -> ModelFrame:
    """The frame of `model` under `config`: explicit settings, else its profile's, else the
    backend's default convention (and no smart resize)."""
    profile = profile_for(model)
    if config.coordinates is not None:
        coordinates: Convention = config.coordinates
        source = "spec"
    elif profile is not None:
        coordinates, source = profile.coordinates, "profile"
    else:
        coordinates, source = config.DEFAULT_COORDINATES, "default"
    smart: SmartResize | None
    if config.smart_resize is False:
        smart = None
    elif config.smart_resize is not None:
        smart = config.smart_resize
    else:
        smart = profile.smart_resize if profile is not None else None
    return ModelFrame(coordinates=coordinates, max_image_side=config.max_image_side,
                      smart_resize=smart, profile=profile.family if profile else None,
                      source=source, defaulted=source == "default")
