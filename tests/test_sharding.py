"""Batches in several parquet shards read back whole: by datasets (also streaming), by pyarrow.dataset
(the way Spark and Dask read the same files) and by Ray Data."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pyarrow.dataset
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from support.data import LINE_GT_LINES, batch_files, line_gt_samples

from ocr_datasets import export, verify_batch


@pytest.fixture(scope="module")
def sharded_batch(line_gt_copy, tmp_path_factory):
    lines = line_gt_samples(line_gt_copy)
    # Over a thousand rows: datasets starts a new shard between its tables of 1,000 rows.
    samples = [
        dataclasses.replace(sample, id=f"{copy}-{sample.id}")
        for copy in range(-(-1100 // LINE_GT_LINES))
        for sample in lines
    ]
    root = tmp_path_factory.mktemp("sharded")
    result = export(
        samples,
        "trocr",
        batch_id="b1",
        output_dir=root,
        copy_images=False,
        keep_duplicates=True,
        max_shard_size="1MB",
        progress=False,
    )
    return Path(result.export_path), [sample.id for sample in samples]


def test_a_small_shard_size_gives_several_named_shards_that_verify(sharded_batch):
    batch, _ = sharded_batch
    shards = sorted(path.name for path in (batch / "data").iterdir())
    assert len(shards) >= 2
    assert shards == [f"train-{number:05d}-of-{len(shards):05d}.parquet" for number in range(len(shards))]
    assert verify_batch(batch) == []
    # Row groups of a hundred rows: a streaming reader starts after one small group, not a whole shard.
    metadata = pq.ParquetFile(batch / "data" / shards[0]).metadata
    assert metadata.num_row_groups > 1 and metadata.row_group(0).num_rows <= 100


def test_pyarrow_dataset_reads_every_row_in_order(sharded_batch):
    batch, ids = sharded_batch
    table = pyarrow.dataset.dataset(batch / "data", format="parquet").to_table(columns=["id", "text"])
    assert table.column("id").to_pylist() == ids


def test_streaming_load_reads_every_row_in_order(sharded_batch, tmp_path):
    batch, ids = sharded_batch
    stream = load_dataset(str(batch), split="train", streaming=True, cache_dir=str(tmp_path / "cache"))
    first = next(iter(stream))
    assert first["id"] == ids[0] and first["image"].size[0] > 0
    assert [row["id"] for row in stream.select_columns(["id"])] == ids


@pytest.mark.slow  # starts a local Ray instance (~4 s)
def test_ray_data_reads_every_row_in_order_with_the_images(sharded_batch, refuse_network):
    # The line of docs/formats.md ("Beyond one machine"), on a local instance as --engine ray
    # starts one (see tests/test_ray_engine.py).
    ray = pytest.importorskip("ray")
    from ocr_datasets.ray_engine import RayEngine

    batch, ids = sharded_batch
    with tempfile.TemporaryDirectory(prefix="ray-") as session, RayEngine(num_cpus=2).tasks(Path(session)):
        # Ray Data hands rows on as its tasks finish them, unless asked to keep their order.
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        rows = ray.data.read_parquet(str(batch / "data")).take_all()
    assert [row["id"] for row in rows] == ids
    reference = pq.read_table(batch / "data", columns=["image"]).column("image").to_pylist()
    assert [row["image"]["bytes"] for row in rows] == [cell["bytes"] for cell in reference]
    assert refuse_network == []


@pytest.mark.slow
def test_an_export_with_worker_processes_writes_the_very_files_of_a_serial_one(line_gt_copy, tmp_path):
    lines = line_gt_samples(line_gt_copy)
    # Over a thousand lines, so validation decodes them in two worker processes.
    samples = [
        dataclasses.replace(sample, id=f"{copy}-{sample.id}")
        for copy in range(-(-1100 // LINE_GT_LINES))
        for sample in lines
    ]
    options = {"keep_duplicates": True, "progress": False, "split": "train=0.8,test=0.2"}
    serial = export(samples, "trocr", batch_id="serial", output_dir=tmp_path, num_proc=1, **options)
    parallel = export(samples, "trocr", batch_id="parallel", output_dir=tmp_path, num_proc=2, **options)
    by_default = export(samples, "trocr", batch_id="default", output_dir=tmp_path, **options)

    assert batch_files(parallel) == batch_files(serial) == batch_files(by_default)
    assert len([name for name in batch_files(serial) if name.startswith("data/")]) == 2
    assert (
        parallel.read_manifest()["fingerprint"]
        == serial.read_manifest()["fingerprint"]
        == by_default.read_manifest()["fingerprint"]
    )


@pytest.mark.parametrize("num_proc", [0, -1, 1.5, True])
def test_export_refuses_a_num_proc_that_is_not_a_count_of_processes_before_writing(num_proc, line_gt_copy, tmp_path):
    with pytest.raises(ValueError, match="num_proc"):
        export(
            line_gt_samples(line_gt_copy)[:3],
            "trocr",
            output_dir=tmp_path / "exports",
            num_proc=num_proc,
            progress=False,
        )
    assert not (tmp_path / "exports").exists()
