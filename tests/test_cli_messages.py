"""The command speaks in flags, says what an export did, and prints warnings as one line (issue #13).

In-process: ``main`` is called as the console script calls it, and its output captured.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

import ocr_datasets
from ocr_datasets.cli import main


def line_images(folder: Path, count: int) -> None:
    for index in range(count):
        image = Image.new("L", (60, 20), 255)
        ImageDraw.Draw(image).line((5, 10, 10 + index, 10), fill=0, width=3)
        image.save(folder / f"{index}.png")


def manifest(folder: Path, records: list[dict]) -> Path:
    path = folder / "samples.jsonl"
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture
def mixed(tmp_path) -> Path:
    """Ten good lines and four bad ones: three missing images, one without a text."""
    line_images(tmp_path, 10)
    records = [
        {"id": f"l{n}", "image_path": f"{n}.png", "ground_truth": f"Zeile {n}", "metadata": {"page": n % 5}}
        for n in range(10)
    ]
    records += [
        {"id": f"gone{n}", "image_path": f"gone{n}.png", "ground_truth": "x", "metadata": {"page": 1}} for n in range(3)
    ]
    records += [{"id": "blank", "image_path": "0.png", "ground_truth": " ", "metadata": {"page": 1}}]
    return manifest(tmp_path, records)


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


PYTHON_NAMES = re.compile(
    r"(?<![-\w])(skip_invalid|overwrite|allow_empty_splits|split_strategy|image_dir|image_bytes|keep_image_metadata)\b"
)


def test_errors_name_flags_not_python_keywords(mixed, tmp_path, capsys):
    code, _, err = run(capsys, "export", "--input", mixed, "--format", "trocr", "--output", tmp_path / "out", "--quiet")
    assert code == 2 and "--skip-invalid" in err and not PYTHON_NAMES.search(err), err
    folder = tmp_path / "out" / "trocr" / "b"
    folder.mkdir(parents=True)
    code, _, err = run(
        capsys,
        "export",
        "--input",
        mixed,
        "--format",
        "trocr",
        "--output",
        tmp_path / "out",
        "--batch-id",
        "b",
        "--overwrite",
        "--quiet",
        "--skip-invalid",
    )
    assert code == 2 and "--overwrite" in err and not PYTHON_NAMES.search(err), err
    code, _, err = run(
        capsys,
        "export",
        "--input",
        mixed,
        "--format",
        "trocr",
        "--output",
        tmp_path / "out",
        "--split",
        "train=0.9,test=0.1",
        "--group-by",
        "page",
        "--quiet",
        "--skip-invalid",
        "--seed",
        "3",
    )
    assert (
        code == 2
        and "--split-strategy balanced" in err
        and "--allow-empty-splits" in err
        and not PYTHON_NAMES.search(err)
    ), err


def test_the_python_api_keeps_naming_its_keywords(mixed, tmp_path):
    with pytest.raises(ocr_datasets.ValidationError, match=r"skip_invalid=True \(--skip-invalid\)"):
        ocr_datasets.export(
            ocr_datasets.read_samples(mixed, errors="report"), "trocr", output_dir=tmp_path, progress=False
        )


def test_skip_invalid_is_not_advised_when_it_was_given(tmp_path, capsys):
    line_images(tmp_path, 1)
    path = manifest(tmp_path, [{"id": "a", "image_path": "nowhere.png", "ground_truth": "x"}])
    code, _, err = run(
        capsys,
        "export",
        "--input",
        path,
        "--format",
        "trocr",
        "--output",
        tmp_path / "out",
        "--quiet",
        "--skip-invalid",
    )
    assert code == 2 and "1 of 1 samples are not valid" in err and "skip-invalid" not in err


def test_a_record_without_image_path_says_so_in_the_manifest_terms(tmp_path, capsys):
    line_images(tmp_path, 1)
    path = manifest(
        tmp_path, [{"id": "a", "image_path": "0.png", "ground_truth": "x"}, {"id": "b", "ground_truth": "y"}]
    )
    code, _, err = run(capsys, "export", "--input", path, "--format", "trocr", "--output", tmp_path / "out", "--quiet")
    assert code == 2 and "samples.jsonl:2" in err and "no image_path" in err and "image_bytes" not in err


def test_the_summary_gives_splits_rejections_and_an_offline_load_line(mixed, tmp_path, capsys):
    code, out, _ = run(
        capsys,
        "export",
        "--input",
        mixed,
        "--format",
        "trocr",
        "--output",
        tmp_path / "out",
        "--batch-id",
        "b",
        "--quiet",
        "--skip-invalid",
        "--split",
        "train=0.6,test=0.4",
        "--group-by",
        "page",
        "--split-strategy",
        "balanced",
    )
    assert code == 0
    batch = (tmp_path / "out" / "trocr" / "b").resolve()
    splits = json.loads((batch / "manifest.json").read_text(encoding="utf-8"))["splits"]
    assert f"train {splits['train']}, test {splits['test']}" in out
    assert f"4 left out: see {batch / 'rejected.jsonl'}" in out
    assert "3 × image file not found" in out and "1 × ground_truth is empty" in out
    [load_line] = [line for line in out.splitlines() if "load_batch" in line]
    assert load_line == f'from ocr_datasets import load_batch; dataset = load_batch("{batch}")'


def test_warnings_are_one_line_each(tmp_path, capsys):
    line_images(tmp_path, 2)
    path = manifest(tmp_path, [{"id": "a", "image_path": "0.png", "ground_truth": "Gaſt"}])
    code, _, err = run(
        capsys,
        "export",
        "--input",
        path,
        "--format",
        "trocr",
        "--output",
        tmp_path / "out",
        "--quiet",
        "--normalize",
        "NFKC",
    )
    assert code == 0
    [line] = [line for line in err.splitlines() if "long s" in line]
    assert line.startswith("ocr-datasets: warning: NFKC folds") and "Warning" not in err and ".py:" not in err


def test_list_has_column_headers(tmp_path, capsys):
    line_images(tmp_path, 1)
    path = manifest(tmp_path, [{"id": "a", "image_path": "0.png", "ground_truth": "x"}])
    assert (
        run(
            capsys,
            "export",
            "--input",
            path,
            "--format",
            "generic",
            "--output",
            tmp_path / "out",
            "--batch-id",
            "b1",
            "--quiet",
        )[0]
        == 0
    )
    _, out, _ = run(capsys, "list", "--output", tmp_path / "out")
    header, row = out.splitlines()
    assert header.split() == ["created", "format", "batch", "samples", "path"]
    assert row.split()[1:4] == ["generic", "b1", "1"]


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"ocr-datasets {ocr_datasets.__version__}"


def test_a_bug_is_not_dressed_up_as_a_user_error(tmp_path, capsys, monkeypatch):
    # A programming error inside the library must show its traceback, not "error: ..." and exit 2.
    line_images(tmp_path, 1)
    path = manifest(tmp_path, [{"id": "a", "image_path": "0.png", "ground_truth": "x"}])

    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr("ocr_datasets.api.split_statistics", broken)
    with pytest.raises(TypeError, match="a bug"):
        main(["export", "--input", str(path), "--format", "trocr", "--output", str(tmp_path / "out"), "--quiet"])
