"""Validation's worker processes spool the rows that pass and write each chunk's files (images,
view lines, line files, projected rows); the main process names the files and writes parquet and
views in chunk order. Whatever the number of processes, the batches are the same files."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.data import line_png

from ocr_datasets import TrainingSample, export_all, validation, verify_batch


def samples() -> list[TrainingSample]:
    lines = [
        TrainingSample(
            id=f"line-{number:03d}",
            image_path=f"line-{number:03d}.png",
            image_bytes=line_png(number),
            ground_truth=f"Zeile  {number}",  # two spaces: rows hold the normalised text
            metadata={"page": number // 10},
        )
        for number in range(300)
    ]
    return [
        *lines,
        # An id that differs from another only in case: its image file gets another name.
        TrainingSample(
            id="LINE-007", image_path="x.png", image_bytes=line_png(1007), ground_truth="Groß", metadata={"page": 0}
        ),
        # A duplicate, dropped.
        TrainingSample(
            id="twin", image_path="twin.png", image_bytes=line_png(5), ground_truth="Zeile 5", metadata={"page": 0}
        ),
    ]


def late_conflict() -> list[TrainingSample]:
    # The first line's image again with another text, long after the first was written: the
    # batch is written again.
    late = TrainingSample(
        id="late", image_path="late.png", image_bytes=line_png(0), ground_truth="anders", metadata={"page": 0}
    )
    return [*samples(), late]


def batch_files(result) -> dict[str, bytes]:
    batch = Path(result.export_path)
    return {
        str(path.relative_to(batch)): path.read_bytes()
        for path in sorted(batch.rglob("*"))
        if path.is_file() and path.name not in ("README.md", "manifest.json")
    }


@pytest.mark.parametrize(
    ("strategy", "source"),
    [("hash", samples), ("balanced", samples), ("hash", late_conflict)],
    ids=["hash", "balanced", "late-conflict"],
)
def test_every_format_written_by_worker_processes_is_the_serial_batch(strategy, source, monkeypatch, tmp_path):
    options = {
        "split": "train=0.6,validation=0.2,test=0.2",
        "group_by": "page",
        "split_strategy": strategy,
        "skip_invalid": True,
        "progress": False,
    }
    serial = export_all(source(), batch_id="serial", output_dir=tmp_path, num_proc=1, **options)
    # A pool even for a few hundred images, and every chunk written by its workers (as when the
    # main process is the busier one).
    monkeypatch.setattr(validation, "_MIN_IMAGES_PER_PROCESS", 1)
    monkeypatch.setattr(validation._TaskWorkers, "busy", lambda self: False)
    pooled = export_all(source(), batch_id="pooled", output_dir=tmp_path, num_proc=2, **options)

    for alone, together in zip(serial, pooled, strict=True):
        files = batch_files(alone)
        assert files == batch_files(together)
        assert alone.read_manifest()["fingerprint"] == together.read_manifest()["fingerprint"]
        assert verify_batch(alone.export_path) == [] and verify_batch(together.export_path) == []
        assert alone.read_manifest()["counts"]["duplicates"] == 1
        assert alone.read_manifest()["counts"]["exported"] == (301 if source is samples else 300)
        if alone.export_format == "trocr":
            assert {"images/line-007.png", "images/line-000.png"} <= set(files) or source is late_conflict
            assert any(name.startswith("images/LINE-007-") for name in files)
            assert b'"text": "Zeile 12"' in b"".join(files[name] for name in files if name.endswith(".jsonl"))
    # Nothing of the export's own working files is left beside the batches.
    assert sorted(path.name for path in tmp_path.rglob(".*")) == [".ocr-datasets"]
