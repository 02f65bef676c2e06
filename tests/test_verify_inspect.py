"""``verify`` finds every way a batch was damaged after export, naming the file or count, and
``inspect`` reads back the figures the manifest holds."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.cli import run_cli

from ocr_datasets import TrainingSample, export
from ocr_datasets.adapters import FORMAT_NAMES
from ocr_datasets.cli import main as cli_main
from ocr_datasets.example import example_samples
from ocr_datasets.verify import inspect_batch, verify_batch

FORMATS = FORMAT_NAMES
TRAIN_SHARD = "data/train-00000-of-00001.parquet"
TEST_SHARD = "data/test-00000-of-00001.parquet"
# The generic format's JSONL view of the test split.
TEST_VIEW = "data-test.jsonl"
LONG_S = "\u017f"


def run_in_process(capsys, *args) -> tuple[int, str, str]:
    """The command's own ``main`` (what the console script calls): exit status, stdout, stderr."""
    status = cli_main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def inspect_sections(stdout: str) -> dict[str, list[str]]:
    """The lines ``inspect`` prints under each ``[split]`` heading, heading included."""
    sections: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        if line.startswith("["):
            sections[line[1 : line.index("]")]] = []
        if sections and line:
            sections[next(reversed(sections))].append(line)
    return sections


def read_manifest(batch: Path) -> dict:
    return json.loads((batch / "manifest.json").read_text(encoding="utf-8"))


