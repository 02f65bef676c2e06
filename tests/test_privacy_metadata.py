"""Where metadata hides beyond EXIF, and none of it reaches a batch: bytes after a JPEG's end,
TIFF tags no deny-list names, later pages, and file paths inside error messages."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image, TiffImagePlugin

from ocr_datasets import TrainingSample, export, read_samples
from ocr_datasets.privacy import without_private_metadata

# What a phone's motion photo appends after the JPEG: an MP4 whose metadata names the place
# (ISO 6709, as Android's ©xyz atom writes it).
LOCATION = b"+52.5200+013.4050/"
MOTION_VIDEO = (
    b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42"
    + b"\x00\x00\x00\x1e\xa9xyz\x00\x12\x15\xc7"
    + LOCATION
    + b"\x00" * 64
)
USER = "jane.doe"


def line_image() -> Image.Image:
    image = Image.linear_gradient("L").resize((80, 24)).convert("RGB")
    image.paste((20, 20, 20), (10, 8, 70, 16))
    return image


def jpeg(**options) -> bytes:
    buffer = io.BytesIO()
    line_image().save(buffer, format="JPEG", **{"quality": 90, **options})
    return buffer.getvalue()


def batch_files(tmp_path: Path, samples: list[TrainingSample], **options) -> tuple[Path, dict[str, bytes]]:
    """Export ``samples`` (plus an ordinary line, so a batch is written even when every other
    sample is rejected); the batch folder and the bytes of every file in it."""
    buffer = io.BytesIO()
    Image.new("L", (60, 20), 230).save(buffer, format="PNG")
    plain = TrainingSample(
        id="plain", image_path="plain.png", image_bytes=buffer.getvalue(), ground_truth="gewöhnliche Zeile"
    )
    result = export([*samples, plain], "trocr", batch_id="b1", output_dir=tmp_path / "out", progress=False, **options)
    batch = Path(result.export_path)
    return batch, {
        str(path.relative_to(batch)): path.read_bytes() for path in sorted(batch.rglob("*")) if path.is_file()
    }


def stored_image(batch: Path, sample_id: str) -> bytes:
    table = pq.read_table(batch / "data" / "train-00000-of-00001.parquet")
    return table.column("image")[table.column("id").to_pylist().index(sample_id)].as_py()["bytes"]


def assert_nowhere(needles: list[bytes], files: dict[str, bytes]) -> None:
    for name, data in files.items():
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {name}"


# --- bytes after the end of the image -------------------------------------------------------------


@pytest.mark.parametrize("with_exif", [False, True], ids=["only-the-video", "exif-and-video"])
def test_motion_photo_video_after_the_jpeg_end_is_dropped(with_exif, tmp_path):
    exif = Image.Exif()
    exif[0x0110] = "Pixel 9 Pro"
    original = jpeg(**({"exif": exif.tobytes()} if with_exif else {}))
    sample = TrainingSample(
        id="photo", image_path="PXL_20250301_motion.jpg", image_bytes=original + MOTION_VIDEO, ground_truth="Zeile"
    )
    batch, files = batch_files(tmp_path, [sample])
    assert_nowhere([LOCATION, b"ftypmp42", b"Pixel 9 Pro"], files)
    stored = stored_image(batch, "photo")
    assert Image.open(io.BytesIO(stored)).format == "JPEG"
    assert Image.open(io.BytesIO(stored)).tobytes() == Image.open(io.BytesIO(original)).tobytes()
    assert stored.endswith(b"\xff\xd9")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"progressive": True},
        {"restart_marker_blocks": 1},
        {"progressive": True, "restart_marker_rows": 1},
        {"subsampling": 0, "quality": 100},
    ],
    ids=["baseline", "progressive", "restart-markers", "progressive-restart-markers", "quality-100"],
)
def test_jpeg_is_cut_exactly_at_its_end_whatever_its_scans(options):
    # Progressive JPEGs have several scans with tables between them, restart markers sit inside
    # the compressed data, and the data holds 0xFF bytes (stuffed): none of them is the end.
    original = jpeg(**options)
    assert without_private_metadata(original + MOTION_VIDEO) == original
    assert without_private_metadata(original + b"\xff\xd9" + LOCATION) == original
    assert without_private_metadata(original) is original


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def test_jpeg_keeps_only_the_application_segments_decoding_needs(tmp_path):
    original = jpeg()
    assert original[2:4] == b"\xff\xe0"  # SOI, then the JFIF segment
    jfif_end = 4 + struct.unpack(">H", original[4:6])[0]
    extra = b"".join(
        [
            jpeg_segment(0xE0, b"JFXX\0\x10" + USER.encode()),  # an APP0 that is not JFIF
            jpeg_segment(0xEE, b"Private " + USER.encode()),  # an APP14 that is not Adobe's
            jpeg_segment(0xE3, USER.encode()),
            jpeg_segment(0xFE, USER.encode()),
        ]
    )
    data = original[:jfif_end] + extra + original[jfif_end:]
    assert Image.open(io.BytesIO(data)).tobytes() == Image.open(io.BytesIO(original)).tobytes()
    assert without_private_metadata(data) == original
    batch, files = batch_files(
        tmp_path, [TrainingSample(id="line", image_path="line.jpg", image_bytes=data, ground_truth="Zeile")]
    )
    assert_nowhere([USER.encode()], files)
    assert stored_image(batch, "line") == original


def test_bytes_after_png_iend_are_dropped(tmp_path):
    buffer = io.BytesIO()
    line_image().save(buffer, format="PNG")
    original = buffer.getvalue()
    assert without_private_metadata(original + MOTION_VIDEO) == original
    sample = TrainingSample(id="scan", image_path="scan.png", image_bytes=original + MOTION_VIDEO, ground_truth="Zeile")
    batch, files = batch_files(tmp_path, [sample])
    assert_nowhere([LOCATION], files)
    assert stored_image(batch, "scan") == original


def test_phone_jpeg_with_more_pictures_appended_is_exported_as_its_first_picture(tmp_path):
    # Phones write MPO: a JPEG followed by more JPEGs (previews, depth or gain maps), each with
    # metadata of its own. Pillow reads it as "MPO"; its name says JPEG, and it is one.
    second = Image.new("RGB", (80, 24), "red")
    buffer = io.BytesIO()
    line_image().save(
        buffer, format="MPO", save_all=True, append_images=[second], comment=f"C:/Users/{USER}/DCIM".encode()
    )
    original = buffer.getvalue()
    assert Image.open(io.BytesIO(original)).format == "MPO" and USER.encode() in original
    sample = TrainingSample(id="photo", image_path="PXL_20250301.jpg", image_bytes=original, ground_truth="Zeile")
    batch, files = batch_files(tmp_path, [sample])
    assert_nowhere([USER.encode(), b"MPF"], files)
    stored = Image.open(io.BytesIO(stored_image(batch, "photo")))
    assert stored.format == "JPEG" and getattr(stored, "n_frames", 1) == 1
    assert stored.tobytes() == Image.open(io.BytesIO(original)).tobytes()


# --- TIFF: only what decoding needs ---------------------------------------------------------------

PAGE_NAME = rf"C:\Users\{USER}\Scans\Akte-0001.tif"
USER_NEEDLES = [USER.encode(), USER.encode("utf-16-le"), USER.encode("utf-16-be")]


def tiff(image: Image.Image, tags: dict) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF", tiffinfo=tags)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "tags",
    [
        {40093: f"{USER}\0".encode("utf-16-le")},  # XPAuthor, as Windows writes it: UTF-16LE bytes
        {285: PAGE_NAME},  # PageName
        {269: PAGE_NAME},  # DocumentName, already on the old list
        {
            40093: f"{USER}\0".encode("utf-16-le"),
            285: PAGE_NAME,
            65000: f"private {USER}".encode(),
        },  # and a private tag
    ],
    ids=["XPAuthor", "PageName", "DocumentName", "all-and-a-private-tag"],
)
def test_tiff_tags_outside_what_decoding_needs_never_reach_the_batch(tags, tmp_path):
    original = tiff(line_image(), tags)
    assert any(needle in original for needle in USER_NEEDLES)
    batch, files = batch_files(
        tmp_path, [TrainingSample(id="scan", image_path="scan.tif", image_bytes=original, ground_truth="Zeile")]
    )
    assert_nowhere(USER_NEEDLES, files)
    assert Image.open(io.BytesIO(stored_image(batch, "scan"))).tobytes() == line_image().tobytes()


@pytest.mark.parametrize("mode", ["L", "1", "RGB"])
def test_tiff_with_only_the_tags_decoding_needs_passes_byte_for_byte(mode):
    # (Deeper greyscale is re-encoded at 8 bits whatever its tags: see test_image_modes.py.)
    image = line_image().convert(mode)
    # PageNumber "0 of 1", as every line of ocrd-line-gt carries it, is a pair of numbers.
    original = tiff(image, {297: (0, 1)})
    with_resolution = io.BytesIO()
    image.save(with_resolution, format="TIFF", dpi=(300, 300), compression="tiff_lzw" if mode != "1" else "group4")
    for data in (original, with_resolution.getvalue()):
        assert without_private_metadata(data) is data


def test_text_in_a_tag_that_should_hold_numbers_never_reaches_the_batch(tmp_path):
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[297] = PAGE_NAME  # PageNumber, written as text
    tags.tagtype[297] = 2
    original = tiff(line_image(), tags)
    assert USER.encode() in original
    _, files = batch_files(
        tmp_path, [TrainingSample(id="scan", image_path="scan.tif", image_bytes=original, ground_truth="Zeile")]
    )
    assert_nowhere(USER_NEEDLES, files)


def two_page_tiff_with_page_name_on_page_two() -> bytes:
    buffer = io.BytesIO()
    with TiffImagePlugin.AppendingTiffWriter(buffer) as writer:
        for page, tags in ((line_image(), {}), (Image.new("L", (80, 24), 100), {285: PAGE_NAME})):
            page.save(writer, format="TIFF", tiffinfo=tags)
            writer.newFrame()
    return buffer.getvalue()


def test_tags_on_a_second_tiff_page_never_reach_the_batch(tmp_path):
    original = two_page_tiff_with_page_name_on_page_two()
    assert USER.encode() in original
    sample = TrainingSample(id="pages", image_path="pages.tif", image_bytes=original, ground_truth="Zeile")
    _, files = batch_files(tmp_path, [sample], skip_invalid=True)
    assert_nowhere(USER_NEEDLES, files)
    [rejected] = [json.loads(line) for line in files["rejected.jsonl"].decode().splitlines()]
    assert rejected["id"] == "pages" and "holds 2 frames" in rejected["problem"]


def test_privacy_step_on_its_own_keeps_only_the_first_page():
    # Validation refuses such files first; the privacy step, called alone, keeps to the same
    # rule: one frame, and none of the others' tags.
    cleaned = without_private_metadata(two_page_tiff_with_page_name_on_page_two())
    assert USER.encode() not in cleaned
    image = Image.open(io.BytesIO(cleaned))
    assert getattr(image, "n_frames", 1) == 1 and image.convert("RGB").tobytes() == line_image().tobytes()


def icc_profile() -> bytes:
    from PIL import ImageCms

    profile = ImageCms.createProfile("sRGB")
    return ImageCms.ImageCmsProfile(profile).tobytes()


@pytest.mark.parametrize("image_format", ["TIFF", "WEBP"])
def test_re_encoded_images_carry_no_icc_profile(image_format, tmp_path):
    # Pillow writes a decoded image's ICC profile into the PNG it saves unless told otherwise; a
    # scanner's profile names the device (and made each line crop 700 KB).
    buffer = io.BytesIO()
    line_image().save(
        buffer, format=image_format, icc_profile=icc_profile(), **({"lossless": True} if image_format == "WEBP" else {})
    )
    sample = TrainingSample(
        id="scan", image_path=f"scan.{image_format.lower()}", image_bytes=buffer.getvalue(), ground_truth="Zeile"
    )
    batch, _ = batch_files(tmp_path, [sample])
    stored = stored_image(batch, "scan")
    assert Image.open(io.BytesIO(stored)).format == "PNG" and b"iCCP" not in stored
    assert Image.open(io.BytesIO(stored)).convert("RGB").tobytes() == line_image().tobytes()


# --- no paths in messages ------------------------------------------------------------------------


def write_page_xml(path: Path, image_name: str, declared_size: bool = False) -> Path:
    # Without imageWidth/imageHeight the page image is first opened when its line is cut; with
    # them, when the reader compares the sizes.
    size = ' imageWidth="200" imageHeight="100"' if declared_size else ""
    path.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">
  <Metadata><Creator>test</Creator></Metadata>
  <Page imageFilename="{image_name}"{size}>
    <TextRegion id="r1"><TextLine id="l1"><Coords points="10,10 150,10 150,40 10,40"/>
      <TextEquiv><Unicode>Zeile auf {path.stem}</Unicode></TextEquiv></TextLine></TextRegion>
  </Page>
</PcGts>
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    "garbage",
    [b"this is no image at all", b"II*\x00" + b"\x00" * 20, b"\x89PNG\r\n\x1a\n" + b"\x00" * 30],
    ids=["text", "broken-tiff-header", "broken-png-header"],
)
@pytest.mark.parametrize("declared_size", [False, True], ids=["opened-to-crop", "opened-to-measure"])
def test_unreadable_page_image_is_named_without_its_folder(garbage, declared_size, tmp_path):
    home = tmp_path / f"{USER}-private" / "Scans"
    home.mkdir(parents=True)
    Image.linear_gradient("L").resize((200, 100)).save(home / "good.png")
    (home / "broken.tif").write_bytes(garbage)
    pages = [
        write_page_xml(home / f"{name}.xml", image, declared_size)
        for name, image in (("good", "good.png"), ("broken", "broken.tif"))
    ]
    samples = [item for page in pages for item in read_samples(page, "page", errors="report")]
    _, files = batch_files(tmp_path, samples, skip_invalid=True)
    assert_nowhere([USER.encode(), str(tmp_path).encode(), b"Scans/", b"_io."], files)
    [rejected] = [json.loads(line) for line in files["rejected.jsonl"].decode().splitlines()]
    assert "broken.tif" in rejected["problem"] and "broken" in (rejected["id"] or rejected["location"])


def test_a_page_image_reference_with_a_users_folder_is_named_by_its_file_name(tmp_path):
    folder = tmp_path / "pages"
    folder.mkdir()
    Image.linear_gradient("L").resize((200, 100)).save(folder / "good.png")
    pages = [
        write_page_xml(folder / "good.xml", "good.png"),
        write_page_xml(folder / "lost.xml", f"C:\\Users\\{USER}\\Scans\\lost.tif"),
    ]
    samples = [item for page in pages for item in read_samples(page, "page", errors="report")]
    _, files = batch_files(tmp_path, samples, skip_invalid=True)
    assert_nowhere([USER.encode(), b"Scans"], files)
    [rejected] = [json.loads(line) for line in files["rejected.jsonl"].decode().splitlines()]
    assert "lost.tif" in rejected["problem"]


def test_unreadable_line_image_is_named_without_its_folder(tmp_path):
    home = tmp_path / f"{USER}-private"
    home.mkdir()
    (home / "line.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    (home / "line2.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    samples = [TrainingSample(id=path.stem, image_path=path, ground_truth="Zeile") for path in sorted(home.iterdir())]
    _, files = batch_files(tmp_path, samples, skip_invalid=True)
    assert_nowhere([USER.encode(), str(tmp_path).encode(), b"_io.", b" at 0x"], files)
    assert len(files["rejected.jsonl"].decode().splitlines()) == 2
