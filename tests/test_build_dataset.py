"""build_dataset: an Arrow-backed Dataset with embedded image bytes, rebuilt only when the samples change."""

from __future__ import annotations

import shutil
from io import BytesIO

from datasets import Dataset, Image, load_from_disk
from PIL import Image as PILImage

from ocr_datasets import TrainingSample, build_dataset, read_manifest
from ocr_datasets.canonical import CANONICAL_FEATURES


def test_features_and_embedded_bytes(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    dataset = build_dataset(samples, cache_dir=tmp_path / "cache")

    assert isinstance(dataset, Dataset)
    assert dataset.features == CANONICAL_FEATURES.to_datasets()
    assert isinstance(dataset.features["image"], Image)
    raw = dataset.cast_column("image", Image(decode=False))
    assert [row["bytes"] for row in raw["image"]] == [sample.image_path.read_bytes() for sample in samples]
    # The stored name is derived from the id: no source folder travels with the data.
    assert [row["path"] for row in raw["image"]] == [f"{sample.id}.png" for sample in samples]
    assert dataset.cache_files and all(str(tmp_path / "cache") in entry["filename"] for entry in dataset.cache_files)


def test_save_to_disk_survives_the_sources_moving_away(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    pixels = [PILImage.open(sample.image_path).tobytes() for sample in samples]
    build_dataset(samples, cache_dir=tmp_path / "cache").save_to_disk(tmp_path / "saved")
    shutil.rmtree(example_manifest.parent)
    shutil.rmtree(tmp_path / "cache")

    reloaded = load_from_disk(str(tmp_path / "saved"))
    assert reloaded["id"] == [sample.id for sample in samples]
    assert [image.tobytes() for image in reloaded["image"]] == pixels


def test_same_samples_reuse_the_build_and_changed_ones_rebuild(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    first = build_dataset(samples, cache_dir=tmp_path / "cache")
    again = build_dataset(samples, cache_dir=tmp_path / "cache")
    assert again.cache_files == first.cache_files

    samples[0].ground_truth = "Geänderter Text"
    changed = build_dataset(samples, cache_dir=tmp_path / "cache")
    assert changed[0]["ground_truth"] == "Geänderter Text"
    assert changed.cache_files != first.cache_files


def test_in_memory_images_need_no_file(tmp_path):
    buffer = BytesIO()
    PILImage.new("L", (30, 10), color=200).save(buffer, format="PNG")
    sample = TrainingSample(
        id="a/b", image_path=None, image_bytes=buffer.getvalue(), ground_truth="Grüße", metadata={"page": 2}
    )
    dataset = build_dataset([sample], cache_dir=tmp_path / "cache")
    assert dataset[0]["image"].size == (30, 10)
    assert dataset[0]["id"] == "a/b"
    assert dataset[0]["metadata"] == '{"page": 2}'
