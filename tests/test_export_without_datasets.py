"""An export does without importing datasets (most of a second of start-up and exit), yet writes
what datasets would: every format's Arrow schema and `huggingface` metadata, its parquet
options, its shard sizes, and progress bars that datasets' switch turns off."""

from __future__ import annotations

import datasets
import numpy
import pytest
from datasets.arrow_writer import get_parquet_column_options
from datasets.utils.py_utils import convert_file_size_to_int
from support.data import run_python

from ocr_datasets import FORMAT_NAMES, export, load_batch, read_manifest
from ocr_datasets.adapters import get_adapter
from ocr_datasets.canonical import CANONICAL_FEATURES
from ocr_datasets.errors import OptionError
from ocr_datasets.options import ExportOptions

FEATURES = {"canonical": CANONICAL_FEATURES} | {name: get_adapter(name).features for name in FORMAT_NAMES}


@pytest.mark.parametrize("name", FEATURES)
def test_the_schema_and_its_metadata_are_those_datasets_makes(name):
    ours = FEATURES[name]
    theirs = datasets.Features.from_dict(ours.to_dict())

    assert theirs.to_dict() == ours.to_dict()
    assert ours.arrow_schema.equals(theirs.arrow_schema, check_metadata=True)
    assert ours.to_datasets() == theirs


@pytest.mark.parametrize("name", FEATURES)
def test_the_parquet_options_are_those_datasets_writes_with(name):
    ours = FEATURES[name]

    assert ours.parquet_column_options == get_parquet_column_options(ours.to_datasets(), ours.arrow_schema)


@pytest.mark.parametrize("export_format", FORMAT_NAMES)
def test_datasets_loads_a_batch_with_the_formats_features(export_format, example_manifest, tmp_path):
    result = export(read_manifest(example_manifest), export_format, output_dir=tmp_path / "out", progress=False)

    loaded = load_batch(result.export_path, cache_dir=tmp_path / "cache")["train"]

    assert loaded.features == get_adapter(export_format).features.to_datasets()


def test_an_export_imports_neither_datasets_nor_the_hub_client(example_manifest, tmp_path):
    # Importing datasets and tearing it down at exit takes 0.7 s, a third of re-exporting 10,000
    # cached lines; huggingface_hub's client 0.14 s more (the card needs only its card data).
    output = run_python(
        f"""
        import sys
        from ocr_datasets import export_all, read_manifest
        export_all(read_manifest({str(example_manifest)!r}), output_dir={str(tmp_path)!r}, progress=False)
        heavy = ("datasets", "huggingface_hub.hf_api", "huggingface_hub.repocard")
        print(*sorted(name for name in heavy if name in sys.modules))
        """
    )
    assert output.split() == []


@pytest.mark.parametrize("size", ["500MB", "2GB", "1MiB", "3GiB", "7KiB", "4096"])
def test_a_shard_size_means_what_it_means_to_datasets(size):
    expected = convert_file_size_to_int(int(size) if size.isdigit() else size)

    assert ExportOptions(max_shard_size=size).max_shard_bytes == expected


def test_a_shard_size_in_lower_case_is_still_bytes():
    # datasets would read "500mb" as megabits (62.5 MB); nobody sizes files in bits.
    assert ExportOptions(max_shard_size="500mb").max_shard_bytes == 500_000_000
    assert ExportOptions(max_shard_size="1 kib").max_shard_bytes == 1024


def test_a_shard_size_given_as_a_numpy_number_is_a_whole_number_of_bytes():
    # numpy's integers are what a size read from a table or computed comes as: the manifest
    # records the option, and JSON holds only Python's.
    options = ExportOptions(max_shard_size=numpy.int64(1000))
    assert options.max_shard_bytes == 1000 and type(options.max_shard_size) is int


@pytest.mark.parametrize("size", [0, -5, "0", "0MB", 2.5, True])
def test_a_shard_size_of_no_bytes_or_of_no_number_is_refused(size):
    with pytest.raises(OptionError, match=r"max_shard_size=.* \(--max-shard-size\): give bytes .* 1 or more"):
        ExportOptions(max_shard_size=size)


def test_progress_bars_follow_datasets_switch(example_manifest, tmp_path, capfd):
    samples = list(read_manifest(example_manifest))
    datasets.disable_progress_bars()
    try:
        export(samples, "trocr", output_dir=tmp_path / "off", progress=True)
    finally:
        datasets.enable_progress_bars()
    assert "Validating samples" not in capfd.readouterr().err

    export(samples, "trocr", output_dir=tmp_path / "on", progress=True)
    assert "Validating samples" in capfd.readouterr().err

    export(samples, "trocr", output_dir=tmp_path / "quiet", progress=False)
    assert "Validating samples" not in capfd.readouterr().err
    assert datasets.is_progress_bar_enabled()
