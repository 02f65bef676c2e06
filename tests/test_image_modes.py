"""Images as scanners and tools really write them: 16-bit, 32-bit and float greyscale keep their
text wherever pixels are converted; multi-frame files are refused; only regular files are read."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from ocr_datasets import TrainingSample, export, read_samples, validate
from ocr_datasets.training.llama_vision import _rgb_images
from ocr_datasets.training.trocr import TrOCRCollator

WIDTH, HEIGHT = 400, 40
INK_ROWS = range(12, 28)
# Ink is this fraction of the paper's brightness below it: dark-grey text on light-grey paper.
INK_RATIO = 0.16
# A row of bare paper above the ink.
PAPER_ROW = 5
# Tags every flatbed scanner writes; either makes the privacy step re-encode the image.
SCANNER_TAGS = {305: "EPSON Scan 4.0", 306: "2024:05:17 10:31:02"}


def is_ink(x: int, y: int) -> bool:
    return y in INK_ROWS and (x // 10) % 2 == 0


def scan_values() -> list[int]:
    """16-bit values of a scanned line, row by row: paper shaded from left to right (12000 to
    65000, as uneven lighting leaves it: ~210 grey levels once scaled to 8 bits) under strokes of
    ink at ``INK_RATIO`` of the paper's value."""
    values = []
    for y in range(HEIGHT):
        for x in range(WIDTH):
            paper = 12000 + x * 53000 // (WIDTH - 1)
            values.append(round(paper * INK_RATIO) if is_ink(x, y) else paper)
    return values


def deep_scan(mode: str) -> Image.Image:
    values = scan_values()
    if mode == "I;16B":
        return Image.frombytes(mode, (WIDTH, HEIGHT), struct.pack(f">{len(values)}H", *values))
    image = Image.new(mode, (WIDTH, HEIGHT))
    # Floats as they come from scientific tools, 0 to 1; 32-bit integers with the 16-bit values.
    image.putdata([value / 65535 for value in values] if mode == "F" else values)
    return image


