"""Hostile batch and sample ids never write outside the batch; sample ids map to unique, safe
file names and stay verbatim in the data."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from ocr_datasets import TrainingSample, export, export_all, load_batch
from ocr_datasets.adapters import FORMAT_NAMES, get_adapter

HOSTILE_IDS = {
    "parent": "../../escaped",
    "absolute": "/etc/passwd",
    "slash": "a/b/c",
    "backslash": "a\\b\\..\\c",
    "dot": ".",
    "dot-dot": "..",
    "hidden": ".bashrc",
    "nul": "line\x00one",
    "newline": "line\ntwo",
    "very-long": "x" * 5000,
    "windows-reserved": "CON",
    "reserved-with-suffix": "nul.txt",
    "fullwidth-lookalike": "ｃｏｎ",  # noqa: RUF001 (the lookalike is the point)
    "cyrillic-lookalike": "раssword",  # noqa: RUF001 (the first two letters are Cyrillic, the point)
    "trailing-dot-space": "line. ",
    "drive": "C:\\Windows\\system32",
    "url": "file:///etc/passwd",
    "dash-option": "-rf",
    "case-twin-upper": "Zeile",
    "case-twin-lower": "zeile",
    "emoji": "📜 Brief",
}


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (32, 12), color=shade).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def exported(tmp_path):
    samples = [
        TrainingSample(id=sample_id, image_path=None, image_bytes=png(10 + 10 * number), ground_truth=f"Zeile {number}")
        for number, sample_id in enumerate(HOSTILE_IDS.values())
    ]
    root = tmp_path / "root" / "exports"
    results = export_all(samples, batch_id="b1", output_dir=root, progress=False)
    return tmp_path, root, results


def test_every_file_stays_inside_its_batch_folder(exported):
    tmp_path, _, results = exported
    batches = {Path(result.export_path).resolve() for result in results}
    for path in (tmp_path / "root").rglob("*"):
        if path.is_file() and ".load-cache" not in path.parts:
            # The verdict cache, beside the batches, holds only hashes and sizes (tests/test_verdicts.py).
            in_cache = path.parent == tmp_path / "root" / "exports" / ".ocr-datasets"
            assert in_cache or any(batch in path.resolve().parents for batch in batches), path
    assert sorted(path.name for path in tmp_path.iterdir()) == ["root"]


def test_each_id_gets_its_own_safe_file(exported):
    _, root, _ = exported
    names = [
        json.loads(line)["file_name"]
        for line in (root / "trocr" / "b1" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(names) == len(HOSTILE_IDS)
    assert len({name.casefold() for name in names}) == len(names), (
        "two ids share a file (or would on a case-insensitive disk)"
    )
    for name in names:
        file_name = name.removeprefix("images/")
        assert "/" not in file_name and "\\" not in file_name and not file_name.startswith(".")
        assert file_name.isascii() and file_name.isprintable() and len(file_name) <= 120
        assert file_name.split(".")[0].casefold() not in {"con", "nul", "prn", "aux"}
        assert (root / "trocr" / "b1" / name).is_file()


@pytest.mark.parametrize("folder", [get_adapter(name).folder for name in FORMAT_NAMES])
def test_ids_are_kept_verbatim_in_the_data(exported, folder, tmp_path):
    _, root, _ = exported
    ids = pq.read_table(root / folder / "b1" / "data" / "train-00000-of-00001.parquet").column("id").to_pylist()
    assert ids == list(HOSTILE_IDS.values())
    assert load_batch(root / folder / "b1", cache_dir=tmp_path / "cache")["train"]["id"] == list(HOSTILE_IDS.values())


HOSTILE_BATCH_IDS = [sample_id for kind, sample_id in HOSTILE_IDS.items() if not kind.startswith("case-twin")] + [
    "",
    "b1/../../x",
    "b" * 101,
]


@pytest.mark.parametrize("batch_id", HOSTILE_BATCH_IDS)
def test_hostile_batch_ids_are_refused_before_anything_is_written(batch_id, tmp_path):
    sample = TrainingSample(id="a", image_path=None, image_bytes=png(50), ground_truth="Zeile")
    with pytest.raises(ValueError, match="not a safe folder name"):
        export([sample], "trocr", batch_id=batch_id, output_dir=tmp_path / "exports", progress=False)
    assert not (tmp_path / "exports").exists()
