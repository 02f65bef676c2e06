"""Input manifests (JSONL and CSV): fields, relative and absolute paths, and errors that name the record."""

from __future__ import annotations

import csv
import json

import pytest

from ocr_datasets import SampleError, read_manifest


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" if record is not None else "\n" for record in records), encoding="utf-8")
    return path


def test_jsonl_fields_and_paths(tmp_path):
    (tmp_path / "lines").mkdir()
    absolute = tmp_path / "elsewhere.png"
    manifest = write_jsonl(
        tmp_path / "samples.jsonl",
        [
            {"id": "a", "image_path": "lines/a.png", "ground_truth": "Grüße", "ocr_text": "Grulse", "ocr_confidence": 0.5, "metadata": {"page": 1}},
            None,  # blank lines are skipped, not errors
            {"id": 7, "image_path": str(absolute), "ground_truth": "ſ"},
        ],
    )
    first, second = read_manifest(manifest)
    assert (first.id, first.image_path, first.ground_truth, first.ocr_text, first.ocr_confidence, first.metadata) == (
        "a", tmp_path / "lines" / "a.png", "Grüße", "Grulse", 0.5, {"page": 1},
    )
    assert (second.id, second.image_path, second.ocr_text, second.ocr_confidence, second.metadata) == ("7", absolute, None, None, {})


def test_csv_with_metadata_cell(tmp_path):
    manifest = tmp_path / "samples.csv"
    with manifest.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "image_path", "ground_truth", "ocr_text", "ocr_confidence", "metadata"])
        writer.writerow(["a", "a.png", "Straße, „zitiert“", "", "0.9", '{"writer": "M"}'])
        writer.writerow(["b", "b.png", "Ufer", "Vfer", "", ""])
    first, second = read_manifest(manifest)
    assert (first.ground_truth, first.ocr_text, first.ocr_confidence, first.metadata) == ("Straße, „zitiert“", None, 0.9, {"writer": "M"})
    assert (second.ocr_text, second.ocr_confidence, second.metadata) == ("Vfer", None, {})


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ('{"id": "a", "image_path": "a.png"', ["samples.jsonl:1", "not valid JSON"]),
        ('["a", "a.png", "text"]', ["samples.jsonl:1", "JSON object"]),
        ('{"id": "a", "image_path": "a.png"}', ["'a'", "ground_truth"]),
        ('{"id": "a", "image_path": "a.png", "ground_truth": "x", "metadata": [1]}', ["'a'", "metadata"]),
        ('{"id": "a", "image_path": "a.png", "ground_truth": "x", "ocr_confidence": "hoch"}', ["'a'", "ocr_confidence"]),
        ('{"id": "a", "image_path": "a.png", "ground_truth": "x", "ocr_confidence": 1.5}', ["'a'", "[0, 1]"]),
        ('{"id": "a", "image_path": "a.png", "ground_truth": "x", "ocr_confidence": NaN}', ["'a'", "[0, 1]"]),
    ],
)
def test_bad_records_name_the_record_and_the_fix(tmp_path, line, names):
    manifest = tmp_path / "samples.jsonl"
    manifest.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(SampleError) as raised:
        list(read_manifest(manifest))
    for name in names:
        assert name in str(raised.value)
    assert "fix:" in str(raised.value)


def test_missing_manifest_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        list(read_manifest(tmp_path / "nowhere.jsonl"))
