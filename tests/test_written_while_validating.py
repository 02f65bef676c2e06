"""Rows are written while validation runs when each sample's split is known from the sample alone;
when validation ends otherwise (a later conflict rejects rows already written, the balanced
strategy decides splits only at the end), the batch is written again from the spool. Either way
the batch is the one the validated samples make."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.data import line_png, numbered_lines

from ocr_datasets import SampleError, TrainingSample, export, validation, verify_batch
from ocr_datasets.adapters import get_adapter


def exported_rows(result) -> dict[str, list[str]]:
    """The ids of each split, in order, as the parquet files hold them."""
    batch = Path(result.export_path)
    data_files = {}
    for path in sorted((batch / "data").glob("*.parquet")):
        data_files.setdefault(path.name.split("-")[0], []).extend(pq.read_table(path, columns=["id"])["id"].to_pylist())
    return data_files


def view_ids(result, split: str) -> list[str]:
    adapter = get_adapter(result.export_format)
    lines = (Path(result.export_path) / adapter.view_name(split)).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["id"] for line in lines]


def test_a_conflict_found_after_its_first_sample_was_written_leaves_both_out(tmp_path):
    lines = numbered_lines(600)
    # The last sample repeats the first one's image with another text: by the time it arrives,
    # the first has long been written.
    lines.append(TrainingSample(id="late", image_path="late.png", image_bytes=line_png(0), ground_truth="anders"))
    result = export(lines, "trocr", "b1", tmp_path / "exports", progress=False, skip_invalid=True, num_proc=1)

    rows = exported_rows(result)["train"]
    assert "line-000" not in rows and "late" not in rows
    assert rows == [sample.id for sample in lines[1:600]] == view_ids(result, "train")
    assert not (Path(result.export_path) / "images" / "line-000.png").exists()
    assert verify_batch(result.export_path) == []


def test_duplicates_are_never_written(tmp_path):
    lines = numbered_lines(300)
    twin = TrainingSample(id="twin", image_path="twin.png", image_bytes=line_png(5), ground_truth="Zeile 5")
    result = export([*lines, twin], "trocr", "b1", tmp_path / "exports", progress=False, num_proc=1)
    assert exported_rows(result)["train"] == [sample.id for sample in lines]
    assert result.read_manifest()["counts"]["duplicates"] == 1
    assert verify_batch(result.export_path) == []


@pytest.mark.parametrize("strategy", ["hash", "balanced"])
def test_splits_written_as_they_come_or_at_the_end_hold_the_same_rows_as_assigned(strategy, tmp_path):
    lines = numbered_lines(400)
    result = export(
        lines,
        "generic",
        "b1",
        tmp_path / "exports",
        progress=False,
        split="train=0.6,validation=0.2,test=0.2",
        group_by="page",
        split_strategy=strategy,
    )
    rows = exported_rows(result)
    assert sorted(rows) == ["test", "train", "validation"]
    for split, ids in rows.items():
        assert ids == sorted(ids) and ids == view_ids(result, split)
        assert len({int(sample_id.split("-")[1]) // 10 for sample_id in ids}) == len(ids) // 10
    assert sorted(ids for split_ids in rows.values() for ids in split_ids) == [sample.id for sample in lines]
    assert verify_batch(result.export_path) == []


def test_rows_written_again_after_a_conflict_refuse_an_image_changed_since_validation(tmp_path, monkeypatch):
    # Validation reads this many samples before it checks the first (to size its pool).
    monkeypatch.setattr(validation, "_WINDOW", 10)
    folder = tmp_path / "input"
    folder.mkdir()
    lines = []
    for number in range(300):
        image = folder / f"line-{number:03d}.png"
        image.write_bytes(line_png(number))
        lines.append(TrainingSample(id=f"line-{number:03d}", image_path=image, ground_truth=f"Zeile {number}"))

    def changing():
        yield from lines
        # Validated and written long ago, then replaced; a conflict at the end makes the export
        # write every row again, reading each image once more.
        lines[10].image_path.write_bytes(line_png(999))
        yield TrainingSample(id="late", image_path="late.png", image_bytes=line_png(0), ground_truth="anders")

    with pytest.raises(SampleError, match=r"'line-010'.*changed after validation"):
        export(changing(), "trocr", "b1", tmp_path / "exports", progress=False, skip_invalid=True, num_proc=1)
    assert not (tmp_path / "exports" / "trocr" / "b1").exists()
