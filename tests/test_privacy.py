"""Image privacy: orientation applied, EXIF/GPS/XMP/ICC/comments/PNG text gone, unless kept on request."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image, PngImagePlugin

from ocr_datasets import TrainingSample, export
from ocr_datasets.privacy import without_private_metadata

# Strings a photo may carry about its maker; none may reach a batch.
PRIVATE = [b"Pixel 9 Pro", b"Max Mustermann", b"/home/max/Akten"]


def landscape_line() -> Image.Image:
    """40x20, red on its left quarter: after orientation 6 (rotate 90 degrees clockwise) the red is on top."""
    image = Image.new("RGB", (40, 20), "white")
    image.paste((255, 0, 0), (0, 0, 10, 20))
    return image


def phone_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x0110] = "Pixel 9 Pro"
    exif[0x013B] = "Max Mustermann"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    buffer = io.BytesIO()
    landscape_line().save(buffer, format="JPEG", quality=95, exif=exif.tobytes(), comment=b"/home/max/Akten")
    return buffer.getvalue()


def annotated_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Max Mustermann")
    info.add_itxt("Comment", "/home/max/Akten")
    buffer = io.BytesIO()
    landscape_line().save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def export_one(data: bytes, name: str, tmp_path: Path, **options) -> tuple[bytes, bytes]:
    """The image as stored in the parquet and as copied to images/."""
    sample = TrainingSample(id="line", image_path=name, image_bytes=data, ground_truth="Zeile")
    result = export([sample], "trocr", batch_id="b1", output_dir=tmp_path, progress=False, **options)
    stored = (
        pq.read_table(Path(result.export_path) / "data" / "train-00000-of-00001.parquet").column("image")[0].as_py()
    )
    copied = next((Path(result.export_path) / "images").iterdir()).read_bytes()
    return stored["bytes"], copied


def test_phone_photo_is_turned_upright_and_loses_exif_gps_and_comment(tmp_path):
    stored, copied = export_one(phone_jpeg(orientation=6), "photo.jpg", tmp_path)
    assert stored == copied
    image = Image.open(io.BytesIO(stored))
    assert image.size == (20, 40)
    red, white = image.convert("RGB").getpixel((10, 3)), image.convert("RGB").getpixel((10, 36))
    assert red[0] > 200 and red[1] < 60 and white == (255, 255, 255)
    assert not image.getexif() and not image.getexif().get_ifd(0x8825) and "exif" not in image.info
    for marker in PRIVATE:
        assert marker not in stored


def test_upright_jpeg_keeps_its_compressed_pixels_and_loses_only_metadata():
    original = phone_jpeg(orientation=1)
    cleaned = without_private_metadata(original)
    assert Image.open(io.BytesIO(cleaned)).format == "JPEG"
    assert Image.open(io.BytesIO(cleaned)).tobytes() == Image.open(io.BytesIO(original)).tobytes()
    assert len(cleaned) < len(original)
    assert not Image.open(io.BytesIO(cleaned)).getexif().get_ifd(0x8825)
    for marker in PRIVATE:
        assert marker not in cleaned


def test_png_text_chunks_are_dropped_and_pixels_kept(tmp_path):
    stored, _ = export_one(annotated_png(), "scan.png", tmp_path)
    assert Image.open(io.BytesIO(stored)).tobytes() == landscape_line().tobytes()
    for marker in PRIVATE:
        assert marker not in stored


@pytest.mark.parametrize("make", [lambda: Image.new("L", (30, 12), 200), lambda: Image.new("1", (30, 12), 1)])
@pytest.mark.parametrize("image_format", ["PNG", "TIFF"])
def test_clean_images_pass_through_byte_for_byte(make, image_format):
    buffer = io.BytesIO()
    make().save(buffer, format=image_format)
    assert without_private_metadata(buffer.getvalue()) == buffer.getvalue()


def test_a_clean_png_passes_without_being_opened(monkeypatch):
    # For a PNG, Pillow's getexif decodes the whole image: line_gt's lines, cleaned by
    # validation already, were decoded a second time. A 16-bit greyscale PNG is still scaled.
    buffer = io.BytesIO()
    landscape_line().save(buffer, format="PNG")
    clean = buffer.getvalue()
    deep = io.BytesIO()
    landscape_line().convert("I;16").save(deep, format="PNG")
    opened = []
    open_image = Image.open
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: opened.append(args) or open_image(*args, **kwargs))
    assert without_private_metadata(clean) is clean and opened == []
    assert without_private_metadata(annotated_png()) != annotated_png() and len(opened) == 1
    assert Image.open(io.BytesIO(without_private_metadata(deep.getvalue()))).mode == "L"


def test_keep_image_metadata_keeps_the_bytes(tmp_path):
    original = phone_jpeg(orientation=6)
    stored, copied = export_one(original, "photo.jpg", tmp_path, keep_image_metadata=True)
    assert stored == copied == original


@pytest.mark.parametrize(
    "tags", [{0x0112: 6}, {0x0112: 6, 0x013B: "Max Mustermann"}], ids=["orientation", "orientation-and-artist"]
)
def test_tiff_scan_with_orientation_is_turned_upright_once_and_loses_its_artist(tags, tmp_path):
    buffer = io.BytesIO()
    landscape_line().save(buffer, format="TIFF", tiffinfo=tags)
    stored, copied = export_one(buffer.getvalue(), "scan.tif", tmp_path)
    assert stored == copied
    image = Image.open(io.BytesIO(stored))
    assert image.size == (20, 40)
    red, white = image.convert("RGB").getpixel((10, 3)), image.convert("RGB").getpixel((10, 36))
    assert red[0] > 200 and red[1] < 60 and white == (255, 255, 255)
    assert b"Max Mustermann" not in stored