def write_manifest(batch: Path, manifest: dict) -> None:
    (batch / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")


def record_current_checksum(batch: Path, name: str) -> None:
    """Make the manifest agree with a file's current bytes, as a careful tamperer would."""
    manifest = read_manifest(batch)
    data = (batch / name).read_bytes()
    manifest["checksums"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    write_manifest(batch, manifest)


def assert_problems_are(problems: list[str], expected_starts: list[str]) -> None:
    """Every expected problem is reported, and nothing else."""
    missing = [start for start in expected_starts if not any(problem.startswith(start) for problem in problems)]
    unexplained = [problem for problem in problems if not any(problem.startswith(start) for start in expected_starts)]
    assert not missing and not unexplained, f"missing: {missing}\nunexplained: {unexplained}\nreported: {problems}"


def export_quietly(samples, export_format: str, root: Path, **options) -> Path:
    return Path(export(samples, export_format, batch_id="b1", output_dir=root, progress=False, **options).export_path)


def samples_with_rejects_and_a_duplicate() -> list[TrainingSample]:
    samples = list(example_samples(8))
    return [
        *samples,
        dataclasses.replace(samples[0], id="copy-of-first"),
        dataclasses.replace(samples[1], id="untranscribed", ground_truth="   "),
        TrainingSample(id="lost", image_path="no-such-folder/lost.png", ground_truth="verloren"),
    ]


@pytest.fixture(scope="module")
def pristine_batches(tmp_path_factory) -> dict[str, Path]:
    """Fresh exports, never modified: one per format, one without views, and a generic batch with
    two splits, rejected samples and a duplicate."""
    root = tmp_path_factory.mktemp("pristine")
    samples = list(example_samples(6))
    batches = {export_format: export_quietly(samples, export_format, root / export_format) for export_format in FORMATS}
    batches["trocr-without-views"] = export_quietly(samples, "trocr", root / "no-views", copy_images=False)
    batches["split-rejects-duplicates"] = export_quietly(
        samples_with_rejects_and_a_duplicate(),
        "generic",
        root / "mixed",
        split={"train": 0.5, "test": 0.5},
        split_strategy="balanced",
        skip_invalid=True,
    )
    return batches


@pytest.fixture
def damaged_copy(pristine_batches, tmp_path) -> Path:
    """A private copy of the richest batch, free to tamper with."""
    return Path(shutil.copytree(pristine_batches["split-rejects-duplicates"], tmp_path / "b1"))


# --- a whole batch --------------------------------------------------------------------------------


def test_richest_batch_has_every_kind_of_file_verify_checks(pristine_batches):
    batch = pristine_batches["split-rejects-duplicates"]
    manifest = read_manifest(batch)

    assert manifest["counts"] == {"input": 11, "exported": 8, "rejected": 2, "duplicates": 1}
    assert manifest["splits"] == {"train": 4, "test": 4}
    for name in ("rejected.jsonl", "duplicates.jsonl", "data.jsonl", TEST_VIEW, TRAIN_SHARD, TEST_SHARD):
        assert (batch / name).is_file(), name
    assert len(list((batch / "images").iterdir())) == 8


@pytest.mark.parametrize("kind", [*FORMATS, "trocr-without-views", "split-rejects-duplicates"])
def test_fresh_batch_verifies_without_problems(kind, pristine_batches):
    assert verify_batch(pristine_batches[kind]) == []


def test_verify_command_exits_0_and_says_ok_for_a_fresh_batch(pristine_batches):
    batch = pristine_batches["split-rejects-duplicates"]

    completed = run_cli("verify", batch)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"{batch}: OK")
    assert completed.stderr == ""


# --- damage, each found and named -----------------------------------------------------------------
# Each function damages a batch and returns the starts of the problems verify must report.


def flip_a_byte_inside_an_image_in_parquet(batch: Path) -> list[str]:
    # Inside the (uncompressed) image bytes, the parquet file still reads: only the checksum can tell.
    path = batch / TRAIN_SHARD
    data = bytearray(path.read_bytes())
    image = pq.read_table(path, columns=["image"]).column("image")[0].as_py()["bytes"]
    data[data.find(image) + len(image) // 2] ^= 0xFF
    path.write_bytes(data)
    assert pq.read_table(path).num_rows == 4, "the flipped byte should leave the parquet file readable"
    return [f"{TRAIN_SHARD}: content differs from the manifest"]


def truncate_a_parquet_file(batch: Path) -> list[str]:
    path = batch / TRAIN_SHARD
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return [
        f"{TRAIN_SHARD}: content differs from the manifest",
        f"{TRAIN_SHARD}: parquet cannot be read",
        "split 'train': 0 rows in data/",
    ]


def delete_an_image(batch: Path) -> list[str]:
    image = sorted((batch / "images").iterdir())[0]
    image.unlink()
    return [f"images/{image.name}: listed in the manifest but missing"]


def add_a_stray_file(batch: Path) -> list[str]:
    (batch / "images" / "Thumbs.db").write_bytes(b"\0" * 16)
    return ["images/Thumbs.db: present but not listed in the manifest"]


def delete_a_view_line_and_fix_its_checksum(batch: Path) -> list[str]:
    view = batch / TEST_VIEW
    lines = view.read_text(encoding="utf-8").splitlines(keepends=True)
    view.write_text("".join(lines[:-1]), encoding="utf-8")
    record_current_checksum(batch, TEST_VIEW)
    return [f"{TEST_VIEW}: {len(lines) - 1} records, manifest says {len(lines)}"]


def raise_the_input_count(batch: Path) -> list[str]:
    manifest = read_manifest(batch)
    manifest["counts"]["input"] += 1
    write_manifest(batch, manifest)
    return [f"counts do not add up: input {manifest['counts']['input']}"]


def remove_a_split_file_and_its_manifest_entry(batch: Path) -> list[str]:
    (batch / TEST_SHARD).unlink()
    manifest = read_manifest(batch)
    del manifest["checksums"][TEST_SHARD]
    manifest["files"].remove(TEST_SHARD)
    write_manifest(batch, manifest)
    return [
        "split 'test': 0 rows in data/, manifest says 4",
        f"README.md: data file {TEST_SHARD} of split 'test' does not exist",
    ]


def strip_the_card_front_matter(batch: Path) -> list[str]:
    card = batch / "README.md"
    card.write_text(card.read_text(encoding="utf-8").split("---\n", 2)[2], encoding="utf-8")
    return ["README.md: content differs from the manifest", "README.md: no YAML front matter"]


def rename_the_default_config_and_fix_its_checksum(batch: Path) -> list[str]:
    card = batch / "README.md"
    card.write_text(
        card.read_text(encoding="utf-8").replace("config_name: generic-b1-", "config_name: other-b1-", 1),
        encoding="utf-8",
    )
    record_current_checksum(batch, "README.md")
    return ["README.md: expected one default config named"]


def drop_a_split_from_the_card_and_fix_its_checksum(batch: Path) -> list[str]:
    card = batch / "README.md"
    front, rest = card.read_text(encoding="utf-8").split("  - split: test\n", 1)
    card.write_text(front + rest.split("\n", 2)[2], encoding="utf-8")
    record_current_checksum(batch, "README.md")
    return ["README.md: split 'test' has 4 samples but no data files in the card"]


def remove_an_element_of_the_json_array_view_and_fix_its_checksum(batch: Path) -> list[str]:
    view = batch / "data.json"
    records = json.loads(view.read_text(encoding="utf-8"))
    view.write_text(
        "[\n" + ",\n".join(json.dumps(record, ensure_ascii=False) for record in records[1:]) + "\n]\n", encoding="utf-8"
    )
    record_current_checksum(batch, "data.json")
    return [f"data.json: {len(records) - 1} records, manifest says {len(records)}"]


def break_the_card_yaml(batch: Path) -> list[str]:
    card = batch / "README.md"
    card.write_text("---\nconfigs: [\n---\n" + card.read_text(encoding="utf-8").split("---\n", 2)[2], encoding="utf-8")
    return ["README.md: content differs from the manifest", "README.md: the front matter is not valid YAML"]


DAMAGE = [
    drop_a_split_from_the_card_and_fix_its_checksum,
    remove_an_element_of_the_json_array_view_and_fix_its_checksum,
    break_the_card_yaml,
    flip_a_byte_inside_an_image_in_parquet,
    truncate_a_parquet_file,
    delete_an_image,
    add_a_stray_file,
    delete_a_view_line_and_fix_its_checksum,
    raise_the_input_count,
    remove_a_split_file_and_its_manifest_entry,
    strip_the_card_front_matter,
    rename_the_default_config_and_fix_its_checksum,
]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda damage: damage.__name__)
def test_verify_reports_exactly_the_damage(damage, damaged_copy):
    expected = damage(damaged_copy)

    assert_problems_are(verify_batch(damaged_copy), expected)


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda damage: damage.__name__)
def test_verify_command_exits_1_naming_the_damage_on_stderr(damage, damaged_copy, capsys):
    expected = damage(damaged_copy)

    status, out, err = run_in_process(capsys, "verify", damaged_copy)

    assert status == 1
    assert "OK" not in out
    assert all(line.startswith(f"{damaged_copy}: ") for line in err.splitlines()), err
    assert_problems_are([line.removeprefix(f"{damaged_copy}: ") for line in err.splitlines()], expected)