def tiff_bytes(image: Image.Image, tags: dict | None = None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF", tiffinfo=tags or {})
    return buffer.getvalue()


def assert_text_survives(data_or_image) -> None:
    """The image holds the scan's tones as 8-bit grey: many grey levels, and ink as much darker
    than the paper below it as in the source."""
    image = Image.open(io.BytesIO(data_or_image)) if isinstance(data_or_image, bytes) else data_or_image
    image.load()
    assert image.size == (WIDTH, HEIGHT)
    assert image.mode in ("L", "RGB"), f"8 bits per channel expected, got {image.mode}"
    grey = image.convert("L")
    pixels = grey.tobytes()
    assert len(set(pixels)) >= 200, f"{len(set(pixels))} grey levels: the tones were clipped"
    ink = [pixels[y * WIDTH + x] for y in INK_ROWS for x in range(WIDTH) if is_ink(x, y)]
    paper = [pixels[PAPER_ROW * WIDTH + x] for y in INK_ROWS for x in range(WIDTH) if is_ink(x, y)]
    assert sum(paper) / len(paper) > 100
    assert abs(sum(ink) / sum(paper) - INK_RATIO) < 0.01


def exported(data: bytes, name: str, tmp_path: Path, **options) -> tuple[Path, list[dict]]:
    """Export one line (plus an ordinary one) as trocr; the batch folder and its JSONL records."""
    buffer = io.BytesIO()
    Image.new("L", (60, 20), 230).save(buffer, format="PNG")
    samples = [
        TrainingSample(id="scan", image_path=name, image_bytes=data, ground_truth="Zeile"),
        TrainingSample(id="plain", image_path="plain.png", image_bytes=buffer.getvalue(), ground_truth="andere Zeile"),
    ]
    result = export(samples, "trocr", batch_id="b1", output_dir=tmp_path, progress=False, **options)
    batch = Path(result.export_path)
    records = [json.loads(line) for line in (batch / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    return batch, records


def stored_image(batch: Path, sample_id: str) -> bytes:
    table = pq.read_table(batch / "data" / "train-00000-of-00001.parquet")
    row = table.column("id").to_pylist().index(sample_id)
    return table.column("image")[row].as_py()["bytes"]


# --- 16-bit and float greyscale ---------------------------------------------------------------


def test_the_scan_used_below_has_the_tones_the_assertions_need():
    # The check itself, on an 8-bit rendering of the same values scaled by hand.
    values = scan_values()
    image = Image.new("L", (WIDTH, HEIGHT))
    image.putdata([round(value / 257) for value in values])
    assert_text_survives(image)
    assert len(set(values)) >= 243


@pytest.mark.parametrize("mode", ["I;16B", "I;16", "F"])
def test_deep_greyscale_scan_with_scanner_tags_keeps_its_text_when_its_metadata_is_stripped(mode, tmp_path):
    batch, records = exported(tiff_bytes(deep_scan(mode), SCANNER_TAGS), "scan.tif", tmp_path)
    stored = stored_image(batch, "scan")
    assert_text_survives(stored)
    assert b"EPSON" not in stored
    [record] = [record for record in records if record["id"] == "scan"]
    assert (batch / record["file_name"]).read_bytes() == stored


@pytest.mark.parametrize("mode", ["I;16B", "F"])
def test_deep_greyscale_scan_keeps_its_text_in_data_urls(mode, tmp_path):
    # Exported as an 8-bit PNG (see below), so its data: URL is a PNG too.
    original = tiff_bytes(deep_scan(mode))
    _, records = exported(original, "scan.tif", tmp_path, include_base64=True)
    [record] = [record for record in records if record["id"] == "scan"]
    header, encoded = record["image_base64"].split(",", 1)
    assert header == "data:image/png;base64"
    assert_text_survives(base64.b64decode(encoded))


def write_page_xml(path: Path, image_name: str, points: str) -> Path:
    path.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">
  <Metadata><Creator>test</Creator></Metadata>
  <Page imageFilename="{image_name}" imageWidth="{WIDTH}" imageHeight="{HEIGHT}">
    <TextRegion id="r1"><TextLine id="l1"><Coords points="{points}"/>
      <TextEquiv><Unicode>Zeile</Unicode></TextEquiv></TextLine></TextRegion>
  </Page>
</PcGts>
""",
        encoding="utf-8",
    )
    return path


def test_line_cropped_from_a_16_bit_page_keeps_its_text(tmp_path):
    (tmp_path / "page.tif").write_bytes(tiff_bytes(deep_scan("I;16B"), SCANNER_TAGS))
    xml = write_page_xml(tmp_path / "page.xml", "page.tif", f"0,0 {WIDTH},0 {WIDTH},{HEIGHT} 0,{HEIGHT}")
    [sample] = read_samples(xml, "page")
    assert_text_survives(sample.read_image_bytes())


class RecordingProcessor:
    """Stands in for a TrOCR processor: keeps the images the collator hands it."""

    def __call__(self, images, return_tensors=None):
        self.images = images
        return type("Encoding", (), {"pixel_values": None})()


@pytest.mark.parametrize("mode", ["I;16B", "I;16", "I", "F"])
def test_collators_hand_deep_greyscale_to_the_model_as_8_bit_rgb(mode):
    # A clean 16-bit TIFF is exported as it is, so load_batch gives the collator such an image.
    image = Image.open(io.BytesIO(tiff_bytes(deep_scan(mode))))
    processor = RecordingProcessor()
    TrOCRCollator(processor).pixel_values([image])
    [seen] = processor.images
    assert seen.mode == "RGB"
    assert_text_survives(seen)
    [seen] = _rgb_images({"images": [image]})
    assert seen.mode == "RGB"
    assert_text_survives(seen)


# --- 32-bit integer greyscale -------------------------------------------------------------------


def test_32_bit_integer_scan_with_metadata_is_exported_as_8_bit_with_its_text(tmp_path):
    # Pillow cannot write mode I as PNG: this aborted the whole export, blaming the disk.
    batch, _ = exported(tiff_bytes(deep_scan("I"), SCANNER_TAGS), "scan.tif", tmp_path, skip_invalid=True)
    assert_text_survives(stored_image(batch, "scan"))
    assert not (batch / "rejected.jsonl").exists()


def test_32_bit_integer_scan_without_metadata_is_exported_as_8_bit_and_its_data_url_keeps_its_text(tmp_path):
    batch, records = exported(tiff_bytes(deep_scan("I")), "scan.tif", tmp_path, skip_invalid=True, include_base64=True)
    assert_text_survives(stored_image(batch, "scan"))
    [record] = [record for record in records if record["id"] == "scan"]
    assert_text_survives(base64.b64decode(record["image_base64"].split(",", 1)[1]))


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "F"])
def test_clean_deep_greyscale_is_exported_as_8_bit_so_training_code_sees_its_text(mode, tmp_path):
    """Image processors (TRL's collators, transformers' convert_rgb) call convert("RGB"), which
    clips a 16-bit image to white: a clean deep scan is exported as 8-bit grey too."""
    batch, _ = exported(tiff_bytes(deep_scan(mode)), "scan.tif", tmp_path)
    stored = Image.open(io.BytesIO(stored_image(batch, "scan")))
    assert_text_survives(stored.convert("RGB"))


def test_keep_image_metadata_keeps_a_deep_scan_byte_for_byte(tmp_path):
    original = tiff_bytes(deep_scan("I;16"))
    batch, _ = exported(original, "scan.tif", tmp_path, keep_image_metadata=True)
    assert stored_image(batch, "scan") == original


# --- one frame per image ----------------------------------------------------------------------


def line(shade: int) -> Image.Image:
    image = Image.new("L", (60, 20), 230)
    image.paste(shade, (5, 5, 55, 15))
    return image


def two_page_tiff(break_page_two: bool = False) -> bytes:
    buffer = io.BytesIO()
    line(20).save(buffer, format="TIFF", save_all=True, append_images=[line(90)], compression="tiff_adobe_deflate")
    data = bytearray(buffer.getvalue())
    if break_page_two:
        with Image.open(io.BytesIO(bytes(data))) as image:
            image.seek(1)
            [offset], [length] = image.tag_v2[273], image.tag_v2[279]
        data[offset : offset + length] = b"\xff" * length
    return bytes(data)


def animated_gif() -> bytes:
    buffer = io.BytesIO()
    line(20).save(buffer, format="GIF", save_all=True, append_images=[line(90)], duration=100, loop=0)
    return buffer.getvalue()


def animated_png() -> bytes:
    buffer = io.BytesIO()
    line(20).save(buffer, format="PNG", save_all=True, append_images=[line(90)], duration=100)
    return buffer.getvalue()


MULTI_FRAME = {
    "two-page.tif": two_page_tiff,
    "broken-page-two.tif": lambda: two_page_tiff(break_page_two=True),
    "animated.gif": animated_gif,
    "animated.png": animated_png,
}


def test_the_broken_second_page_is_really_broken():
    with Image.open(io.BytesIO(two_page_tiff(break_page_two=True))) as image:
        image.load()
        image.seek(1)
        with pytest.raises(OSError):
            image.load()


@pytest.mark.parametrize("name", MULTI_FRAME)
def test_multi_frame_image_is_rejected_with_its_own_reason(name, tmp_path):
    sample = TrainingSample(id="multi", image_path=name, image_bytes=MULTI_FRAME[name](), ground_truth="Zeile")
    report = validate([sample])
    assert not report.accepted
    [error] = report.rejected
    assert "holds 2 frames" in error.problem
    assert "a line image must be a single frame" in error.problem
    assert "of its own" in error.fix


def test_multi_frame_images_are_listed_as_rejected_and_not_exported(tmp_path):
    samples = [
        TrainingSample(id=name, image_path=name, image_bytes=make(), ground_truth="Zeile")
        for name, make in MULTI_FRAME.items()
    ]
    buffer = io.BytesIO()
    line(40).save(buffer, format="PNG")
    samples.append(
        TrainingSample(id="single", image_path="single.png", image_bytes=buffer.getvalue(), ground_truth="Zeile")
    )
    result = export(samples, "trocr", batch_id="b1", output_dir=tmp_path, skip_invalid=True, progress=False)
    batch = Path(result.export_path)
    assert pq.read_table(batch / "data" / "train-00000-of-00001.parquet").column("id").to_pylist() == ["single"]
    rejected = [json.loads(line) for line in (batch / "rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(record["id"] for record in rejected) == sorted(MULTI_FRAME)
    assert all("holds 2 frames" in record["problem"] for record in rejected)


def test_line_on_a_multi_page_tiff_page_image_is_rejected_with_its_own_reason(tmp_path):
    buffer = io.BytesIO()
    page = Image.new("L", (WIDTH, HEIGHT), 230)
    page.save(buffer, format="TIFF", save_all=True, append_images=[Image.new("L", (WIDTH, HEIGHT), 90)])
    (tmp_path / "pages.tif").write_bytes(buffer.getvalue())
    xml = write_page_xml(tmp_path / "pages.xml", "pages.tif", "0,0 100,0 100,30 0,30")
    report = validate(list(read_samples(xml, "page")))
    [error] = report.rejected
    assert "page image pages.tif holds 2 frames" in error.problem and "of its own" in error.fix


def test_single_frame_gif_and_tiff_are_accepted():
    samples = []
    for image_format, suffix in (("GIF", "gif"), ("TIFF", "tif")):
        buffer = io.BytesIO()
        line(30).save(buffer, format=image_format)
        samples.append(
            TrainingSample(id=suffix, image_path=f"line.{suffix}", image_bytes=buffer.getvalue(), ground_truth=suffix)
        )
    report = validate(samples)
    assert not report.rejected and len(report.accepted) == 2


# --- only regular files ---------------------------------------------------------------------------

# Run in a child process with a time limit, so a regression (waiting on a pipe, or reading
# /dev/zero) fails instead of hanging the suite, and with an address-space limit, so reading
# /dev/zero ends in a MemoryError instead of taking the machine's memory.
NON_REGULAR_SCRIPT = textwrap.dedent(
    """
    import io, json, resource, sys
    from pathlib import Path
    from PIL import Image
    from ocr_datasets import TrainingSample, export
    from ocr_datasets.sources.crop import CroppedSample

    with open("/proc/self/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (used + 1024**3, resource.getrlimit(resource.RLIMIT_AS)[1]))

    fifo, output = sys.argv[1:]
    buffer = io.BytesIO()
    Image.new("L", (60, 20), 200).save(buffer, format="PNG")
    samples = [
        TrainingSample(id="fifo", image_path=fifo, ground_truth="Zeile"),
        TrainingSample(id="zero", image_path="/dev/zero", ground_truth="Zeile"),
        CroppedSample(
            id="fifo-page",
            image_path="fifo-page.png",
            ground_truth="Zeile",
            page_image=fifo,
            polygon=((0, 0), (50, 0), (50, 20), (0, 20)),
        ),
        TrainingSample(id="plain", image_path="plain.png", image_bytes=buffer.getvalue(), ground_truth="Zeile"),
    ]
    result = export(samples, "generic", batch_id="b1", output_dir=output, skip_invalid=True, progress=False, num_proc=1)
    print((Path(result.export_path) / "rejected.jsonl").read_text(encoding="utf-8"), end="")
    """
)


@pytest.mark.skipif(
    not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="needs named pipes and /dev/zero"
)
def test_named_pipes_and_devices_are_rejected_without_being_read(tmp_path):
    fifo = tmp_path / "jane.doe-line.png"
    os.mkfifo(fifo)
    try:
        run = subprocess.run(
            [sys.executable, "-c", NON_REGULAR_SCRIPT, str(fifo), str(tmp_path / "out")],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the export waited on a named pipe")
    assert run.returncode == 0, run.stderr[-3000:]
    rejected = {record["id"]: record for record in map(json.loads, filter(None, run.stdout.splitlines()))}
    assert set(rejected) == {"fifo", "zero", "fifo-page"}
    assert "named pipe" in rejected["fifo"]["problem"] and "jane.doe-line.png" in rejected["fifo"]["problem"]
    assert "device" in rejected["zero"]["problem"] and "zero" in rejected["zero"]["problem"]
    assert "page image" in rejected["fifo-page"]["problem"] and "named pipe" in rejected["fifo-page"]["problem"]
    assert str(tmp_path) not in run.stdout
