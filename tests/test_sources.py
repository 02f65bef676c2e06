"""Input manifests (JSONL and CSV): fields, relative and absolute paths, and errors that name the record."""

from __future__ import annotations

import csv
import json

import pytest

from ocr_datasets import SampleError, read_manifest


@pytest.fixture(autouse=True)
def image_files(tmp_path):
    """The image files the records below name: the reader checks that an image_path exists."""
    (tmp_path / "lines").mkdir()
    for name in ("a.png", "b.png", "ok.png", "lines/a.png", "elsewhere.png"):
        (tmp_path / name).write_bytes(b"")


def write_jsonl(path, records):
    path.write_text(
        "".join(json.dumps(record, ensure_ascii=False) + "\n" if record is not None else "\n" for record in records),
        encoding="utf-8",
    )
    return path


def test_jsonl_fields_and_paths(tmp_path):
    absolute = tmp_path / "elsewhere.png"
    manifest = write_jsonl(
        tmp_path / "samples.jsonl",
        [
            {
                "id": "a",
                "image_path": "lines/a.png",
                "ground_truth": "Grüße",
                "ocr_text": "Grulse",
                "ocr_confidence": 0.5,
                "metadata": {"page": 1},
            },
            None,  # blank lines are skipped, not errors
            {"id": 7, "image_path": str(absolute), "ground_truth": "ſ"},
        ],
    )
    first, second = read_manifest(manifest)
    assert (first.id, first.image_path, first.ground_truth, first.ocr_text, first.ocr_confidence, first.metadata) == (
        "a",
        tmp_path / "lines" / "a.png",
        "Grüße",
        "Grulse",
        0.5,
        {"page": 1},
    )
    assert (second.id, second.image_path, second.ocr_text, second.ocr_confidence, second.metadata) == (
        "7",
        absolute,
        None,
        None,
        {},
    )


def test_csv_with_metadata_cell(tmp_path):
    manifest = tmp_path / "samples.csv"
    with manifest.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "image_path", "ground_truth", "ocr_text", "ocr_confidence", "metadata"])
        writer.writerow(["a", "a.png", "Straße, „zitiert“", "", "0.9", '{"writer": "M"}'])
        writer.writerow(["b", "b.png", "Ufer", "Vfer", "", ""])
    first, second = read_manifest(manifest)
    assert (first.ground_truth, first.ocr_text, first.ocr_confidence, first.metadata) == (
        "Straße, „zitiert“",
        None,
        0.9,
        {"writer": "M"},
    )
    assert (second.ocr_text, second.ocr_confidence, second.metadata) == ("Vfer", None, {})


UNREADABLE_LINES = {
    "broken JSON": ('{"id": "a", "image_path": "a.png"', "not valid JSON"),
    "not an object": ('["a", "a.png", "text"]', "JSON object"),
    "no id": ('{"image_path": "a.png", "ground_truth": "x"}', "no id"),
}


@pytest.mark.parametrize("case", UNREADABLE_LINES)
def test_unreadable_record_raises_naming_its_line(tmp_path, case):
    line, problem = UNREADABLE_LINES[case]
    manifest = tmp_path / "samples.jsonl"
    manifest.write_text('{"id": "ok", "image_path": "ok.png", "ground_truth": "x"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(SampleError) as raised:
        list(read_manifest(manifest))
    assert str(raised.value).startswith("samples.jsonl:2: ")
    assert problem in str(raised.value) and "fix:" in str(raised.value)


def test_report_mode_yields_each_unreadable_record_in_its_place(tmp_path):
    manifest = tmp_path / "samples.jsonl"
    manifest.write_text(
        "\n".join(
            [
                '{"id": "a", "image_path": "a.png", "ground_truth": "x"}',
                *(line for line, _ in UNREADABLE_LINES.values()),
            ]
        )
        + "\n"
    )
    items = list(read_manifest(manifest, errors="report"))
    assert [type(item).__name__ for item in items] == ["TrainingSample", "SampleError", "SampleError", "SampleError"]
    assert [item.location for item in items[1:]] == ["samples.jsonl:2", "samples.jsonl:3", "samples.jsonl:4"]


def test_field_values_pass_through_for_validation_to_judge(tmp_path):
    manifest = write_jsonl(
        tmp_path / "samples.jsonl", [{"id": "a", "image_path": "a.png", "ocr_confidence": "hoch", "metadata": [1]}]
    )
    [sample] = read_manifest(manifest)
    assert (sample.ground_truth, sample.ocr_confidence, sample.metadata, sample.source) == (
        None,
        "hoch",
        [1],
        "samples.jsonl:1",
    )


def test_missing_manifest_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.jsonl"):
        list(read_manifest(tmp_path / "nowhere.jsonl"))