def test_verify_console_script_exits_1_for_a_damaged_batch(damaged_copy):
    expected = add_a_stray_file(damaged_copy)

    # Through the installed command once: its exit status is what scripts see.
    completed = run_cli("verify", damaged_copy, console_script=True)

    assert completed.returncode == 1
    assert completed.stdout == ""
    assert all(start in completed.stderr for start in expected), completed.stderr


# A key the tools read, holding what no export writes (a manifest edited by hand): named, not a traceback.
MISSHAPEN = [
    ("splits", ["train", "test"], "splits is not an object of split names and their counts"),
    ("counts", {"exported": 20}, "counts is not an object of the counts input, exported, rejected and duplicates"),
    ("checksums", {"data.json": "0" * 64}, "checksums is not an object of file names, each with its sha256 and bytes"),
    ("sample_count", "20", "sample_count is not a count"),
    ("format", "tesseract", "format is not one of the formats trocr, llama_vision, generic, vlm, line_gt"),
    (
        "options",
        {"normalize": "nfc"},
        "options is not an object of the export's options (normalize NFC, NFD, NFKC or none)",
    ),
    ("statistics", {"train": []}, "statistics is not an object of split names, each an object of figures"),
    ("config_name", None, "config_name is not a configuration name"),
]


@pytest.mark.parametrize(("key", "value", "problem"), MISSHAPEN, ids=[key for key, _, _ in MISSHAPEN])
def test_verify_names_a_manifest_key_that_holds_what_no_export_writes(key, value, problem, damaged_copy):
    write_manifest(damaged_copy, read_manifest(damaged_copy) | {key: value})

    assert verify_batch(damaged_copy) == [f"manifest.json: {problem}"]


