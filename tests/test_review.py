"""The review page in a real browser: headless Chromium (Debian's `chromium`; `.ci/run` installs
it) loads the page written from real runs against the simulator; screenshots are read with
Pillow, `--dump-dom` shows what the script rendered."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import photos
import pytest
from PIL import Image, ImageChops, ImageStat
from support import SIM_KEY, grounding_spec, read_jsonl
from typer.testing import CliRunner

from auto_label.api import generate, records
from auto_label.cli.main import app
from auto_label.probing import probe
from auto_label.review import PALETTE, colour, render_page, write_review
from auto_label.sim import SimConfig, Simulator
from auto_label.sim.datasets import append_grounding_images, write_grounding_dataset

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--force-device-scale-factor=1", "--hide-scrollbars"]
FAILING_ONCE = ("image_grounding.workflow.retries.max_attempts=1",
                "image_grounding.workflow.retries.parse_retries=0",
                "image_grounding.workflow.max_workers=1")


def browser(url: str, *args: str) -> str:
    """Run headless Chromium on `url` with a fresh profile; its stdout."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `apt-get install -y chromium` (.ci/run does)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url],
                              capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dom(page: Path, fragment: str = "") -> str:
    return browser(page.resolve().as_uri() + fragment, "--dump-dom")


def screenshot(page: Path, fragment: str, size: tuple[int, int], shot: Path) -> Image.Image:
    browser(page.resolve().as_uri() + fragment, f"--screenshot={shot}",
            f"--window-size={size[0]},{size[1]}")
    return Image.open(shot).convert("RGB")


def cards(text: str) -> list[str]:
    """The image ids of the cards a dumped page shows."""
    return [html.unescape(i) for i in re.findall(r'<article class="card[^"]*" data-id="([^"]*)"',
                                                 text)]


def matching(text: str) -> int:
    found = re.search(r'id="count"[^>]*data-matching="(\d+)"', text)
    assert found, text[:2000]
    return int(found.group(1))


