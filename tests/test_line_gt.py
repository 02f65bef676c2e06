"""The line-gt format: per split a folder of ``<name>.png`` + ``<name>.gt.txt`` + ``<name>.json``,
read back by this project's own gt-folder reader and checked against what tesstrain, kraken
(``ketos train -f path``) and Calamari document and do with such a folder."""

from __future__ import annotations

import io
import json
import unicodedata
from pathlib import Path

import datasets
import pytest
from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo
from support.data import LINE_GT_LINES, line_png

from ocr_datasets import TrainingSample, export, read_samples, verify_batch
from ocr_datasets.errors import OptionError
from ocr_datasets.verify import read_batch_manifest

SPLIT = {"train": 0.8, "validation": 0.2}
# Metadata Pillow reports for a PNG that carries any (text chunks, EXIF, ICC, resolution, time).
PNG_METADATA_KEYS = {"exif", "icc_profile", "dpi", "XML:com.adobe.xmp", "Description", "Software", "Author"}


@pytest.fixture(scope="module")
def fraktur_batch(line_gt_copy, tmp_path_factory) -> Path:
    """The 114 real Fraktur lines (TIFF, with .yml metadata), read as a gt-folder and exported as line-gt."""
    root = tmp_path_factory.mktemp("line-gt")
    result = export(read_samples(line_gt_copy, "gt-folder"), "line_gt", "b1", root, split=SPLIT, progress=False)
    return Path(result.export_path)


def pixels(image: Image.Image) -> tuple:
    return image.mode, image.size, image.tobytes()


def file_pixels(path: Path) -> tuple:
    with Image.open(path) as image:
        return pixels(image)


def kraken_text_file(image: Path) -> Path:
    # kraken.lib.functional_im_transforms.default_split, then suffix_split with ".gt.txt": every
    # suffix of the image path is stripped (ketos train/compile -f path).
    while image.suffixes:
        image = image.with_suffix("")
    return image.with_name(image.name + ".gt.txt")


def calamari_text_file(image: Path) -> Path:
    # calamari_ocr.utils.path.split_all_ext: "everything after the first dot is the extension".
    return image.with_name(image.name.partition(".")[0] + ".gt.txt")


def test_the_gt_folder_reader_reads_back_the_same_ids_texts_and_pixels(fraktur_batch, line_gt_copy):
    source = {sample.id: sample for sample in read_samples(line_gt_copy, "gt-folder")}
    manifest = read_batch_manifest(fraktur_batch)
    read_back: dict[str, TrainingSample] = {}
    for split, count in manifest["splits"].items():
        samples = list(read_samples(fraktur_batch / split, "gt-folder"))
        assert len(samples) == count > 0
        read_back |= {sample.id: sample for sample in samples}
    assert sorted(read_back) == sorted(source) and len(source) == LINE_GT_LINES
    for line_id, sample in read_back.items():
        assert sample.ground_truth == unicodedata.normalize("NFC", source[line_id].ground_truth)
        assert file_pixels(Path(sample.image_path)) == file_pixels(Path(source[line_id].image_path))
        # The source's .yml metadata travels in the line's .json, with the id and OCR fields.
        assert sample.metadata == {
            "id": line_id,
            "ocr_text": None,
            "ocr_confidence": None,
            "metadata": source[line_id].metadata,
        }


def test_every_line_is_a_png_and_one_line_of_text_as_tesstrain_kraken_and_calamari_pair_them(fraktur_batch):
    for split in SPLIT:
        folder = fraktur_batch / split
        texts = sorted(folder.glob("*.gt.txt"))
        images = sorted(folder.glob("*.png"))
        assert len(texts) == len(images) == len(list(folder.glob("*.json"))) > 0
        assert {path.name for path in folder.iterdir()} == {
            path.name for image in images for path in (image, image.with_suffix(".gt.txt"), image.with_suffix(".json"))
        }
        for image in images:
            # tesstrain's Makefile: %.box from %.png and %.gt.txt; kraken and Calamari strip suffixes.
            text_file = image.with_suffix(".gt.txt")
            assert kraken_text_file(image) == calamari_text_file(image) == text_file
            raw = text_file.read_bytes()
            text = raw.decode("utf-8")
            # One line with its newline (tesstrain's generate_line_box.py raises on more than one).
            assert text.endswith("\n") and text.count("\n") == 1 and "\r" not in text
            assert text == unicodedata.normalize("NFC", text) and text.strip() == text[:-1] != ""
            with Image.open(image) as opened:
                assert opened.format == "PNG" and not PNG_METADATA_KEYS & set(opened.info)


def test_line_files_hold_no_source_path_and_the_metadata_in_the_manifests_field_names(fraktur_batch, line_gt_copy):
    for path in (fraktur_batch / "train").glob("*.json"):
        record = json.loads(path.read_text(encoding="utf-8"))
        assert set(record) == {"id", "ocr_text", "ocr_confidence", "metadata"}
        assert record["id"] == path.name.removesuffix(".json")
    source_folder = str(line_gt_copy).encode()
    for path in fraktur_batch.rglob("*"):
        if path.is_file():
            assert source_folder not in path.read_bytes(), path