@pytest.mark.parametrize(("key", "value", "problem"), MISSHAPEN, ids=[key for key, _, _ in MISSHAPEN])
def test_eval_and_inspect_of_a_misshapen_manifest_exit_2_naming_the_key(key, value, problem, damaged_copy, tmp_path):
    write_manifest(damaged_copy, read_manifest(damaged_copy) | {key: value})
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text('{"id": "x", "prediction": "Zeile"}\n', encoding="utf-8")

    for command in (["eval", damaged_copy, "--predictions", predictions], ["inspect", damaged_copy]):
        completed = run_cli(*command)

        assert completed.returncode == 2, (command, completed.stderr)
        assert completed.stderr.startswith(f"ocr-datasets: error: {damaged_copy / 'manifest.json'}: {problem}")


# --- not a batch ------------------------------------------------------------------------------------


def test_verify_of_a_folder_without_manifest_says_it_is_not_a_batch(tmp_path):
    (tmp_path / "data").mkdir()

    with pytest.raises(FileNotFoundError, match=r"is not a batch folder: it has no manifest\.json"):
        verify_batch(tmp_path)


@pytest.mark.parametrize("command", ["verify", "inspect"])
def test_command_on_a_folder_without_manifest_exits_2_with_a_clear_message(command, tmp_path):
    completed = run_cli(command, tmp_path)

    assert completed.returncode == 2
    assert completed.stderr == f"ocr-datasets: error: {tmp_path} is not a batch folder: it has no manifest.json\n"
    assert completed.stdout == ""


# --- inspect ------------------------------------------------------------------------------------------


def test_inspect_batch_returns_the_manifests_counts_splits_and_statistics(pristine_batches):
    batch = pristine_batches["split-rejects-duplicates"]
    manifest = read_manifest(batch)

    figures = inspect_batch(batch)

    assert {key: figures[key] for key in ("format", "batch_id", "created_at", "counts", "splits", "statistics")} == {
        key: manifest[key] for key in ("format", "batch_id", "created_at", "counts", "splits", "statistics")
    }
    assert set(figures["statistics"]) == {"train", "test"}


def test_inspect_command_prints_counts_per_split_figures_and_alphabet(pristine_batches):
    batch = pristine_batches["split-rejects-duplicates"]
    statistics = read_manifest(batch)["statistics"]

    completed = run_cli("inspect", batch)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[:2] == [
        f"generic batch b1 ({read_manifest(batch)['created_at']})",
        "input 11, exported 8, rejected 2, duplicates 1",
    ]
    sections = inspect_sections(completed.stdout)
    assert list(sections) == list(statistics)
    for split, figures in statistics.items():
        width, baseline = figures["image_width"], figures["ocr_baseline"]
        assert sections[split][0] == f"[{split}] {figures['samples']} samples"
        assert (
            f"  image_width   min {width['min']}  median {width['median']}  mean {width['mean']}  max {width['max']}"
            in sections[split]
        )
        assert (
            f"  OCR baseline  CER {baseline['cer']:.2%}  grapheme CER {baseline['grapheme_cer']:.2%}  "
            f"WER {baseline['wer']:.2%}  over {baseline['lines']} lines" in sections[split]
        )
        alphabet_line = sections[split][-1]
        assert alphabet_line.startswith(f"  alphabet ({len(figures['alphabet'])}, most frequent first): ")
        assert (LONG_S in alphabet_line) == (LONG_S in figures["alphabet"])
    # The example's long-s line ("Am Fluſſe ſtand ...") is in one of the splits.
    assert any(LONG_S in figures["alphabet"] for figures in statistics.values())


def test_inspect_json_is_valid_json_equal_to_inspect_batch(pristine_batches):
    batch = pristine_batches["split-rejects-duplicates"]

    completed = run_cli("inspect", batch, "--json")

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == inspect_batch(batch)
    assert "ſ" in completed.stdout, "non-ASCII characters should be printed as themselves, not escaped"


def test_a_card_naming_its_data_files_by_glob_verifies(damaged_copy):
    card = damaged_copy / "README.md"
    text = card.read_text(encoding="utf-8")
    card.write_text(
        text.replace(f"    path:\n    - {TRAIN_SHARD}\n", "    path: data/train-*.parquet\n"), encoding="utf-8"
    )
    record_current_checksum(damaged_copy, "README.md")
    assert card.read_text(encoding="utf-8") != text
    assert verify_batch(damaged_copy) == []
