"""Seeding: each kind of unusable image file is named, with the file, and never crashes a run."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from auto_label.backends.base import ModelFrame
from auto_label.pipelines.contract import ImageInput
from auto_label.pipelines.engine.seeding import ImageProblem, seed_image
from auto_label.pipelines.images.decode import IngestSettings
from auto_label.pipelines.images.prepare import prepare

FRAME = ModelFrame("xyxy_pixel")


def seed(item, frame=FRAME):
    return seed_image(item, "run", IngestSettings(), frame)


def image_bytes(fmt: str, size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def flip_idat_byte(data: bytes) -> bytes:
    at = data.index(b"IDAT") + 6
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def item(path):
    return ImageInput(image_id="img", path=path, image_path=str(path), caption="c",
                      source="input.jsonl:3")


@pytest.mark.parametrize(("name", "content", "kind", "message"), [
    ("missing.png", None, "image_missing", "image file not found"),
    ("empty.png", b"", "image_empty", "image file is empty"),
    ("text.png", b"hello, this is not an image at all", "image_invalid", "not an image"),
    ("cut.png", image_bytes("PNG")[:-30], "image_corrupt", "corrupt or truncated"),
    ("cut.jpg", image_bytes("JPEG")[:-200], "image_corrupt", "corrupt or truncated"),
    ("bad.png", flip_idat_byte(image_bytes("PNG")), "image_corrupt", "corrupt or truncated"),
])
def test_unusable_files_raise_a_named_problem(tmp_path, name, content, kind, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageProblem) as raised:
        seed(item(path))
    assert raised.value.kind == kind
    assert str(path) in str(raised.value) and message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageProblem, match="is a directory"):
        seed(item(tmp_path))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "AVIF", "TIFF", "GIF"])
def test_good_images_are_seeded_with_their_real_size(tmp_path, fmt):
    path = tmp_path / f"ok.{fmt.lower()}"
    path.write_bytes(image_bytes(fmt, (123, 45)))
    seeded, prepared = seed(item(path))
    assert (seeded.width, seeded.height) == (123, 45) == prepared.original_size
    assert seeded.format == fmt
    sendable = fmt in ("PNG", "JPEG", "WEBP")  # as they are; the others re-encoded
    assert (prepared.data == path.read_bytes()) is sendable
    assert prepared.mime_type == {"PNG": "image/png", "WEBP": "image/webp",
                                  "AVIF": "image/jpeg", "JPEG": "image/jpeg"}.get(fmt, "image/png")
    assert seeded.size == path.stat().st_size
    assert seeded.source == "input.jsonl:3"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_images_are_sent_as_they_are_unless_downscaled(tmp_path, fmt):
    def sent_at(max_side):
        return prepare(data, name="x", sha256="x", settings=IngestSettings(),
                       frame=ModelFrame("xyxy_pixel", max_image_side=max_side)).prepared

    data = image_bytes(fmt, (120, 80))
    sent = sent_at(0)
    assert sent.sent_size == (120, 80)
    if fmt == "BMP":  # not a format the APIs take: re-encoded, losslessly
        assert sent.mime_type == "image/png" and sent.data != data
    else:
        assert sent.data == data and sent.mime_type == f"image/{fmt.lower()}"
    small = sent_at(60)
    assert small.sent_size == (60, 40) and small.original_size == (120, 80)
    with Image.open(io.BytesIO(small.data)) as image:
        assert image.size == (60, 40)


def test_data_after_a_jpegs_end_is_fine_and_a_cut_one_is_not(tmp_path):
    good = image_bytes("JPEG", (96, 64))
    for name, data in (("padded.jpg", good + b"\x00" * 2048),
                       ("motion.jpg", good + b"\x00\x00\x00\x18ftypmp42" + b"\x07" * 5000)):
        path = tmp_path / name
        path.write_bytes(data)
        seeded, prepared = seed(item(path))
        assert (seeded.width, seeded.height) == (96, 64) and prepared.data == data
    path = tmp_path / "cut.jpg"
    path.write_bytes(good[: len(good) // 2] + b"\x00" * 2048)  # cut, then padded: no end marker
    with pytest.raises(ImageProblem, match="corrupt or truncated"):
        seed(item(path))


def test_a_heic_named_jpg_is_read_by_its_content(tmp_path):
    import pillow_heif

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", (64, 40), (30, 70, 220)).save(buffer, "HEIF")
    path = tmp_path / "IMG_0001.jpg"
    path.write_bytes(buffer.getvalue())
    seeded, prepared = seed(item(path))
    assert seeded.format == "HEIF" and (seeded.width, seeded.height) == (64, 40)
    assert prepared.mime_type == "image/jpeg" and prepared.data[:3] == b"\xff\xd8\xff"


def test_a_large_jpeg_sent_smaller_is_decoded_in_draft_mode(tmp_path, monkeypatch):
    from PIL import JpegImagePlugin

    sizes = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        sizes.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    data = image_bytes("JPEG", (2400, 1600))
    sent = prepare(data, name="x", sha256="x", settings=IngestSettings(),
                   frame=ModelFrame("xyxy_pixel", max_image_side=600)).prepared
    assert sizes == [(600, 400)] and sent.sent_size == (600, 400)