def test_the_batch_loads_with_datasets_holds_the_same_pngs_and_verifies(fraktur_batch, tmp_path):
    manifest = read_batch_manifest(fraktur_batch)
    for split, count in manifest["splits"].items():
        rows = datasets.load_dataset(str(fraktur_batch), split=split, cache_dir=str(tmp_path / "cache"))
        rows = rows.cast_column("image", datasets.Image(decode=False))
        assert len(rows) == count
        for row in rows:
            line = fraktur_batch / split / row["image"]["path"]
            assert row["image"]["bytes"] == line.read_bytes()
            assert line.with_suffix(".gt.txt").read_text(encoding="utf-8") == row["ground_truth"] + "\n"
    every_line_file = {
        path.relative_to(fraktur_batch).as_posix() for split in SPLIT for path in (fraktur_batch / split).iterdir()
    }
    assert every_line_file <= set(manifest["checksums"])
    assert verify_batch(fraktur_batch) == []


def test_verify_finds_a_line_removed_from_its_folder(tmp_path, example_manifest):
    result = export(read_samples(example_manifest), "line_gt", "b1", tmp_path, progress=False)
    batch = Path(result.export_path)
    removed = next((batch / "train").glob("*.gt.txt"))
    removed.unlink()
    problems = verify_batch(batch)
    assert f"train/{removed.name}: listed in the manifest but missing" in problems
    assert "train/: 11 .gt.txt lines, manifest says 12" in problems


def test_ids_that_are_no_safe_file_name_get_one_without_dots_that_stays_unique(tmp_path):
    ids = ["brief.1843.zeile", "Brief.1843.Zeile", "a/b c", "CON", "zeile-ä"]
    samples = [
        TrainingSample(id=sample_id, image_path=f"{n}.png", ground_truth=f"Zeile {n}", image_bytes=line_png(n))
        for n, sample_id in enumerate(ids)
    ]
    batch = Path(export(samples, "line_gt", "b1", tmp_path, progress=False).export_path)
    images = sorted((batch / "train").glob("*.png"))
    names = [image.name.removesuffix(".png") for image in images]
    assert len({name.casefold() for name in names}) == len(ids)
    for name in names:
        assert "." not in name and name.isascii() and name.upper() != "CON"
    by_id = {}
    for image in images:
        record = json.loads(image.with_suffix(".json").read_text(encoding="utf-8"))
        by_id[record["id"]] = image
    assert sorted(by_id) == sorted(ids)
    for n, sample_id in enumerate(ids):
        assert by_id[sample_id].with_suffix(".gt.txt").read_text(encoding="utf-8") == f"Zeile {n}\n"
        assert file_pixels(by_id[sample_id]) == pixels(Image.open(io.BytesIO(line_png(n))))


def test_an_image_kept_with_its_orientation_tag_is_turned_in_its_png(tmp_path):
    image = Image.new("RGB", (30, 10), "white")
    image.putpixel((1, 1), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # turn a quarter clockwise for display
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    sample = TrainingSample(id="turned", image_path="turned.png", ground_truth="Zeile", image_bytes=buffer.getvalue())
    batch = Path(export([sample], "line_gt", "b1", tmp_path, keep_image_metadata=True, progress=False).export_path)
    with Image.open(io.BytesIO(buffer.getvalue())) as original:
        expected = pixels(ImageOps.exif_transpose(original))
    assert file_pixels(batch / "train" / "turned.png") == expected
    assert expected[1] == (10, 30)


def test_a_png_without_metadata_keeps_its_bytes_and_one_with_metadata_loses_only_that(tmp_path):
    with_text = io.BytesIO()
    info = PngInfo()
    info.add_text("Author", "Schreiberin")
    Image.open(io.BytesIO(line_png(7))).save(with_text, format="PNG", pnginfo=info)
    samples = [
        TrainingSample(id="clean", image_path="clean.png", ground_truth="Zeile", image_bytes=line_png(3)),
        TrainingSample(id="authored", image_path="a.png", ground_truth="Zeile", image_bytes=with_text.getvalue()),
    ]
    batch = Path(export(samples, "line_gt", "b1", tmp_path, keep_image_metadata=True, progress=False).export_path)
    assert (batch / "train" / "clean.png").read_bytes() == line_png(3)
    with Image.open(batch / "train" / "authored.png") as image:
        assert "Author" not in image.info and pixels(image) == pixels(Image.open(io.BytesIO(line_png(7))))


def test_a_split_named_like_a_folder_of_the_batch_is_refused_before_anything_is_written(tmp_path, example_manifest):
    with pytest.raises(OptionError, match=r"split name 'Data'.*--split"):
        export(read_samples(example_manifest), "line_gt", "b1", tmp_path, split={"train": 0.5, "Data": 0.5})
    assert not (tmp_path / "line-gt").exists()
