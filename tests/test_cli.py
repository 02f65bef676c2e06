"""The ``ocr-datasets`` command end to end, as a user types it: in-process through ``main``
(what the console script calls), and through the installed command where a terminal or the
installation itself is what is tested."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support.cli import failed_cleanly, run_cli, succeeded
from support.data import run_python

from ocr_datasets.adapters import FORMAT_NAMES, get_adapter

FORMAT_FOLDERS = {name: get_adapter(name).folder for name in FORMAT_NAMES}
MANIFEST_FIELDS = ("id", "image_path", "ground_truth", "ocr_text", "ocr_confidence", "metadata")
# What tqdm's bars print (the carriage returns they redraw with become newlines in text mode).
PROGRESS_MARKS = ("Validating samples", "samples/s")


def list_json(*args, **kwargs) -> list[dict]:
    return json.loads(succeeded(run_cli("list", "--json", *args, **kwargs)).stdout)


def manifest_of(batch_dir: Path) -> dict:
    return json.loads((batch_dir / "manifest.json").read_text(encoding="utf-8"))


def read_records(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def write_records(manifest: Path, records: list[dict]) -> None:
    manifest.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")


@pytest.fixture(scope="module")
def exported_all(tmp_path_factory):
    """``example``, then ``export --format all`` through the installed command on a terminal,
    without ``--quiet``: the walk-through a new user follows. Module-scoped because
    several read-only tests inspect it; it gets its own HF home since the autouse one is per test."""
    base = tmp_path_factory.mktemp("cli-walkthrough")
    env = {"HF_HOME": str(base / "hf-home"), "HF_DATASETS_CACHE": str(base / "hf-home" / "datasets")}
    example = succeeded(run_cli("example", base / "input", "--count", "12", env=env, console_script=True))
    root = base / "exports"
    export = succeeded(
        run_cli(
            "export",
            "--input",
            base / "input" / "samples.jsonl",
            "--format",
            "all",
            "--batch-id",
            "b1",
            "--output",
            root,
            env=env,
            terminal=True,
        )
    )
    return {"root": root, "input": base / "input", "example": example, "export": export, "env": env}


def test_example_writes_the_input_layout_export_reads(exported_all):
    records = read_records(exported_all["input"] / "samples.jsonl")
    assert len(records) == 12
    assert "12" in exported_all["example"].stdout and "samples.jsonl" in exported_all["example"].stdout
    for record in records:
        assert set(record) == set(MANIFEST_FIELDS)
        assert (exported_all["input"] / record["image_path"]).is_file()


def test_export_all_writes_one_batch_per_format_and_says_how_to_load_each(exported_all):
    root, stdout = exported_all["root"], exported_all["export"].stdout
    assert sorted(path.name for path in root.iterdir()) == sorted([".ocr-datasets", *FORMAT_FOLDERS.values()])
    for export_format, folder in FORMAT_FOLDERS.items():
        batch = root / folder / "b1"
        assert manifest_of(batch)["format"] == export_format
        assert f"{export_format}: 12 samples in {batch}" in stdout
        assert f'load_batch("{batch}")' in stdout
    assert stdout.count("load_batch(") == len(FORMAT_NAMES)


def test_export_without_quiet_shows_progress_on_stderr(exported_all):
    # The counterpart of the --quiet test: proves the marks it looks for are the ones bars print.
    stderr = exported_all["export"].stderr
    assert all(mark in stderr for mark in PROGRESS_MARKS), stderr
    # The rows are written as they are validated (one split: nothing waits for the split).
    assert "Validating samples" in stderr


def test_list_prints_one_row_per_batch(exported_all):
    header, *lines = succeeded(run_cli("list", "--output", exported_all["root"])).stdout.splitlines()
    assert header.split() == ["created", "format", "batch", "samples", "path"] and len(lines) == len(FORMAT_NAMES)
    for export_format, folder in FORMAT_FOLDERS.items():
        [line] = [line for line in lines if str(exported_all["root"] / folder / "b1") in line]
        assert export_format in line.split() and "b1" in line.split() and "12" in line.split()


def test_list_json_is_newest_first_with_counts(exported_all):
    rows = list_json("--output", exported_all["root"])
    created = [row["created_at"] for row in rows]
    assert created == sorted(created, reverse=True)
    # "all" writes the formats in this order, so the last one written is listed first.
    assert [row["export_format"] for row in rows] == list(reversed(FORMAT_NAMES))
    for row in rows:
        assert row["batch_id"] == "b1" and row["sample_count"] == 12
        assert row["counts"] == {"input": 12, "exported": 12, "rejected": 0, "duplicates": 0}
        assert row["splits"] == {"train": 12}
        assert Path(row["manifest_path"]) == Path(row["export_path"]) / "manifest.json"


def test_list_json_filters_by_format(exported_all):
    [row] = list_json("--output", exported_all["root"], "--format", "trocr")
    assert row["export_format"] == "trocr"
    assert Path(row["export_path"]) == exported_all["root"] / "trocr" / "b1"


def test_list_accepts_the_folder_name_llama_vision_as_format(exported_all):
    [row] = list_json("--output", exported_all["root"], "--format", "llama-vision")
    assert row["export_format"] == "llama_vision"


def test_list_of_a_root_without_batches_is_empty(tmp_path):
    assert list_json("--output", tmp_path / "nothing-here") == []
    table = succeeded(run_cli("list", "--output", tmp_path / "nothing-here")).stdout
    assert "no batches" in table


@pytest.mark.parametrize("where", ["OCR_EXPORT_PATH", "cwd"])
def test_output_defaults_to_ocr_export_path_else_ocr_exports_in_cwd(where, tmp_path, example_manifest):
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {"OCR_EXPORT_PATH": str(tmp_path / "env-root")} if where == "OCR_EXPORT_PATH" else {}
    expected_root = tmp_path / "env-root" if env else cwd / "ocr-exports"
    succeeded(
        run_cli(
            "export", "--input", example_manifest, "--format", "trocr", "--batch-id", "d1", "--quiet", cwd=cwd, env=env
        )
    )
    assert manifest_of(expected_root / "trocr" / "d1")["batch_id"] == "d1"
    assert [path.name for path in cwd.iterdir()] == (["ocr-exports"] if not env else [])
    # list finds it by the same default.
    [row] = list_json(cwd=cwd, env=env)
    assert (cwd / row["export_path"]).resolve() == (expected_root / "trocr" / "d1").resolve()


def test_csv_manifest_with_a_json_metadata_cell(tmp_path, example_manifest):
    records = read_records(example_manifest)
    csv_manifest = example_manifest.with_name("samples.csv")
    with csv_manifest.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(
            {**record, "metadata": json.dumps(record["metadata"], ensure_ascii=False)} for record in records
        )
    root = tmp_path / "exports"
    succeeded(
        run_cli(
            "export", "--input", csv_manifest, "--format", "generic", "--batch-id", "c1", "--output", root, "--quiet"
        )
    )
    exported = {record["id"]: record for record in read_records(root / "generic" / "c1" / "data.jsonl")}
    assert len(exported) == len(records)
    for record in records:
        assert exported[record["id"]]["metadata"] == record["metadata"]
        assert exported[record["id"]]["ground_truth"] == record["ground_truth"]
        assert exported[record["id"]]["ocr_confidence"] == pytest.approx(record["ocr_confidence"])


def test_existing_batch_id_fails_naming_the_batch_until_overwrite_replaces_it(tmp_path, example_manifest):
    root = tmp_path / "exports"
    export = ("export", "--format", "trocr", "--batch-id", "b1", "--output", root, "--quiet")
    succeeded(run_cli(*export, "--input", example_manifest))
    fewer = example_manifest.with_name("fewer.jsonl")
    write_records(fewer, read_records(example_manifest)[:5])

    message = failed_cleanly(run_cli(*export, "--input", fewer))
    assert "'b1'" in message and "--overwrite" in message
    assert manifest_of(root / "trocr" / "b1")["sample_count"] == 12

    succeeded(run_cli(*export, "--input", fewer, "--overwrite"))
    assert manifest_of(root / "trocr" / "b1")["sample_count"] == 5
    assert [path.name for path in (root / "trocr").iterdir()] == ["b1"]


def _image_missing(manifest: Path) -> tuple[Path, list[str]]:
    records = read_records(manifest)
    records[1]["image_path"] = "images/gone.png"
    write_records(manifest, records)
    return manifest, [repr(records[1]["id"]), "gone.png"]


def _malformed_json_line(manifest: Path) -> tuple[Path, list[str]]:
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = '{"id": "broken", "image_path": \n'
    manifest.write_text("".join(lines), encoding="utf-8")
    return manifest, ["samples.jsonl:2", "JSON"]


def _ground_truth_missing(manifest: Path) -> tuple[Path, list[str]]:
    records = read_records(manifest)
    del records[2]["ground_truth"]
    write_records(manifest, records)
    return manifest, [repr(records[2]["id"]), "ground_truth", "samples.jsonl:3"]


def _manifest_missing(manifest: Path) -> tuple[Path, list[str]]:
    return manifest.with_name("typo.jsonl"), ["typo.jsonl", "not found"]


@pytest.mark.parametrize(
    "break_input",
    [
        _image_missing,
        _malformed_json_line,
        _ground_truth_missing,
        _manifest_missing,
    ],
)
def test_bad_input_exits_2_naming_the_sample_or_line_and_writes_nothing(break_input, tmp_path, example_manifest):
    manifest, expected = break_input(example_manifest)
    root = tmp_path / "exports"
    message = failed_cleanly(run_cli("export", "--input", manifest, "--format", "trocr", "--output", root, "--quiet"))
    for fragment in expected:
        assert fragment in message
    assert list(root.rglob("*")) in ([], [root / "trocr"])


@pytest.mark.parametrize(
    "command, expected",
    [
        ((), ["export", "list", "example", "load_dataset"]),
        (
            ("export",),
            [*MANIFEST_FIELDS, "JSONL", "CSV", "relative to the manifest's folder", "--overwrite", "--no-copy-images"],
        ),
        (("list",), ["newest first", "--json", "$OCR_EXPORT_PATH", "ocr-exports"]),
        (("example",), ["samples.jsonl", "--count"]),
    ],
    ids=["top-level", "export", "list", "example"],
)
def test_help_exits_0_and_explains_the_command(command, expected):
    completed = succeeded(run_cli(*command, "--help"))
    assert completed.stdout.startswith(f"usage: ocr-datasets {' '.join(command)}".rstrip())
    # argparse wraps help text, so compare with whitespace collapsed.
    text = " ".join(completed.stdout.split())
    for fragment in expected:
        assert fragment in text


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_answer_without_importing_the_export_machinery(flag):
    # pyarrow (with numpy) takes ~0.2 s to import and datasets ~0.6 s: without them --help and
    # --version answer in ~0.2 s, within the 0.3 s the bench's start-up row checks.
    output = run_python(
        f"""
        import contextlib, io, sys
        from ocr_datasets.cli import main
        with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
            main([{flag!r}])
        print(*sorted(name for name in ("pyarrow", "numpy", "datasets") if name in sys.modules))
        """
    )
    assert output.split() == []


def test_no_copy_images_writes_only_parquet_card_and_manifest(tmp_path, example_manifest):
    root = tmp_path / "exports"
    succeeded(
        run_cli(
            "export",
            "--input",
            example_manifest,
            "--format",
            "all",
            "--batch-id",
            "p1",
            "--output",
            root,
            "--no-copy-images",
            "--quiet",
        )
    )
    for folder in FORMAT_FOLDERS.values():
        batch = root / folder / "p1"
        assert sorted(path.name for path in batch.iterdir()) == ["README.md", "data", "manifest.json"]
        assert [path.suffix for path in (batch / "data").iterdir()] == [".parquet"]
        assert manifest_of(batch)["options"]["copy_images"] is False


def test_progress_bars_are_for_terminals_only(tmp_path, example_manifest):
    # Piped into a log, a bar's redraws become lines, and its last one comes twice.
    completed = succeeded(
        run_cli("export", "--input", example_manifest, "--format", "trocr", "--output", tmp_path / "exports")
    )
    assert not any(mark in completed.stderr for mark in PROGRESS_MARKS), completed.stderr


def test_quiet_prints_no_progress_bar(tmp_path, example_manifest):
    completed = succeeded(
        run_cli(
            "export",
            "--input",
            example_manifest,
            "--format",
            "trocr",
            "--output",
            tmp_path / "exports",
            "--quiet",
            console_script=True,
            terminal=True,
        )
    )
    assert not any(mark in completed.stderr for mark in PROGRESS_MARKS), completed.stderr
    assert "load_batch(" in completed.stdout


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_num_proc_must_be_a_whole_number_of_one_or_more(value, tmp_path, example_manifest):
    root = tmp_path / "exports"
    completed = run_cli(
        "export", "--input", example_manifest, "--format", "trocr", "--output", root, f"--num-proc={value}", "--quiet"
    )
    # argparse's own usage error, like any other malformed option.
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "error: argument --num-proc" in completed.stderr and "1 or more" in completed.stderr
    assert not root.exists()


def test_ctrl_c_in_a_command_that_publishes_nothing_says_only_interrupted(tmp_path, monkeypatch):
    from ocr_datasets import api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "list_exports", interrupted)
    completed = run_cli("list", "--output", tmp_path)
    assert (completed.returncode, completed.stderr) == (130, "ocr-datasets: interrupted\n")
