"""KITTI label files: `<stem>.txt`, whitespace-separated rows, class in column 0, box in 4-7.

Reading is forgiving per row and strict in what it reports: a malformed row is skipped with a
one-line problem naming the file and line; the other rows of the file are kept. `DontCare` rows
(unlabelled areas, in almost every KITTI frame) are not objects: skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auto_label.boxes import as_box, is_ordered

DONT_CARE = "DontCare"
"""KITTI's class for unlabelled areas (regions with objects nobody labelled): not objects."""


@dataclass(frozen=True)
class LabelRows:
    boxes: list[list[float | str]]
    """[x1, y1, x2, y2, class] per valid row"""
    lines: list[str]
    """`file:line` of each box, for later messages"""
    problems: list[str]
    dont_care: int = 0
    """DontCare rows skipped"""


def read_kitti(path: Path) -> LabelRows:
    """The boxes of one label file. Raises OSError / UnicodeDecodeError if it cannot be read."""
    boxes: list[list[float | str]] = []
    lines: list[str] = []
    problems: list[str] = []
    dont_care = 0
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        columns = line.split()
        if not columns:
            continue
        if columns[0] == DONT_CARE:
            dont_care += 1
            continue
        where = f"{path}:{number}"
        if len(columns) < 8:
            problems.append(f"{where}: expected at least 8 columns (class and a box in 4-7), "
                            f"found {len(columns)}; row skipped")
            continue
        try:
            values = [float(v) for v in columns[4:8]]
        except ValueError:
            problems.append(f"{where}: box columns 4-7 are not numbers; row skipped")
            continue
        box = as_box(values)
        if box is None:
            problems.append(f"{where}: box columns 4-7 are not finite numbers; row skipped")
            continue
        if not is_ordered(box):
            problems.append(f"{where}: inverted or empty box {values}; row skipped")
            continue
        boxes.append([*box, columns[0]])
        lines.append(where)
    return LabelRows(boxes, lines, problems, dont_care)


def clip_boxes(boxes: list[list[float | str]], lines: list[str], width: int,
               height: int) -> tuple[list[list[int | str]], list[str]]:
    """Boxes rounded to whole pixels and clipped to the image; those left empty are reported."""
    kept: list[list[int | str]] = []
    problems: list[str] = []
    for box, where in zip(boxes, lines, strict=True):
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        cx1, cy1 = max(0, min(width, round(x1))), max(0, min(height, round(y1)))
        cx2, cy2 = max(0, min(width, round(x2))), max(0, min(height, round(y2)))
        if cx2 <= cx1 or cy2 <= cy1:
            problems.append(f"{where}: box {box[:4]} lies outside the {width}x{height} image; "
                            "row skipped")
            continue
        kept.append([cx1, cy1, cx2, cy2, str(box[4])])
    return kept, problems