def rgb(hex_colour: str) -> tuple[int, int, int]:
    value = int(hex_colour.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 255, value & 255


def near(pixel: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 6) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], expected, strict=True))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A grounding results_dir: two images whose grounding answered "[]" (nothing found), five
    more of which one failed (junk answer, no retry), the rest with boxes; and its page."""
    root = tmp_path_factory.mktemp("review")
    data = write_grounding_dataset(root / "data", 2, seed=31)
    out = root / "out"
    with Simulator(SimConfig(seed=3, api_key=SIM_KEY, answer_style="explicit_empty")) as sim:
        generate(grounding_spec(out, data.root, sim.openai_base_url))
    append_grounding_images(data.root, 5, seed=32)
    with Simulator(SimConfig(seed=3, api_key=SIM_KEY)) as sim:
        sim.script(["malformed"], task="grounding.ground")
        generate(grounding_spec(out, data.root, sim.openai_base_url, *FAILING_ONCE))
    result = write_review(out)
    by_id = {r["image_id"]: r for r in records(out)}
    return {"out": out, "data": data.root, "result": result, "records": by_id}


def edge_points(box: list[int]) -> list[tuple[int, int]]:
    """Points on the left, right and bottom edges of a box (the top has the number label)."""
    x1, y1, x2, y2 = box
    return [(x1, (y1 + y2) // 2), (x2, (y1 + y2) // 2), ((x1 + x2) // 2, y2)]


def clear_of(point: tuple[int, int], boxes: list[list[int]], margin: int = 4) -> bool:
    """No edge of `boxes` passes within `margin` pixels of `point`."""
    x, y = point
    for x1, y1, x2, y2 in boxes:
        across = y1 - margin <= y <= y2 + margin
        along = x1 - margin <= x <= x2 + margin
        if (across and min(abs(x - x1), abs(x - x2)) <= margin) or \
                (along and min(abs(y - y1), abs(y - y2)) <= margin):
            return False
    return True


def a_box_to_look_at(records_by_id: dict[str, Any]) -> tuple[dict[str, Any], int, list[int]]:
    """(record, expression index, box): a box at least 30 pixels each way whose edge points no
    other box of its image comes near."""
    for record in records_by_id.values():
        boxes = [(i, instance["bbox"]) for i, e in enumerate(record["expressions"])
                 for instance in e["instances"]]
        for index, box in boxes:
            others = [b for _, b in boxes if b is not box]
            if box[2] - box[0] >= 30 and box[3] - box[1] >= 30 and \
                    all(clear_of(p, others) for p in edge_points(box)):
                return record, index, box
    raise AssertionError("no box to look at")


def test_the_page_draws_each_box_in_its_expressions_colour(labelled, tmp_path):
    page = labelled["result"].page
    record, index, box = a_box_to_look_at(labelled["records"])
    original = Image.open(record["image_path"]).convert("RGB")
    width, height = record["width"], record["height"]
    expected = rgb(colour(index))
    for scale in (1, 2):
        shot = screenshot(page, f"#image={record['image_id']}&scale={scale}",
                          (width * scale + 460, height * scale + 20), tmp_path / f"x{scale}.png")
        for x, y in edge_points(box):
            # the stroke (3 screen pixels) is centred on the edge, in the records' frame scaled:
            # the screen pixels either side of it carry the colour
            for dx, dy in ((-1, 0), (0, 0)) if x in (box[0], box[2]) else ((0, -1), (0, 0)):
                screen = (x * scale + dx, y * scale + dy)
                assert near(shot.getpixel(screen), expected), (scale, screen, expected)
            # ... which is the box's, not the picture's
            assert not near(original.getpixel((min(x, width - 1), min(y, height - 1))), expected)
        inside = ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
        assert not near(shot.getpixel((inside[0] * scale, inside[1] * scale)), expected)


def test_search_and_the_filters_change_what_is_shown(labelled):
    page, by_id = labelled["result"].page, labelled["records"]
    everything = dom(page)
    assert sorted(cards(everything)) == sorted(by_id)
    assert matching(everything) == len(by_id) == 7

    failed = dom(page, "#filter=failed")
    with_failure = [i for i, r in by_id.items()
                    if "step1_grounding" not in r["pipeline_steps"]]
    assert len(with_failure) == 1
    assert cards(failed) == with_failure
    assert "step1_grounding: unparseable" in failed

    nothing = dom(page, "#filter=nothing")
    assert cards(nothing) == ["scene_0000", "scene_0001"]  # the grounding that answered "[]"
    assert "nothing found" in nothing

    unverified = dom(page, "#filter=unverified")  # no grounding step double-checks
    assert len(cards(unverified)) == len([r for r in by_id.values() if r["expressions"]])

    target = next(r for i, r in by_id.items() if i not in with_failure and r["expressions"])
    word = max(target["expressions"], key=lambda e: len(e["text"]))["text"]
    searched = dom(page, "#q=" + word.replace(" ", "%20"))
    shown = cards(searched)
    assert target["image_id"] in shown
    assert shown == sorted(i for i, r in by_id.items()
                           if word.lower() in (r["caption"] or "").lower()
                           or any(word.lower() in e["text"].lower() for e in r["expressions"]))
    assert cards(dom(page, "#q=no-such-words-anywhere")) == []
    both = dom(page, f"#q={target['image_id']}&filter=failed")
    assert cards(both) == []  # the search and the filter both hold


def test_every_card_links_its_show_text_and_the_page_fetches_nothing_remote(labelled):
    out, page = labelled["out"], labelled["result"].page
    text = dom(page)
    links = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert links and not [link for link in links if re.match(r"[a-z]+://", link)]
    runner = CliRunner()
    for image_id in labelled["records"]:
        link = f'href="show/{image_id}.txt"'
        assert link in text
        shown = runner.invoke(app, ["show", str(out), image_id])
        assert shown.exit_code == 0
        # the same renderer as `auto_label show`, so the same text
        assert (page.parent / "show" / f"{image_id}.txt").read_text() == shown.output
        thumb = re.search(rf'data-id="{image_id}".*?<img src="(thumbs/[^"]+)"', text)
        assert thumb and (page.parent / thumb.group(1)).is_file()


def test_thumbnails_are_made_once_and_a_changed_image_gets_its_own(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 3, seed=33)
    out = tmp_path / "out"
    generate(grounding_spec(out, data.root, sim.openai_base_url))
    first = write_review(out, tmp_path / "page")
    assert (first.thumbnails_made, first.thumbnails_reused) == (3, 0)
    thumbs = sorted(p.name for p in (tmp_path / "page" / "thumbs").iterdir())
    again = write_review(out, tmp_path / "page")
    assert (again.thumbnails_made, again.thumbnails_reused) == (0, 3)
    assert sorted(p.name for p in (tmp_path / "page" / "thumbs").iterdir()) == thumbs

    changed = data.root / "images" / "scene_0001.png"
    Image.open(changed).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(changed)
    generate(grounding_spec(out, data.root, sim.openai_base_url))  # seeded again
    third = write_review(out, tmp_path / "page")
    assert (third.thumbnails_made, third.thumbnails_reused) == (1, 2)
    now = sorted(p.name for p in (tmp_path / "page" / "thumbs").iterdir())
    assert len(now) == 3 and len(set(now) & set(thumbs)) == 2  # the old one is gone


@pytest.mark.parametrize("mode", ["apply", "ignore"])
def test_thumbnails_and_the_full_view_are_in_the_records_frame(tmp_path, sim, mode):
    shot = photos.oriented(6, 6)  # stored turned; the EXIF tag says so
    photos.write(tmp_path / "data", [shot])
    out = tmp_path / "out"
    generate(grounding_spec(out, tmp_path / "data", sim.openai_base_url,
                            f"image_grounding.data.exif_orientation={mode}"))
    record = next(iter(records(out)))
    frame = shot.upright if mode == "apply" else shot.stored
    assert (record["width"], record["height"]) == frame
    result = write_review(out)
    stored = Image.open(tmp_path / "data" / "images" / "orient_6.img").convert("RGB")
    picture = stored.transpose(Image.Transpose.ROTATE_270) if mode == "apply" else stored
    assert picture.size == frame
    thumb = Image.open(next((result.page.parent / "thumbs").iterdir())).convert("RGB")
    assert thumb.size[0] > thumb.size[1] if frame[0] > frame[1] else thumb.size[0] < thumb.size[1]
    assert difference(thumb, picture.resize(thumb.size)) < 8  # upright as the boxes are
    # the full-size view shows the original file, oriented as the run read it
    width, height = frame
    page = screenshot(result.page, f"#image={record['image_id']}&scale=1",
                      (width + 460, height + 20), tmp_path / "full.png").crop((0, 0, width, height))
    assert difference(page, picture) < 12
    assert difference(page, picture.transpose(Image.Transpose.ROTATE_180)) > 30


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel (0-255)."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def synthetic(n: int, **fields: Any) -> dict[str, Any]:
    images = [{"id": f"img_{i:04d}", "path": f"/nowhere/{i}.png", "w": 100, "h": 80,
               "cap": f"caption {i}", "ex": [[f"thing {i}", None, [[10, 10, 50, 40, 0.5]]]],
               "rg": [], "fail": [], "none": False, "show": f"show/img_{i:04d}.txt", **fields}
              for i in range(n)]
    return {"title": "synthetic", "pipeline": "image_grounding", "version": "0",
            "written": "now", "palette": list(PALETTE), "images": images}


def test_pages_of_48_cards_keep_ten_thousand_images_light(tmp_path):
    page = tmp_path / "index.html"
    page.write_text(render_page(synthetic(10_000)), encoding="utf-8")
    first = dom(page)
    assert cards(first) == [f"img_{i:04d}" for i in range(48)]
    assert matching(first) == 10_000 and 'data-pages="209"' in first
    last = dom(page, "#page=209")
    assert cards(last) == [f"img_{i:04d}" for i in range(9984, 10_000)]
    every_term = [f"img_{i:04d}" for i in range(10_000)
                  if "777" in f"img_{i:04d} caption {i} thing {i}"]
    assert cards(dom(page, "#q=thing%20777")) == every_term[:48]
    assert len(every_term) > 1


def test_text_in_the_data_stays_text(tmp_path):
    evil = "</script><script>document.title='owned'</script><img src=x onerror=alert(1)>"
    data = synthetic(2, cap=evil)
    data["images"][0]["ex"][0][0] = "<b>bold</b> & more"
    page = tmp_path / "index.html"
    page.write_text(render_page(data), encoding="utf-8")
    text = dom(page)
    assert cards(text) == ["img_0000", "img_0001"]
    assert "<title>review: synthetic</title>" in text  # no script of the data ran
    assert '<img src="x"' not in text and "<b>" not in text
    assert html.escape(evil, quote=False) in text and "&lt;b&gt;bold&lt;/b&gt; &amp; more" in text
    embedded = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    assert embedded and json.loads(embedded.group(1))["images"][0]["cap"] == evil


def test_review_command_writes_the_page_and_says_where(labelled, tmp_path):
    runner = CliRunner()
    done = runner.invoke(app, ["review", str(labelled["out"]), "--out", str(tmp_path / "r")])
    assert done.exit_code == 0, done.output
    assert "7 images, thumbnails 7 made and 0 reused" in done.output
    assert (tmp_path / "r" / "index.html").is_file()
    assert (tmp_path / "r" / "index.html").resolve().as_uri() in done.output.replace("\n", "")
    missing = runner.invoke(app, ["review", str(tmp_path / "nothing-here")])
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    unwritable = runner.invoke(app, ["review", str(labelled["out"]), "--out", str(blocked)])
    for failed in (missing, unwritable):
        assert failed.exit_code == 2
        assert "Traceback" not in failed.output and len(failed.output.strip().splitlines()) == 1
    assert str(blocked) in unwritable.output


def test_the_probes_generated_images_are_not_on_the_page(tmp_path, sim):
    """`probe` records its five generated images in the ledger: they are no dataset images."""
    data = write_grounding_dataset(tmp_path / "data", 3, seed=35)
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url)
    probe(spec)
    generate(spec)
    result = write_review(tmp_path / "out", tmp_path / "page")
    assert result.images == 3
    shown = sorted(p.stem for p in (tmp_path / "page" / "show").glob("*.txt"))
    assert shown == sorted(r["image_id"] for r in read_jsonl(tmp_path / "out" /
                                                             "annotations.jsonl"))
