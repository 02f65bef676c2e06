"""Bad input is named, never a traceback; the text rules are the documented ones; nothing is cut silently.

Each case is a shape a hostile tester fed the export (issue #12); each builds its own input.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from ocr_datasets import SampleError, TrainingSample, ValidationError, export, read_manifest, read_samples
from ocr_datasets.cli import main
from ocr_datasets.errors import OptionError
from ocr_datasets.options import parse_split_spec
from ocr_datasets.validation import normalize_text


def line_image(path: Path, shade: int = 0) -> Path:
    """A small line image with a dark stroke; ``shade`` makes images of one test distinct."""
    image = Image.new("L", (60, 20), 255)
    ImageDraw.Draw(image).line((5, 10, 55, 10), fill=shade, width=3)
    image.save(path)
    return path


@pytest.fixture
def images(tmp_path) -> Path:
    """a.png, b.png, c.png: three distinct line images."""
    for shade, name in enumerate("abc"):
        line_image(tmp_path / f"{name}.png", shade * 40)
    return tmp_path


def rejections(result) -> dict[str, dict]:
    """location -> rejection record of an exported batch."""
    lines = (Path(result.export_path) / "rejected.jsonl").read_text(encoding="utf-8").splitlines()
    return {record["location"]: record for record in map(json.loads, lines)}


def export_manifest(manifest: Path, output: Path, **options):
    return export(
        read_samples(manifest, errors="report"),
        "generic",
        batch_id="b",
        output_dir=output,
        progress=False,
        skip_invalid=True,
        **options,
    )


def cli_export(capsys, *args) -> tuple[int, str, str]:
    code = main(["export", "--format", "generic", "--quiet", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- JSONL records the reader cannot take as they are ------------------------------------------

GOOD = '{"id": "good", "image_path": "a.png", "ground_truth": "Gut"}'
BAD_RECORDS = {
    "lone surrogate in ground_truth": (
        '{"id": "s1", "image_path": "b.png", "ground_truth": "Hal\\ud800lo"}',
        "surrogate",
    ),
    "lone surrogate in ocr_text": (
        '{"id": "s2", "image_path": "b.png", "ground_truth": "Hallo", "ocr_text": "x\\udfffy"}',
        "surrogate",
    ),
    "lone surrogate in id": ('{"id": "s\\ud800", "image_path": "b.png", "ground_truth": "Hallo"}', "surrogate"),
    "lone surrogate in metadata": (
        '{"id": "s4", "image_path": "b.png", "ground_truth": "Hallo", "metadata": {"w": "\\ud83d"}}',
        "surrogate",
    ),
    "400-digit confidence": (
        '{"id": "c1", "image_path": "b.png", "ground_truth": "Hallo", "ocr_confidence": 1' + "0" * 399 + "}",
        "ocr_confidence",
    ),
    "5001-digit confidence": (
        '{"id": "c2", "image_path": "b.png", "ground_truth": "Hallo", "ocr_confidence": 1' + "0" * 5000 + "}",
        "digits",
    ),
    "JSON nested 3000 deep": (
        '{"id": "n1", "image_path": "b.png", "ground_truth": "Hallo", "metadata": ' + "[" * 3000 + "]" * 3000 + "}",
        "nested",
    ),
    "metadata nested 500 deep": (
        '{"id": "n2", "image_path": "b.png", "ground_truth": "Hallo", "metadata": '
        + '{"k": ' * 500
        + "1"
        + "}" * 500
        + "}",
        "nested",
    ),
    "duplicate key": (
        '{"id": "d1", "image_path": "b.png", "ground_truth": "Hallo", "ground_truth": "Welt"}',
        "'ground_truth' twice",
    ),
    "duplicate metadata key": (
        '{"id": "d2", "image_path": "b.png", "ground_truth": "Hallo", "metadata": {"page": 1, "page": 2}}',
        "'page' twice",
    ),
    "id as boolean": ('{"id": true, "image_path": "b.png", "ground_truth": "Hallo"}', "id"),
    "id as object": ('{"id": {"a": 1}, "image_path": "b.png", "ground_truth": "Hallo"}', "id"),
    "id as fraction": ('{"id": 1.5, "image_path": "b.png", "ground_truth": "Hallo"}', "id"),
    "unit separator": ('{"id": "u1", "image_path": "b.png", "ground_truth": "Hal\\u001flo"}', "U+001F"),
    "next line control": ('{"id": "u2", "image_path": "b.png", "ground_truth": "Hal\\u0085lo"}', "U+0085"),
}


@pytest.mark.parametrize("case", BAD_RECORDS)
def test_a_bad_record_is_rejected_by_its_line_and_the_good_one_exported(images, tmp_path, case):
    line, named = BAD_RECORDS[case]
    manifest = images / "samples.jsonl"
    manifest.write_text(GOOD + "\n" + line + "\n", encoding="utf-8")
    result = export_manifest(manifest, tmp_path / "out")
    assert result.sample_count == 1
    rejected = rejections(result)
    assert list(rejected) == ["samples.jsonl:2"], rejected
    assert named in rejected["samples.jsonl:2"]["problem"] + rejected["samples.jsonl:2"]["fix"]


@pytest.mark.parametrize(
    "case", ["lone surrogate in id", "5001-digit confidence", "JSON nested 3000 deep", "duplicate key"]
)
def test_the_cli_names_the_line_in_strict_mode_without_a_traceback(images, tmp_path, capsys, case):
    manifest = images / "samples.jsonl"
    manifest.write_text(GOOD + "\n" + BAD_RECORDS[case][0] + "\n", encoding="utf-8")
    code, _, err = cli_export(capsys, "--input", manifest, "--output", tmp_path / "out")
    assert code == 2
    assert err.startswith("ocr-datasets: error:") and "samples.jsonl:2" in err and "Traceback" not in err
    err.encode("utf-8")  # printable, whatever the input held
    assert not (tmp_path / "out" / "generic").exists() or not any((tmp_path / "out" / "generic").iterdir())


def test_integer_ids_are_kept_as_their_json_text(images):
    manifest = images / "samples.jsonl"
    manifest.write_text(
        '{"id": 42, "image_path": "a.png", "ground_truth": "x"}\n'
        '{"id": -7, "image_path": "b.png", "ground_truth": "y"}\n'
    )
    assert [sample.id for sample in read_manifest(manifest)] == ["42", "-7"]


@pytest.mark.parametrize("bad_id", [5, True, None, 1.5, {"a": 1}])
def test_api_ids_must_be_strings(images, tmp_path, bad_id):
    samples = [TrainingSample("good", images / "a.png", "Gut"), TrainingSample(bad_id, images / "b.png", "Hallo")]
    with pytest.raises(ValidationError) as raised:
        export(samples, "generic", batch_id="b", output_dir=tmp_path / "out", progress=False)
    [problem] = raised.value.report.rejected
    assert "id" in problem.problem and "string" in problem.fix


# --- Python API inputs that used to pass validation and crash the writer ---------------------


def test_metadata_keys_must_be_strings(images, tmp_path):
    samples = [
        TrainingSample("good", images / "a.png", "Gut"),
        TrainingSample("mixed", images / "b.png", "Hallo", metadata={1: "x", "b": 2}),
    ]
    result = export(samples, "generic", batch_id="b", output_dir=tmp_path / "out", progress=False, skip_invalid=True)
    assert result.sample_count == 1
    [record] = rejections(result).values()
    assert record["id"] == "mixed" and "key 1" in record["problem"]


def test_image_bytes_may_be_any_bytes_like_object(images, tmp_path):
    data = (images / "a.png").read_bytes()
    samples = [
        TrainingSample("view", None, "Hallo", image_bytes=memoryview(data)),
        TrainingSample("array", None, "Welt", image_bytes=bytearray((images / "b.png").read_bytes())),
    ]
    result = export(samples, "generic", batch_id="b", output_dir=tmp_path / "out", progress=False)
    assert result.sample_count == 2
    assert (Path(result.export_path) / "images" / "view.png").read_bytes() == data


def test_a_non_bytes_image_is_rejected(images, tmp_path):
    samples = [
        TrainingSample("good", images / "a.png", "Gut"),
        TrainingSample("text", None, "Hallo", image_bytes="a.png"),
    ]
    result = export(samples, "generic", batch_id="b", output_dir=tmp_path / "out", progress=False, skip_invalid=True)
    [record] = rejections(result).values()
    assert record["id"] == "text" and "image_bytes" in record["problem"]


def test_an_instruction_that_is_not_text_is_refused(images, tmp_path, capsys):
    samples = [TrainingSample("good", images / "a.png", "Gut")]
    with pytest.raises(ValueError, match="instruction"):
        export(
            samples,
            "llama_vision",
            batch_id="b",
            output_dir=tmp_path / "out",
            progress=False,
            instruction="Lies \udce4 vor",
        )
    manifest = images / "samples.jsonl"
    manifest.write_text(GOOD + "\n", encoding="utf-8")
    # What argparse hands over for an argument holding the byte 0xE4 (Latin-1 "ä") on a UTF-8 system.
    code = main(
        [
            "export",
            "--format",
            "llama_vision",
            "--quiet",
            "--input",
            str(manifest),
            "--output",
            str(tmp_path / "cli"),
            "--instruction",
            os.fsdecode(b"Lies \xe4 vor"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--instruction" in err and "UTF-8" in err and "Traceback" not in err


# --- Files that are not what they should be --------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_manifest_that_is_not_utf8_is_named_with_its_line_and_the_encoding_to_use(images, tmp_path, capsys, suffix):
    manifest = images / f"samples{suffix}"
    if suffix == ".csv":
        content = "id,image_path,ground_truth\ngood,a.png,Gut\nbad,b.png,Grüße\n"
    else:
        content = GOOD + "\n" + '{"id": "bad", "image_path": "b.png", "ground_truth": "Grüße"}\n'
    manifest.write_bytes(content.encode("cp1252"))
    with pytest.raises(ValueError) as raised:
        list(read_manifest(manifest, errors="report"))
    assert f"samples{suffix}:" in str(raised.value) and "UTF-8" in str(raised.value)
    code, _, err = cli_export(capsys, "--input", manifest, "--output", tmp_path / "out", "--skip-invalid")
    assert code == 2 and f"samples{suffix}:" in err and "UTF-8" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "content", ["", "\n\n  \n", "id,image_path,ground_truth\n"], ids=["empty", "blank", "header only"]
)
def test_an_input_without_samples_says_so(images, tmp_path, capsys, content):
    manifest = images / ("samples.csv" if content.startswith("id") else "samples.jsonl")
    manifest.write_text(content, encoding="utf-8")
    code, _, err = cli_export(capsys, "--input", manifest, "--output", tmp_path / "out", "--skip-invalid")
    assert code == 2 and "holds no samples" in err and "skip-invalid" not in err


def test_a_csv_row_with_more_cells_than_the_header_is_rejected_by_its_line(images, tmp_path):
    manifest = images / "samples.csv"
    manifest.write_text("id,image_path,ground_truth\ngood,a.png,Gut\ncut,b.png,Hallo, Welt\n", encoding="utf-8")
    with pytest.raises(SampleError) as raised:
        list(read_manifest(manifest))
    assert (
        raised.value.location == "samples.csv:3"
        and "4 cells" in raised.value.problem
        and "3 columns" in raised.value.problem
    )
    assert "quote" in raised.value.fix
    result = export_manifest(manifest, tmp_path / "out")
    assert result.sample_count == 1 and list(rejections(result)) == ["samples.csv:3"]


def test_a_csv_row_with_fewer_cells_than_the_header_is_rejected_by_its_line(images, tmp_path):
    manifest = images / "samples.csv"
    manifest.write_text(
        "id,image_path,ground_truth,ocr_text\ngood,a.png,Gut,Gvt\nshort,b.png,Hallo\n", encoding="utf-8"
    )
    result = export_manifest(manifest, tmp_path / "out")
    assert result.sample_count == 1 and "3 cells" in rejections(result)["samples.csv:3"]["problem"]


def test_a_csv_with_a_column_twice_is_refused_naming_it(images):
    manifest = images / "samples.csv"
    manifest.write_text("id,image_path,ground_truth,ground_truth\ngood,a.png,Gut,Schlecht\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"samples\.csv:1.*'ground_truth' twice"):
        list(read_manifest(manifest, errors="report"))


def test_a_quoted_comma_is_kept_in_a_csv_cell(images):
    manifest = images / "samples.csv"
    with manifest.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows([["id", "image_path", "ground_truth"], ["a", "a.png", "Hallo, Welt"]])
    [sample] = read_manifest(manifest)
    assert sample.ground_truth == "Hallo, Welt"


# --- Line folders -------------------------------------------------------------------------------


def test_a_two_line_gt_txt_is_rejected_naming_the_file(images, tmp_path):
    folder = tmp_path / "lines"
    folder.mkdir()
    for name, text in [("one", "Eine Zeile\n"), ("two", "Erste Zeile\nZweite Zeile\n"), ("crlf", "Windows-Zeile\r\n")]:
        line_image(folder / f"{name}.png", len(name) * 30)
        (folder / f"{name}.gt.txt").write_bytes(text.encode())
    items = {
        getattr(item, "id", None) or item.sample_id: item for item in read_samples(folder, "gt-folder", errors="report")
    }
    assert items["one"].ground_truth == "Eine Zeile" and items["crlf"].ground_truth == "Windows-Zeile"
    problem = items["two"]
    assert isinstance(problem, SampleError) and "two.gt.txt" in problem.problem and "2 lines" in problem.problem


def test_a_line_file_name_that_is_not_utf8_is_rejected_by_name(tmp_path):
    folder = tmp_path / "lines"
    folder.mkdir()
    line_image(folder / "good.png")
    (folder / "good.gt.txt").write_text("Gut\n", encoding="utf-8")
    raw = os.fsencode(folder) + b"/Stra\xdfe"
    line_image(Path(os.fsdecode(raw + b".png")), 80)
    Path(os.fsdecode(raw + b".gt.txt")).write_text("Straße\n", encoding="utf-8")
    result = export(
        read_samples(folder, errors="report"),
        "generic",
        batch_id="b",
        output_dir=tmp_path / "out",
        progress=False,
        skip_invalid=True,
    )
    assert result.sample_count == 1
    [record] = rejections(result).values()
    assert "UTF-8" in record["problem"] and "Stra\\xdfe" in record["location"]


# --- Text rules ---------------------------------------------------------------------------------


def test_unicode_spaces_are_kept_and_ascii_whitespace_collapsed():
    assert normalize_text("  Hallo \t\n Welt  ", "NFC") == "Hallo Welt"
    for space in ("\u00a0", "\u202f", "\u3000", "\u2009"):
        assert normalize_text(f"5{space}kg", "NFC") == f"5{space}kg"


def test_nbsp_survives_into_the_exported_text(images, tmp_path):
    result = export(
        [TrainingSample("a", images / "a.png", "z.\u00a0B. 5\u202fkg")],
        "generic",
        batch_id="b",
        output_dir=tmp_path / "out",
        progress=False,
    )
    [record] = [
        json.loads(line) for line in (Path(result.export_path) / "data.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert record["ground_truth"] == "z.\u00a0B. 5\u202fkg"


# --- Splits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["Train=0.5,train=0.5", {"TEST": 0.5, "test": 0.5}, "train=0.5,train=0.5"])
def test_split_names_must_differ_in_more_than_case(spec):
    with pytest.raises(ValueError, match="twice"):
        parse_split_spec(spec)


def test_standard_input_is_read_once_and_relative_to_the_current_folder(images, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="only once"):
        list(read_samples(["-", "/dev/stdin"], "jsonl"))
    manifest = tmp_path / "elsewhere.jsonl"
    manifest.write_text(GOOD + "\n", encoding="utf-8")
    monkeypatch.chdir(images)
    with manifest.open("rb") as redirected:
        monkeypatch.setattr("sys.stdin", type("Stdin", (), {"buffer": redirected})())
        [sample] = read_manifest("/dev/stdin")
    assert (sample.image_path, sample.source) == (Path.cwd() / "a.png", "stdin:1")


def test_an_instruction_holding_the_image_placeholder_is_refused(images, tmp_path):
    # LLaMA-Factory and ms-swift read every "<image>" in a turn's text as an image: their view
    # of such a row would count two images where there is one.
    samples = [TrainingSample("good", images / "a.png", "Gut")]
    with pytest.raises(OptionError, match=r"instruction \(--instruction\) holds <image>"):
        export(samples, "vlm", output_dir=tmp_path / "out", progress=False, instruction="Lies <image> vor")
    assert not (tmp_path / "out").exists()
