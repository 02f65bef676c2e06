"""What was validated is what is written: an export reads each image once, so an image that
changes after validation leaves the batch holding the bytes that were checked; build_dataset,
which reads images again, refuses a changed one, and its cache follows image content, not file
dates."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import Image as ImageFeature
from PIL import Image

from ocr_datasets import (
    SampleError,
    TrainingSample,
    build_dataset,
    export,
    export_all,
    read_manifest,
    verify_batch,
)
from ocr_datasets.sources import CropOptions, CroppedSample
from ocr_datasets.validation import _WINDOW as VALIDATION_WINDOW


def replaced_after_the_last(
    samples: Iterable[TrainingSample], image: Path, new_bytes: bytes
) -> Iterator[TrainingSample]:
    """The samples, a window's worth of identical filler lines, then ``image`` replaced.

    Validation reads its input a window at a time and checks each window before reading the
    next, and reads to the end before anything is built: with more than a window of input, the
    replacement lands after ``image`` was validated and before the writer reads it. (The
    fillers are exported once, the rest listed as duplicates.)"""
    yield from samples
    filler = image.with_name("filler.png")
    filler.write_bytes(png((40, 12), shade=90))
    yield from (
        TrainingSample(id=f"filler-{number}", image_path=filler, ground_truth="Füllzeile")
        for number in range(VALIDATION_WINDOW)
    )
    image.write_bytes(new_bytes)


def png(size: tuple[int, int], shade: int) -> bytes:
    buffer = io.BytesIO()
    picture = Image.new("L", size, shade)
    picture.paste(255 - shade, (2, 2, size[0] // 2, size[1] - 2))
    # Uncompressed, so two pictures of one size are files of one size.
    picture.save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


@pytest.mark.parametrize("replacement", ["truncated", "another picture"])
def test_an_image_replaced_after_validation_is_exported_as_it_was_validated(replacement, example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    victim = samples[5]
    original = victim.image_path.read_bytes()
    new_bytes = original[: len(original) // 2] if replacement == "truncated" else samples[0].image_path.read_bytes()
    root = tmp_path / "exports"

    results = export_all(
        replaced_after_the_last(samples, victim.image_path, new_bytes),
        batch_id="b1",
        output_dir=root,
        progress=False,
        num_proc=1,
    )

    assert victim.image_path.read_bytes() == new_bytes
    for result in results:
        assert verify_batch(result.export_path) == []
        exported = {
            row["id"]: row
            for path in sorted(Path(result.export_path, "data").glob("*.parquet"))
            for row in pq.read_table(path).to_pylist()
        }
        cell = exported[victim.id].get("image") or exported[victim.id]["images"][0]
        assert cell["bytes"] == original


def test_build_dataset_refuses_an_image_replaced_after_validation(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    victim = samples[2]
    with pytest.raises(SampleError, match="changed after validation"):
        build_dataset(
            replaced_after_the_last(samples, victim.image_path, samples[3].image_path.read_bytes()),
            cache_dir=tmp_path / "cache",
            num_proc=1,
        )


def gradient_page(path: Path, reverse: bool = False) -> Path:
    page = Image.linear_gradient("L").resize((300, 200))
    (page.transpose(Image.Transpose.FLIP_TOP_BOTTOM) if reverse else page).convert("RGB").save(path)
    return path


def page_lines(page: Path) -> list[CroppedSample]:
    return [
        CroppedSample(
            id=f"line-{number}",
            image_path=f"line-{number}.png",
            ground_truth=f"Zeile {number}",
            page_image=page,
            polygon=((10, 10 + 40 * number), (280, 10 + 40 * number), (280, 40 + 40 * number), (10, 40 + 40 * number)),
            crop=CropOptions(padding=2, mask_outside=True),
        )
        for number in range(4)
    ]


def test_page_crops_are_cut_the_same_way_for_validation_and_for_the_batch(tmp_path):
    lines = page_lines(gradient_page(tmp_path / "page.png"))
    [result] = [export(lines, "generic", batch_id="crops", output_dir=tmp_path / "exports", progress=False, num_proc=1)]
    images = sorted((Path(result.export_path) / "images").iterdir())
    assert [image.read_bytes() for image in images] == [line.read_image_bytes() for line in lines]


def test_a_page_replaced_after_validation_leaves_the_lines_as_they_were_cut_and_checked(tmp_path):
    page = gradient_page(tmp_path / "page.png")
    lines = page_lines(page)
    checked = [line.read_image_bytes() for line in lines]
    flipped = gradient_page(tmp_path / "flipped.png", reverse=True).read_bytes()
    result = export(
        replaced_after_the_last(lines, page, flipped),
        "trocr",
        batch_id="b1",
        output_dir=tmp_path / "exports",
        progress=False,
        num_proc=1,
    )
    assert lines[0].read_image_bytes() != checked[0]
    images = {path.stem: path.read_bytes() for path in (Path(result.export_path) / "images").iterdir()}
    assert [images[line.id] for line in lines] == checked


def test_build_dataset_sees_an_image_rewritten_with_the_same_size_and_modification_time(tmp_path):
    # cp -p and rsync -a leave a changed file with its old size and modification time.
    image = tmp_path / "line.png"
    image.write_bytes(png((60, 20), shade=40))
    sample = TrainingSample(id="line", image_path=image, ground_truth="Zeile")
    first = build_dataset([sample], cache_dir=tmp_path / "cache", progress=False)
    assert first[0]["image"].getpixel((0, 0)) == 40

    before = image.stat()
    image.write_bytes(png((60, 20), shade=200))
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = image.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    rebuilt = build_dataset([sample], cache_dir=tmp_path / "cache", progress=False)
    assert rebuilt[0]["image"].getpixel((0, 0)) == 200
    assert rebuilt.cast_column("image", ImageFeature(decode=False))[0]["image"]["bytes"] == image.read_bytes()
