"""What a real server does to an image before its model sees it, as the VLM SIMULATOR plays it.

For tests and demos only. Two steps, each a documented behaviour of real servers and models:

1. EXIF orientation. The received image is transposed by its Orientation tag (0x0112, values
   1-8), so the model sees the picture upright, as a viewer shows it. Sources:

   - vLLM normalizes image bytes from URL/base64/file inputs before they reach the model: "JPEG
     EXIF orientation is applied to pixels" (vllm-project/vllm pull request #47566,
     https://github.com/vllm-project/vllm/pull/47566, which extends that existing normalization
     to direct PIL inputs).
   - Hugging Face transformers: `load_image` in src/transformers/image_utils.py
     (huggingface/transformers) calls `PIL.ImageOps.exif_transpose(image)` on every image it
     loads (URL, path, base64) before the image processor sees it.
   - Gemini (generateContent): Google's image-understanding pages
     (https://ai.google.dev/gemini-api/docs/image-understanding, the Vertex AI "Image
     understanding" page) say nothing about EXIF orientation, and no issue or public code
     found says what Google does. UNSOURCED: the simulator applies the tag there too, as vLLM.

   `SimConfig.exif = "ignore"` plays a server that does not (e.g. SGLang, sgl-project/sglang
   issue #33464; llama.cpp's mtmd, ggml-org/llama.cpp issue #20870; older vLLM releases, whose
   ImageMediaIO.load_bytes in vllm/multimodal/media/image.py opens the bytes without it; and
   Qwen's own qwen-vl-utils, whose fetch_image in qwen-vl-utils/src/qwen_vl_utils/
   vision_process.py decodes base64 without it): the model sees the stored pixels.

2. The model's frame. Qwen2.5-VL writes absolute pixel boxes in the frame of the image AS ITS
   PROCESSOR RESIZED IT (`smart_resize`), not of the image as sent. Sources: a Qwen maintainer
   (ShuaiBai623) in QwenLM/Qwen3-VL issue #940 (https://github.com/QwenLM/Qwen3-VL/issues/940):
   Qwen2.5-VL's boxes correspond to the size of the image finally input to the model; and the
   Qwen3-VL grounding cookbook (QwenLM/Qwen3-VL cookbooks/2d_grounding.ipynb): "Qwen3-VL's
   default coordinate system has been changed from the absolute coordinates used in Qwen2.5-VL
   to relative coordinates ranging from 0 to 1000. (You don't need to calculate the
   resized_w)". Relative (0-1000) boxes do not depend on the frame. See `smart_resize` below.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image

EXIF_MODES: tuple[str, ...] = ("apply", "ignore")
MODEL_FRAMES: tuple[str, ...] = ("sent", "qwen2.5_smart_resize")
ORIENTATION_TAG = 0x0112  # EXIF "Orientation" (TIFF tag 274)

Size = tuple[int, int]

# The transposition that makes an image upright for each Orientation value, as
# `PIL.ImageOps.exif_transpose` does it (python-pillow/Pillow, src/PIL/ImageOps.py), which is
# what vLLM and transformers call: 1 is upright; 2 mirrored; 3 upside down; 4 mirrored upside
# down; 5 mirrored and turned; 6 stored turned 90° counter-clockwise (needs 90° clockwise,
# PIL's ROTATE_270); 7 mirrored the other way; 8 stored turned 90° clockwise (PIL's ROTATE_90).
# Any other value is left alone, as Pillow leaves it.
_UPRIGHT: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class View:
    """How the simulated server prepares a received image for its model (see SimConfig)."""

    exif: str = "apply"
    model_frame: str = "sent"
    min_pixels: int = 3136
    max_pixels: int = 12845056
    resize_factor: int = 28

    def __post_init__(self) -> None:
        if self.exif not in EXIF_MODES:
            raise ValueError(f"unknown exif mode {self.exif!r}; expected one of {EXIF_MODES}")
        if self.model_frame not in MODEL_FRAMES:
            raise ValueError(f"unknown model frame {self.model_frame!r}; "
                             f"expected one of {MODEL_FRAMES}")
        if self.resize_factor < 1:
            raise ValueError("resize_factor must be at least 1")
        if not 1 <= self.min_pixels <= self.max_pixels:
            raise ValueError("expected 1 <= min_pixels <= max_pixels")

    def key(self) -> str:
        """What an analysis depends on besides the bytes (part of the analysis cache key)."""
        if self.model_frame == "sent":
            return f"{self.exif}|sent"
        return (f"{self.exif}|{self.model_frame}|{self.min_pixels}|{self.max_pixels}"
                f"|{self.resize_factor}")


@dataclass(frozen=True)
class Seen:
    """The image as the simulated model sees it, and what was received."""

    image: Image.Image
    received_size: Size  # decoded, before orientation (width, height)
    orientation: int | None  # the EXIF Orientation value found, None without one


def orientation_of(image: Image.Image) -> int | None:
    """The EXIF Orientation value of a decoded image (JPEG APP1, PNG eXIf...), or None."""
    try:
        value = image.getexif().get(ORIENTATION_TAG)
    except Exception:  # a broken EXIF block: Pillow raises several kinds; treat as no tag
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def upright(image: Image.Image, orientation: int | None) -> Image.Image:
    """`image` transposed as its Orientation value says (unchanged for 1, None or junk)."""
    method = _UPRIGHT.get(orientation) if orientation is not None else None
    return image if method is None else image.transpose(method)


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 14 * 14 * 4 * 1280) -> Size:
    """(height, width) of the image Qwen2-VL / Qwen2.5-VL's processor feeds the model.

    The simulator's own implementation of the documented algorithm, `smart_resize` in
    huggingface/transformers src/transformers/models/qwen2_vl/image_processing_qwen2_vl.py (the
    Qwen2VLImageProcessor that Qwen2.5-VL's preprocessor_config.json names, and that vLLM runs)
    and in QwenLM's qwen-vl-utils (qwen-vl-utils/src/qwen_vl_utils/vision_process.py): each side
    is rounded to the nearest multiple of `factor` (patch_size 14 x merge_size 2 = 28; Python's
    round, so halves go to the even multiple); if the area then exceeds `max_pixels`, both sides
    are scaled by beta = sqrt(h*w / max_pixels) and floored to multiples of `factor`; if it falls
    below `min_pixels`, scaled by beta = sqrt(min_pixels / (h*w)) and ceiled. Like transformers,
    it refuses a side shorter than `factor` and an aspect ratio above 200 (ValueError).

    The defaults are the function's own; Qwen2.5-VL's preprocessor_config.json sets
    min_pixels 3136 and max_pixels 12845056 (https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct,
    preprocessor_config.json), and servers are often started with less, e.g. 1280*28*28 as the
    Qwen2-VL / Qwen2.5-VL READMEs suggest (QwenLM/Qwen2.5-VL README.md).
    """
    if height < factor or width < factor:
        raise ValueError(f"height {height} or width {width} is smaller than factor {factor}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio of {width}x{height} is above 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def model_size(width: int, height: int, view: View) -> Size:
    """(width, height) of the frame the model sees an upright width x height image in."""
    if view.model_frame == "sent":
        return width, height
    h_bar, w_bar = smart_resize(height, width, view.resize_factor, view.min_pixels,
                                view.max_pixels)
    return w_bar, h_bar


def decode(data: bytes, view: View) -> Seen:
    """Decode received bytes and prepare them as `view` says; ValueError if they are no image.

    Qwen2VLImageProcessor resizes with BICUBIC ("resample": 3 in the preprocessor config); an
    image already at a fixed point of smart_resize is left exactly as it is.
    """
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            orientation = orientation_of(opened)
            image = opened.convert("RGB")
    except Exception as exc:  # Pillow raises several kinds for bad data
        raise ValueError(f"cannot decode image: {exc}") from exc
    received = image.size
    if view.exif == "apply":
        image = upright(image, orientation)
    size = model_size(image.width, image.height, view)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    return Seen(image, received, orientation)
