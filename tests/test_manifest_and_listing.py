"""The batch folder's manifest and card, its privacy, and how batches are listed."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import datetime
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from ocr_datasets import TrainingSample, ValidationError, export, list_exports, read_manifest
from ocr_datasets.adapters import FORMAT_NAMES, get_adapter
from ocr_datasets.example import example_samples, write_example_manifest

FORMATS = FORMAT_NAMES
ORIGINAL_KEYS = {"format", "version", "batch_id", "sample_count", "created_at", "files", "model_config"}
ADDED_KEYS = {"counts", "splits", "options", "library_versions", "checksums", "config_name", "fingerprint"}
# A folder name that must never leave the machine, were it to travel with the data.
PRIVATE_FOLDER = "Akte-Mueller-vertraulich"


@pytest.fixture
def source_manifest(tmp_path) -> Path:
    return write_example_manifest(tmp_path / PRIVATE_FOLDER / "input", count=12)


def export_batch(source_manifest: Path, export_format: str, root: Path, **options) -> Path:
    result = export(
        read_manifest(source_manifest), export_format, batch_id="b1", output_dir=root, progress=False, **options
    )
    return Path(result.export_path)


def few_samples(count: int = 3) -> list[TrainingSample]:
    return list(example_samples(count))


def batch_files(batch: Path) -> dict[str, Path]:
    return {path.relative_to(batch).as_posix(): path for path in batch.rglob("*") if path.is_file()}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def parquet_text(path: Path) -> str:
    """Every string a parquet file holds, decompressed: cell values (image bytes left out) and
    file metadata. Grepping the raw bytes alone would miss text inside compressed pages."""
    parquet = pq.ParquetFile(path)

    def strings(value):
        if isinstance(value, dict):
            return [text for item in value.values() for text in strings(item)]
        if isinstance(value, list):
            return [text for item in value for text in strings(item)]
        return [value] if isinstance(value, str) else []

    metadata = {
        key.decode(errors="replace"): value.decode(errors="replace")
        for key, value in (parquet.schema_arrow.metadata or {}).items()
    }
    return "\n".join(strings(parquet.read().to_pylist()) + strings(metadata))


def card_front_matter(batch: Path) -> dict:
    card = (batch / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", card, re.DOTALL)
    assert match, "README.md has no YAML front matter"
    return yaml.safe_load(match.group(1))


@pytest.mark.parametrize("export_format", FORMATS)
def test_manifest_has_the_original_keys_and_what_a_careful_user_checks(export_format, source_manifest, tmp_path):
    batch = export_batch(source_manifest, export_format, tmp_path / "exports")
    manifest = read_json(batch / "manifest.json")

    assert ORIGINAL_KEYS | ADDED_KEYS <= set(manifest)
    assert (manifest["format"], manifest["batch_id"], manifest["sample_count"]) == (export_format, "b1", 12)
    assert isinstance(manifest["version"], str) and manifest["version"]
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    assert manifest["files"] == sorted(manifest["checksums"])
    assert isinstance(manifest["model_config"], dict)
    assert manifest["counts"] == {"input": 12, "exported": 12, "rejected": 0, "duplicates": 0}
    assert manifest["splits"] == {"train": 12}
    assert manifest["options"]["copy_images"] is True and manifest["options"]["include_base64"] is False
    assert manifest["library_versions"]["datasets"] == datasets.__version__
    assert "b1" in manifest["config_name"]
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["fingerprint"])


@pytest.mark.parametrize("export_format", FORMATS)
def test_manifest_lists_every_file_with_its_true_sha256_and_size(export_format, source_manifest, tmp_path):
    batch = export_batch(source_manifest, export_format, tmp_path / "exports")
    manifest = read_json(batch / "manifest.json")
    on_disk = batch_files(batch)
    del on_disk["manifest.json"]

    assert set(manifest["checksums"]) == set(on_disk)
    assert set(manifest["files"]) == set(on_disk)
    for name, path in on_disk.items():
        data = path.read_bytes()
        assert manifest["checksums"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}, name


@pytest.mark.parametrize("include_base64", [False, True], ids=["plain", "base64"])
@pytest.mark.parametrize("export_format", FORMATS)
def test_no_file_of_the_batch_names_a_source_or_absolute_folder(
    export_format, include_base64, source_manifest, tmp_path
):
    batch = export_batch(source_manifest, export_format, tmp_path / "exports", include_base64=include_base64)
    forbidden = [str(source_manifest.parent), PRIVATE_FOLDER, str(tmp_path)]
    for name, path in batch_files(batch).items():
        data = path.read_bytes()
        texts = [data.decode("utf-8", errors="replace")] + ([parquet_text(path)] if path.suffix == ".parquet" else [])
        for text in texts:
            for secret in forbidden:
                assert secret not in text, f"{secret!r} appears in {name}"


@pytest.mark.parametrize("export_format", FORMATS)
def test_card_front_matter_has_one_default_config_whose_data_files_exist(export_format, source_manifest, tmp_path):
    batch = export_batch(source_manifest, export_format, tmp_path / "exports")
    configs = card_front_matter(batch)["configs"]

    [default] = [config for config in configs if config.get("default") is True]
    assert default["config_name"] == read_json(batch / "manifest.json")["config_name"]
    assert [split["split"] for split in default["data_files"]] == ["train"]
    for split in default["data_files"]:
        paths = split["path"] if isinstance(split["path"], list) else [split["path"]]
        assert paths
        for path in paths:
            assert not Path(path).is_absolute() and ".." not in Path(path).parts
            assert (batch / path).is_file(), path
            assert pq.ParquetFile(batch / path).metadata.num_rows == 12


def test_list_exports_is_newest_first_and_filters_by_format(tmp_path):
    root = tmp_path / "exports"
    first = export(few_samples(), "trocr", "t1", root, progress=False)
    second = export(few_samples(), "generic", "g1", root, progress=False)
    third = export(few_samples(), "trocr", "t2", root, progress=False)

    assert list_exports(output_dir=root) == [third, second, first]
    assert list_exports("trocr", output_dir=root) == [third, first]
    assert list_exports("generic", output_dir=root) == [second]
    assert list_exports("llama_vision", output_dir=root) == []


@pytest.mark.parametrize("hidden_name", [".x.partial", ".b1.replaced-4242", ".anything"])
def test_list_exports_ignores_hidden_staging_folders(hidden_name, tmp_path):
    root = tmp_path / "exports"
    real = export(few_samples(), "trocr", "b1", root, progress=False)
    # A complete-looking manifest, newer than the real batch, in a folder that is not a batch.
    hidden = root / "trocr" / hidden_name
    shutil.copytree(Path(real.export_path), hidden)
    manifest = read_json(hidden / "manifest.json")
    (hidden / "manifest.json").write_text(
        json.dumps({**manifest, "batch_id": "ghost", "created_at": "2999-01-01T00:00:00+00:00"}), encoding="utf-8"
    )

    assert list_exports(output_dir=root) == [real]


def test_a_batch_id_export_accepts_is_listed(tmp_path):
    root = tmp_path / "exports"
    try:
        result = export(few_samples(), "trocr", "run.partial", root, progress=False)
    except ValueError:
        return  # Refusing the id up front is as good as listing it.
    assert list_exports(output_dir=root) == [result]


@pytest.mark.parametrize("layout", ["missing", "empty", "empty-format-folders"])
def test_list_exports_of_a_root_without_batches_is_empty(layout, tmp_path):
    root = tmp_path / "exports"
    if layout != "missing":
        root.mkdir()
    if layout == "empty-format-folders":
        for folder in (get_adapter(name).folder for name in FORMAT_NAMES):
            (root / folder).mkdir()
    assert list_exports(output_dir=root) == []
    assert list_exports("trocr", output_dir=root) == []


@pytest.mark.parametrize("export_format", FORMATS)
def test_export_leaves_only_the_batch_in_the_format_folder(export_format, source_manifest, tmp_path):
    root = tmp_path / "exports"
    batch = export_batch(source_manifest, export_format, root)
    # Beside the format folder only the verdict cache, which holds nothing but verdicts.
    assert sorted(path.name for path in root.iterdir()) == sorted([".ocr-datasets", batch.parent.name])
    assert all(path.name.startswith("verdicts.sqlite") for path in (root / ".ocr-datasets").iterdir())
    assert [path.name for path in batch.parent.iterdir()] == ["b1"]
    leftovers = [name for name in batch_files(batch) if name.startswith(".") or "/." in name or name.endswith(".lock")]
    assert leftovers == []


def test_failed_export_leaves_no_staging_folder(tmp_path):
    root = tmp_path / "exports"
    broken = TrainingSample(id="lost", image_path=tmp_path / "gone.png", ground_truth="Straße")
    with pytest.raises(ValidationError, match=r"'lost'.*gone\.png"):
        export([*few_samples(), broken], "trocr", "b1", root, progress=False)
    assert [path for path in root.rglob("*")] in ([], [root / "trocr"])


@pytest.mark.parametrize("content", ['{"format": "trocr"', '{"format": "trocr"}'], ids=["invalid-json", "keys-missing"])
def test_a_broken_manifest_is_skipped_with_a_warning_naming_it(content, tmp_path):
    root = tmp_path / "exports"
    good = export(few_samples(), "trocr", "good", root, progress=False)
    broken = root / "trocr" / "broken" / "manifest.json"
    broken.parent.mkdir()
    broken.write_text(content, encoding="utf-8")
    with pytest.warns(UserWarning, match="broken"):
        assert list_exports(output_dir=root) == [good]
