"""A chat JSONL for fine-tuning a VLM to ground: one conversation per expression with boxes.

Each line has the shape LLaMA-Factory's multimodal datasets (`data/mllm_demo.json`) and
ms-swift read: `{"messages": [{"role": "user", "content": "<image>Locate ..."}, {"role":
"assistant", "content": "[...]"}], "images": [path]}`, one `<image>` tag per image. The answer is
a JSON list of boxes in the TARGET model's convention, written the way that model family answers:
`{"bbox_2d": [x1, y1, x2, y2], "label": ...}` for the xyxy conventions (Qwen2.5-VL / Qwen3-VL
grounding format, QwenLM cookbooks), `{"box_2d": [y_min, x_min, y_max, x_max], "label": ...}` for
`yxyx_1000` (Gemini's documented `box_2d`).

Conventions (`auto_label.boxes`): `xyxy_pixel` (pixels of the image, or of the processor's frame
when `sent_size` gives one, as Qwen2.5-VL answers), `xyxy_1000`, `yxyx_1000`. Values are
converted with `boxes.from_pixels` (exact arithmetic, rounded half up once), so converting back
gives the stored box within one unit of the convention's grid. Expressions without a box are
left out (an empty answer would teach "nothing there" from a failed step as well as from a true
negative). Pure half: `sft_lines`. I/O half: `SftJsonl`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from auto_label.boxes import Convention, from_pixels
from auto_label.exports.atomic import AtomicTextFile
from auto_label.exports.base import Written
from auto_label.exports.filters import RecordFilter
from auto_label.pipelines.records import ImageRecord

SFT_FILE = "sft.jsonl"

SentSize = Callable[[int, int], tuple[int, int]]
"""(width, height) of an image -> the (width, height) the target model sees it at (its
processor's frame); pixel boxes are written in that frame"""

_PHRASING: dict[str, str] = {
    "xyxy_pixel": "[x1, y1, x2, y2] in pixels",
    "xyxy_1000": "[x1, y1, x2, y2] normalized to 0-1000",
    "yxyx_1000": "[y_min, x_min, y_max, x_max] normalized to 0-1000",
}


def sft_lines(record: dict[str, Any], convention: Convention,
              sent_size: SentSize | None = None) -> Iterator[dict[str, Any]]:
    """The conversations of one unified record, one per expression with at least one box."""
    size = (record["width"], record["height"])
    frame = sent_size(*size) if sent_size is not None else size
    key = "box_2d" if convention == "yxyx_1000" else "bbox_2d"
    for expression in record.get("expressions", []):
        instances = expression.get("instances", [])
        if not instances:
            continue
        text = expression["text"]
        answer = [{key: from_pixels(i["bbox"], convention, frame, size), "label": text}
                  for i in instances]
        question = (f"<image>Locate every instance of \"{text}\" in the image. Answer with a "
                    f"JSON list of {{\"{key}\": {_PHRASING[convention]}, \"label\": ...}}.")
        yield {"messages": [{"role": "user", "content": question},
                            {"role": "assistant", "content": json.dumps(answer)}],
               "images": [record["image_path"]]}


class SftJsonl:
    """A sink writing `results_dir/sft.jsonl`."""

    def __init__(self, results_dir: Path, record_filter: RecordFilter | None = None,
                 convention: Convention = "xyxy_1000", sent_size: SentSize | None = None) -> None:
        self.path = results_dir / SFT_FILE
        self.filter = record_filter or RecordFilter()
        self.convention = convention
        self.sent_size = sent_size
        self._file = AtomicTextFile(self.path, durable=True)
        self._records = 0

    def add(self, record: ImageRecord) -> None:
        if record.record is None:
            return
        wrote = False
        for line in sft_lines(self.filter.apply(record.record), self.convention,
                              self.sent_size):
            self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
            wrote = True
        self._records += wrote

    def close(self) -> Written:
        self._file.commit()
        return Written([self.path], self._records)

    def discard(self) -> None:
        self._file.discard()
