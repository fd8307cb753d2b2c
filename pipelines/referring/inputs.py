"""Reading the image_referring_expression input: images + KITTI labels, or earlier annotations.

From `image_dir` + `kitti_label_dir`: each image (.jpg/.jpeg/.png) with a `<stem>.txt` label file.
Images without labels and labels without images are reported (how many, and the first few names)
and skipped, as are malformed label rows (file and line).

From `input_annotations_jsonl` (unified records, ours or the reference's): the image and its boxes
(`kitti_bboxes`, else the regions' boxes), plus the step outputs the record already holds (regions,
caption, expressions), imported so that later steps can run on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auto_label.boxes import as_box, best_match, is_ordered
from auto_label.errors import InputError
from auto_label.pipelines.contract import ImageInput, InputNote, Inputs
from auto_label.pipelines.inputs import (
    check_unique,
    image_id_of,
    iter_json_lines,
    resolve_image_path,
    shown_path,
)
from auto_label.pipelines.referring.config import ReferringData
from auto_label.pipelines.referring.kitti import DONT_CARE, read_kitti
from auto_label.pipelines.referring.outputs import (
    CaptionOutput,
    ExpressionGroup,
    GroupsOutput,
    Instance,
    Region,
    RegionsOutput,
)

SNAP_IOU = 0.5
"""An imported instance belongs to the seeded box it overlaps most, from this IoU on."""

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".avif", ".tif", ".tiff",
                  ".bmp", ".gif"}
"""What image_dir is searched for (the file's content decides how it is read)."""
SHOW = 5


def _names(stems: list[str]) -> str:
    shown = ", ".join(stems[:SHOW])
    return shown + (f" and {len(stems) - SHOW} more" if len(stems) > SHOW else "")


def _directory(path: str, what: str) -> Path:
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise InputError(f"{shown_path(directory)}: {what} is not a directory")
    return directory


def read_referring_inputs(data: ReferringData) -> Inputs:
    """The images with their KITTI boxes (or the records of `input_annotations_jsonl`), in name
    order. Raises InputError when a folder or file is unusable as a whole; skipped images and rows
    are in the warnings."""
    if data.input_annotations_jsonl:
        return _from_annotations(Path(data.input_annotations_jsonl).expanduser(), data.image_dir)
    image_dir = _directory(data.image_dir, "image_dir")
    label_dir = _directory(data.kitti_label_dir, "kitti_label_dir")
    images: dict[str, Path] = {}
    warnings: list[str] = []
    for path in sorted(image_dir.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            if path.stem in images:
                warnings.append(f"{path}: another image has the stem {path.stem!r} "
                                f"({images[path.stem].name}); skipped")
                continue
            images[path.stem] = path
    labels = {p.stem: p for p in sorted(label_dir.glob("*.txt")) if p.is_file()}
    unlabelled = sorted(set(images) - set(labels))
    orphans = sorted(set(labels) - set(images))
    if unlabelled:
        warnings.append(f"{len(unlabelled)} image(s) in {image_dir} have no label file in "
                        f"{label_dir}, skipped: {_names(unlabelled)}")
    if orphans:
        warnings.append(f"{len(orphans)} label file(s) in {label_dir} have no image in "
                        f"{image_dir}, skipped: {_names(orphans)}")
    items = []
    dont_care = files_with = 0
    for stem in sorted(set(images) & set(labels)):
        try:
            rows = read_kitti(labels[stem])
        except (OSError, UnicodeDecodeError) as exc:
            warnings.append(f"{labels[stem]}: cannot read the label file ({exc}); skipped")
            continue
        warnings.extend(rows.problems)
        dont_care += rows.dont_care
        files_with += rows.dont_care > 0
        items.append(ImageInput(
            image_id=stem, path=images[stem], image_path=str(images[stem]), caption=None,
            source=str(labels[stem]),
            extra={"kitti": rows.boxes, "kitti_lines": rows.lines},
        ))
    if dont_care:
        warnings.append(InputNote(f"{dont_care} {DONT_CARE} row(s) (unlabelled areas, not "
                                  f"objects) in {files_with} label file(s) in {label_dir}, "
                                  "skipped"))
    if not items:
        raise InputError(f"{image_dir}: no image has a matching label file in {label_dir}")
    return Inputs(items, warnings)


def _from_annotations(path: Path, image_dir: str) -> Inputs:
    items = []
    warnings: list[str] = []
    for where, record in iter_json_lines(path, "input_annotations_jsonl"):
        image_path = record.get("image_path")
        if not isinstance(image_path, str) or not image_path.strip():
            raise InputError(f"{where}: image_path is missing or not a string")
        boxes, problems = _boxes_of(record, where)
        warnings.extend(problems)
        resolved = resolve_image_path(image_path, image_dir)
        items.append(ImageInput(
            image_id=image_id_of(record, image_path, where), path=resolved,
            image_path=str(resolved), caption=None, source=where,
            extra={"kitti": boxes, "kitti_lines": [where] * len(boxes),
                   "imports": _imports(record, boxes)},
        ))
    if not items:
        raise InputError(f"{path}: no records (the file is empty)")
    check_unique(items)
    return Inputs(items, warnings)


def _box(value: Any) -> list[float] | None:
    """The first four values as an ordered box (a kitti_bboxes row carries its class fifth)."""
    box = as_box(value[:4]) if isinstance(value, list) else None
    return list(box) if box is not None and is_ordered(box) else None


def _boxes_of(record: dict[str, Any], where: str) -> tuple[list[list[float | str]], list[str]]:
    """[x1, y1, x2, y2, class] from kitti_bboxes, else from the regions."""
    boxes: list[list[float | str]] = []
    problems = []
    source = record.get("kitti_bboxes")
    if isinstance(source, list) and source:
        entries = [(b, str(b[4]) if isinstance(b, list) and len(b) > 4 else "object")
                   for b in source]
    else:
        raw = record.get("regions")
        regions = raw if isinstance(raw, list) else []
        entries = [(r.get("bbox"), str(r.get("type") or "object"))
                   for r in regions if isinstance(r, dict)]
    for index, (value, cls) in enumerate(entries):
        if cls == DONT_CARE:
            continue
        box = _box(value)
        if box is None:
            problems.append(f"{where}: box {index} is not [x1, y1, x2, y2] with x1 < x2, "
                            "y1 < y2; skipped")
            continue
        boxes.append([*box, cls])
    return boxes, problems


def _region_index(bbox: Any, boxes: list[list[float | str]]) -> int | None:
    box = _box(bbox)
    if box is None:
        return None
    match = best_match(box, [[float(v) for v in b[:4]] for b in boxes], SNAP_IOU)
    return match[0] if match is not None else None


def _imports(record: dict[str, Any], boxes: list[list[float | str]]) -> dict[str, Any]:
    """The step outputs the record holds, stored as our step outputs (current versions)."""
    steps = record.get("pipeline_steps") or []
    imports: dict[str, Any] = {}
    regions = [r for r in record.get("regions") or []
               if isinstance(r, dict) and r.get("type") != DONT_CARE]  # as the boxes
    if regions and ("step0_region_expr" in steps or any(r.get("description") for r in regions)):
        imports["0"] = RegionsOutput(regions=[
            Region(bbox=[round(float(v)) for v in b[:4]], type=str(r.get("type") or b[4]),
                   color=str(r.get("color") or "unknown"),
                   description=str(r.get("description") or r.get("type") or b[4]))
            for r, b in zip(regions, boxes, strict=False)], undescribed=0).to_stored()
    if isinstance(record.get("caption"), str) and record["caption"].strip():
        imports["1"] = CaptionOutput(caption=record["caption"].strip()).to_stored()
    expressions = []
    for expression in record.get("expressions") or []:
        if not isinstance(expression, dict) or not isinstance(expression.get("text"), str):
            continue
        instances: list[Instance] = []
        for instance in expression.get("instances") or []:
            index = _region_index(instance.get("bbox") if isinstance(instance, dict) else None,
                                  boxes)
            if index is not None and all(i.region != index for i in instances):
                instances.append(Instance(
                    region=index, bbox=[round(float(v)) for v in boxes[index][:4]],
                    score=float(instance.get("bbox_score") or 1.0)))
        if instances:
            expressions.append(ExpressionGroup(text=expression["text"], instances=instances))
    if expressions and "0" in imports and "1" in imports:
        imports["2"] = GroupsOutput(expressions=expressions, dropped_boxes=0,
                                    dropped_expressions=[]).to_stored()
    return imports
