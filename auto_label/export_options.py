"""The options of `auto_label export` in a person's terms -> what the exports take.

    from auto_label.api import export
    from auto_label.export_options import export_options
    export("/tmp/out", output_format="sft",
           options=export_options(min_score=0.5, for_model="Qwen/Qwen2.5-VL-7B-Instruct"))
"""

from __future__ import annotations

from typing import cast, get_args

from auto_label.backends.base import SmartResize
from auto_label.backends.profiles import profile_for
from auto_label.boxes import Convention
from auto_label.errors import ExportError
from auto_label.exports import ExportOptions, RecordFilter
from auto_label.pipelines.images.frames import smart_resize


def export_options(*, min_score: float | None = None, verified_only: bool = False,
                   step: str | None = None, coordinates: str | None = None,
                   for_model: str | None = None, max_pixels: int | None = None,
                   output_format: str | None = None) -> ExportOptions:
    """Export options from the CLI's words.

    `coordinates` is the box convention of the model an `sft` export trains; `for_model` names
    that model instead, and its profile (`backends.profiles`) gives the convention and, for
    Qwen2.5-VL, the frame its processor resizes images to (pixel boxes are written in that
    frame; `max_pixels` overrides the profile's, as a training config may). The sft format
    needs one of the two: a wrong convention would teach wrong boxes. Raises ExportError (one
    line) for an unknown convention or model, or options that do not fit the format.
    """
    if min_score is not None and not 0.0 <= min_score <= 1.0:
        raise ExportError(f"--min-score {min_score:g}: scores lie between 0 and 1")
    convention: str | None = coordinates
    rule: SmartResize | None = None
    if for_model is not None:
        profile = profile_for(for_model)
        if profile is None:
            raise ExportError(f"--for-model {for_model}: no profile knows this model; give its "
                              f"box convention with --coordinates ({', '.join(_conventions())})")
        convention = convention or profile.coordinates
        rule = profile.smart_resize
    if max_pixels is not None:
        if rule is None:
            raise ExportError("--max-pixels applies to a model whose processor resizes images "
                              "(--for-model qwen2.5-vl...)")
        rule = rule.model_copy(update={"max_pixels": max_pixels})
    if output_format == "sft" and convention is None:
        raise ExportError("the sft format writes boxes in the convention of the model it trains: "
                          "give --for-model NAME or --coordinates "
                          f"({', '.join(_conventions())})")
    if output_format not in (None, "sft") and (convention is not None or max_pixels is not None):
        raise ExportError(f"--coordinates, --for-model and --max-pixels are for --format sft, "
                          f"not {output_format}")
    if convention is not None and convention not in _conventions():
        raise ExportError(f"--coordinates {convention}: the conventions are "
                          f"{', '.join(_conventions())}")
    sent_size = None
    if rule is not None:
        frame = rule

        def sent_size(width: int, height: int) -> tuple[int, int]:
            h, w = smart_resize(height, width, frame)
            return w, h

    return ExportOptions(RecordFilter(min_score, verified_only),
                         cast(Convention, convention or "xyxy_1000"), sent_size, step)


def _conventions() -> tuple[str, ...]:
    return get_args(Convention)
