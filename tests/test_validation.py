"""Validation on a corpus of bad inputs: strict mode names every problem and writes nothing;
lenient mode exports exactly the good samples and lists each bad one with its reason."""

from __future__ import annotations

import dataclasses
import io
import json
import struct
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image
from support.cli import run_cli
from support.data import LINE_GT_LINES, line_gt_samples

from ocr_datasets import TrainingSample, ValidationError, export, export_all, validate
from ocr_datasets.options import check_normalization
from ocr_datasets.validation import normalize_text


def png_bytes(size=(60, 20), shade=0) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, color=255 - shade).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(size=(60, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def bomb_png() -> bytes:
    """A valid PNG header claiming 30000 x 30000 pixels (900 MP, over Pillow's 2 x 89 MP limit)."""
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + chunk(b"IEND", b"")
    )


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def bad_corpus(folder: Path) -> tuple[list[TrainingSample], list[str], dict[str, str], list[tuple[str, str]]]:
    """Good samples, then one sample per kind of bad input.

    Returns (samples, ids expected exported, {rejected id: fragment of its reason}, [(duplicate id, kept id)]).
    """
    good = [
        TrainingSample(
            id=f"good-{n}", image_path=write(folder, f"good-{n}.png", png_bytes(shade=n)), ground_truth=f"Zeile {n}"
        )
        for n in range(3)
    ]
    good.append(
        TrainingSample(
            id="good-jpeg", image_path=write(folder, "good.jpg", jpeg_bytes()), ground_truth="Grüße", ocr_confidence=0.0
        )
    )
    (folder / "a-folder.png").mkdir()
    png = png_bytes(shade=40)
    shared = write(folder, "shared.png", png_bytes(shade=90))
    cases = {
        "missing-file": (dict(image_path=folder / "nowhere.png"), "not found"),
        "directory": (dict(image_path=folder / "a-folder.png"), "is a folder"),
        "zero-bytes": (dict(image_path=write(folder, "empty.png", b"")), "empty (0 bytes)"),
        "truncated-png": (dict(image_path=write(folder, "cut.png", png[: len(png) // 2])), "truncated"),
        "truncated-jpeg": (dict(image_path=write(folder, "cut.jpg", jpeg_bytes()[:300])), "truncated"),
        "text-as-png": (dict(image_path=write(folder, "notes.png", b"Einkaufsliste: Brot, Milch\n")), "not an image"),
        "jpeg-named-png": (dict(image_path=write(folder, "photo.png", jpeg_bytes())), "named as PNG but holds JPEG"),
        "bomb": (dict(image_path=write(folder, "bomb.png", bomb_png())), "decompression bomb"),
        "one-pixel": (dict(image_path=write(folder, "dot.png", png_bytes(size=(1, 1)))), "1x1 pixels"),
        "empty-text": (dict(ground_truth=""), "ground_truth is empty"),
        "whitespace-text": (dict(ground_truth=" \t\n "), "ground_truth is empty"),
        "missing-text": (dict(ground_truth=None), "ground_truth is missing"),
        "control-characters": (dict(ground_truth="Zeile\x00mit\x1bSteuerzeichen"), "U+0000, U+001B"),
        "nan-confidence": (dict(ocr_confidence=float("nan")), "outside [0, 1]"),
        "negative-confidence": (dict(ocr_confidence=-0.1), "outside [0, 1]"),
        "confidence-above-one": (dict(ocr_confidence=1.5), "outside [0, 1]"),
        "text-confidence": (dict(ocr_confidence="hoch"), "not a number"),
        "list-metadata": (dict(metadata=["page", 3]), "metadata is not a JSON object"),
        "string-metadata": (dict(metadata='{"page": 3}'), "metadata is not a JSON object"),
    }
    bad = []
    for case_id, (fields, _) in cases.items():
        values = {
            "image_path": write(folder, f"{case_id}-ok.png", png_bytes(shade=200 - len(bad))),
            "ground_truth": f"Text {case_id}",
            **fields,
        }
        bad.append(TrainingSample(id=case_id, **values))
    reasons = {case_id: fragment for case_id, (_, fragment) in cases.items()}
    # An id used twice: the second is rejected, the first exported.
    bad.append(
        TrainingSample(
            id="good-0", image_path=write(folder, "again.png", png_bytes(shade=7)), ground_truth="andere Zeile"
        )
    )
    reasons["good-0"] = "id is used by an earlier sample"
    # The same image with another text: a conflict, every sample of it rejected.
    bad += [
        TrainingSample(id="conflict-a", image_path=shared, ground_truth="Haus"),
        TrainingSample(
            id="conflict-b", image_path=write(folder, "shared-copy.png", shared.read_bytes()), ground_truth="Maus"
        ),
    ]
    reasons |= {"conflict-a": "conflict", "conflict-b": "conflict"}
    # The same image with the same text (after NFC and whitespace): exported once.
    twin = write(folder, "twin.png", png_bytes(shade=120))
    good.append(TrainingSample(id="twin-1", image_path=twin, ground_truth="Straße"))
    bad.append(
        TrainingSample(
            id="twin-2", image_path=write(folder, "twin-copy.png", twin.read_bytes()), ground_truth=" Straße "
        )
    )
    return good + bad, [sample.id for sample in good], reasons, [("twin-2", "twin-1")]


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    return bad_corpus(folder)


def rejected_ids(error: ValidationError) -> list[str]:
    return [problem.sample_id for problem in error.report.rejected]


def test_strict_mode_names_every_problem_and_writes_nothing(corpus, tmp_path):
    samples, _, reasons, _ = corpus
    with pytest.raises(ValidationError) as raised:
        export_all(samples, batch_id="b1", output_dir=tmp_path / "exports", progress=False)
    assert sorted(rejected_ids(raised.value)) == sorted(reasons)
    message = str(raised.value)
    for problem in raised.value.report.rejected:
        assert reasons[problem.sample_id] in problem.problem
        assert f"sample {problem.sample_id!r}" in message
        assert "fix:" in str(problem)
    assert not (tmp_path / "exports").exists()


def test_lenient_mode_exports_exactly_the_good_samples_and_lists_the_rest(corpus, tmp_path):
    samples, good_ids, reasons, duplicates = corpus
    result = export(
        samples, "generic", batch_id="b1", output_dir=tmp_path / "exports", skip_invalid=True, progress=False
    )
    batch = Path(result.export_path)

    assert pq.read_table(batch / "data" / "train-00000-of-00001.parquet").column("id").to_pylist() == good_ids
    listed = [json.loads(line) for line in (batch / "rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(record["id"] for record in listed) == sorted(reasons)
    for record in listed:
        assert reasons[record["id"]] in record["problem"] and record["fix"]
    assert [
        tuple(json.loads(line).values()) for line in (batch / "duplicates.jsonl").read_text().splitlines()
    ] == duplicates

    counts = result.read_manifest()["counts"]
    assert counts == {
        "input": len(samples),
        "exported": len(good_ids),
        "rejected": len(reasons),
        "duplicates": len(duplicates),
    }
    assert counts["input"] == counts["exported"] + counts["rejected"] + counts["duplicates"]
    # The batch may travel: no rejection names the folder the corpus lives in.
    assert str(tmp_path) not in (batch / "rejected.jsonl").read_text(encoding="utf-8")


def test_keep_duplicates_exports_both_twins_but_still_rejects_conflicts(corpus, tmp_path):
    samples, good_ids, _, _ = corpus
    report = validate(samples, keep_duplicates=True)
    assert [item.sample.id for item in report.accepted] == [*good_ids, "twin-2"]
    assert {"conflict-a", "conflict-b"} <= {problem.sample_id for problem in report.rejected}
    assert report.duplicates == []


def test_unreadable_manifest_lines_are_rejected_in_lenient_cli_exports(tmp_path, example_manifest):
    lines = example_manifest.read_text(encoding="utf-8").splitlines()
    example_manifest.write_text("\n".join([lines[0], '{"id": "kaputt", ', *lines[1:]]) + "\n", encoding="utf-8")
    command = [
        "export",
        "--input",
        example_manifest,
        "--format",
        "trocr",
        "--output",
        tmp_path / "out",
        "--batch-id",
        "b1",
        "--quiet",
    ]

    strict = run_cli(*command)
    assert strict.returncode == 2 and "samples.jsonl:2: not valid JSON" in strict.stderr
    assert not (tmp_path / "out" / "trocr" / "b1").exists()

    lenient = run_cli(*command, "--skip-invalid")
    assert lenient.returncode == 0, lenient.stderr
    [rejection] = [
        json.loads(line) for line in (tmp_path / "out" / "trocr" / "b1" / "rejected.jsonl").read_text().splitlines()
    ]
    assert (rejection["id"], rejection["location"]) == (None, "samples.jsonl:2")
    assert "12 samples" in lenient.stdout and "1 left out" in lenient.stdout


def test_every_sample_rejected_is_an_error_even_when_lenient(tmp_path):
    samples = [TrainingSample(id="a", image_path=tmp_path / "missing.png", ground_truth="x")]
    with pytest.raises(ValidationError, match="'a'"):
        export(samples, "trocr", batch_id="b1", output_dir=tmp_path / "out", skip_invalid=True, progress=False)
    assert not (tmp_path / "out" / "trocr" / "b1").exists()


LONG_S_LINE = "Auf\u017f der Stra\u00dfe e\u0364\ufb01 \u017fchön"


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("NFC", "Aufſ der Straße eͤﬁ ſchön"),
        ("none", "Aufſ der Straße eͤﬁ ſchön"),
        ("NFKC", "Aufs der Straße eͤfi schön"),
    ],
)
def test_normalisation_keeps_long_s_unless_nfkc_is_named(form, expected):
    assert normalize_text(LONG_S_LINE, form) == expected


def test_nfd_decomposes_and_nfc_composes():
    assert normalize_text("Gru\u0308\u00dfe", "NFC") == "Grüße"
    assert normalize_text("Grüße", "NFD") == "Gru\u0308ße"


def test_whitespace_is_trimmed_and_runs_collapsed_but_other_spaces_are_kept():
    assert normalize_text("  der\t\tHund \u00a0 bellt \n", "NFC") == "der Hund \u00a0 bellt"


def test_nfkc_warns_that_it_folds_long_s(tmp_path):
    sample = TrainingSample(id="s", image_path=None, image_bytes=png_bytes(), ground_truth="Gaſthaus")
    with pytest.warns(UserWarning, match="long s"):
        result = export([sample], "generic", batch_id="b1", output_dir=tmp_path, normalize="NFKC", progress=False)
    assert pq.read_table(Path(result.export_path) / "data" / "train-00000-of-00001.parquet").column(
        "ground_truth"
    ).to_pylist() == ["Gasthaus"]


def test_real_lines_keep_long_s_by_default(line_gt_copy):
    samples = line_gt_samples(line_gt_copy)
    report = validate(samples)
    assert report.counts == {"input": LINE_GT_LINES, "exported": LINE_GT_LINES, "rejected": 0, "duplicates": 0}
    texts = {item.sample.id: item.sample.ground_truth for item in report.accepted}
    for sample in samples:
        assert texts[sample.id] == " ".join(sample.ground_truth.split())
    assert (
        sum(text.count("ſ") for text in texts.values()) == sum(sample.ground_truth.count("ſ") for sample in samples) > 0
    )
    assert (
        sum(text.count("\u0364") for text in texts.values())
        == sum(sample.ground_truth.count("\u0364") for sample in samples)
        > 0
    )


def test_real_lines_under_nfkc_lose_every_long_s(line_gt_copy):
    with pytest.warns(UserWarning, match="long s"):
        check_normalization("NFKC")
    accepted = validate(line_gt_samples(line_gt_copy), normalize="NFKC").accepted
    assert len(accepted) == LINE_GT_LINES
    assert not any("ſ" in item.sample.ground_truth for item in accepted)


def test_validation_in_two_processes_reports_exactly_what_one_process_does(line_gt_copy):
    lines = line_gt_samples(line_gt_copy)
    # Ten copies of every line under new ids (duplicates), and one broken image among them:
    # over 1,000 samples, so two processes are really used.
    samples = [dataclasses.replace(sample, id=f"{copy}-{sample.id}") for copy in range(10) for sample in lines]
    samples[200] = dataclasses.replace(samples[200], image_path=line_gt_copy / "missing.tif")

    def summary(report):
        return (
            [item.sample.id for item in report.accepted],
            [str(problem) for problem in report.rejected],
            report.duplicates,
            report.counts,
        )

    serial, parallel = validate(samples, num_proc=1), validate(samples, num_proc=2)
    assert summary(parallel) == summary(serial)
    assert serial.counts == {
        "input": 10 * LINE_GT_LINES,
        "exported": LINE_GT_LINES,
        "rejected": 1,
        "duplicates": 9 * LINE_GT_LINES - 1,
    }
    assert [item.image_sha256 for item in parallel.accepted] == [item.image_sha256 for item in serial.accepted]
