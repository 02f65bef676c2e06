"""Each image is read once, and decoded only if the verdict cache does not know its bytes; no state
of the cache (damaged, from another version, being written by another export) lets a broken
image pass."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from support.data import line_png

from ocr_datasets import TrainingSample, ValidationError, export, export_all
from ocr_datasets import validation as validation_module
from ocr_datasets.cli import main as cli_main
from ocr_datasets.validation import ImageCheck
from ocr_datasets.verdicts import Verdict, VerdictCache, cache_path


@dataclass(slots=True)
class CountedSample(TrainingSample):
    """A sample that counts how often its image is read (the export runs in this process)."""

    reads: ClassVar[dict[str, int]] = {}

    def read_image_bytes(self) -> bytes:
        CountedSample.reads[self.id] = CountedSample.reads.get(self.id, 0) + 1
        return TrainingSample.read_image_bytes(self)


def lines(folder: Path, numbers: range, kind: type[TrainingSample] = TrainingSample) -> list[TrainingSample]:
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for number in numbers:
        image = folder / f"line-{number}.png"
        if not image.exists():
            image.write_bytes(line_png(number))
        samples.append(kind(id=f"line-{number}", image_path=image, ground_truth=f"Zeile {number}"))
    return samples


def broken_line(folder: Path) -> TrainingSample:
    """A truncated PNG: decoding it fails, so only a cached verdict could let it pass."""
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / "broken.png"
    data = line_png(999)
    image.write_bytes(data[: len(data) // 2])
    return TrainingSample(id="broken", image_path=image, ground_truth="kaputt")


def image_checks(result) -> dict[str, int]:
    return result.read_manifest()["image_checks"]


def context(keep_image_metadata: bool = False) -> str:
    return ImageCheck(keep_image_metadata).context()


def passing_verdict_for(data: bytes) -> tuple[str, Verdict]:
    sha256 = hashlib.sha256(data).hexdigest()
    return sha256, Verdict(80, 20, "L", "PNG", False, sha256, "PNG")


@pytest.fixture(params=[1, 2], ids=["serial", "pool"])
def num_proc(request, monkeypatch) -> int:
    """1, or 2 with a pool of worker processes even for a handful of images (each looks
    verdicts up through its own connection)."""
    if request.param > 1:
        monkeypatch.setattr(validation_module, "_MIN_IMAGES_PER_PROCESS", 1)
    return request.param


def test_an_export_reads_each_image_once_for_every_format(tmp_path):
    CountedSample.reads.clear()
    samples = lines(tmp_path / "input", range(40), CountedSample)
    results = export_all(samples, batch_id="b1", output_dir=tmp_path / "exports", progress=False, num_proc=1)
    assert CountedSample.reads == {sample.id: 1 for sample in samples}
    assert all(image_checks(result) == {"decoded": 40, "verdicts_from_cache": 0} for result in results)


def test_a_re_export_decodes_only_the_images_it_has_not_seen(num_proc, tmp_path):
    root = tmp_path / "exports"
    first = export(lines(tmp_path / "input", range(30)), "trocr", "b1", root, progress=False, num_proc=num_proc)
    assert image_checks(first) == {"decoded": 30, "verdicts_from_cache": 0}

    grown = lines(tmp_path / "input", range(33))
    again = export(grown, "trocr", "b2", root, progress=False, num_proc=num_proc)
    assert image_checks(again) == {"decoded": 3, "verdicts_from_cache": 30}
    assert again.read_manifest()["counts"]["exported"] == 33

    third = export(grown, "trocr", "b3", root, progress=False, num_proc=num_proc)
    assert image_checks(third) == {"decoded": 0, "verdicts_from_cache": 33}


def batch_content(result) -> dict[str, str]:
    """sha256 of every data file and image of a batch (the card and manifest carry its id and time)."""
    batch = Path(result.export_path)
    return {
        str(path.relative_to(batch)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(batch.rglob("*"))
        if path.is_file() and path.name not in ("README.md", "manifest.json")
    }


def test_the_batch_is_the_same_with_and_without_the_cache(tmp_path):
    root = tmp_path / "exports"
    samples = lines(tmp_path / "input", range(20))
    decoding = export(samples, "llama_vision", "b1", root, progress=False, split="train=0.5,test=0.5")
    cached = export(samples, "llama_vision", "b2", root, progress=False, split="train=0.5,test=0.5")
    uncached = export(samples, "llama_vision", "b3", root, progress=False, split="train=0.5,test=0.5", cache=False)
    assert image_checks(cached)["verdicts_from_cache"] == 20 and image_checks(uncached)["decoded"] == 20
    assert batch_content(decoding) == batch_content(cached) == batch_content(uncached)
    fingerprints = {result.read_manifest()["fingerprint"] for result in (decoding, cached, uncached)}
    assert len(fingerprints) == 1


def test_no_cache_neither_reads_nor_writes_the_cache(tmp_path):
    root = tmp_path / "exports"
    samples = lines(tmp_path / "input", range(5))
    manifest = write_manifest(tmp_path, samples)
    flags = ["--format", "trocr", "--output", str(root), "--batch-id", "b1", "--no-cache", "--quiet"]
    code = cli_main(["export", "--input", str(manifest), *flags])
    assert code == 0
    assert not (root / ".ocr-datasets").exists()
    export(samples, "trocr", "b2", root, progress=False)
    uncached = export(samples, "trocr", "b3", root, progress=False, cache=False)
    assert image_checks(uncached) == {"decoded": 5, "verdicts_from_cache": 0}


def write_manifest(folder: Path, samples: list[TrainingSample]) -> Path:
    manifest = folder / "samples.jsonl"
    manifest.write_text(
        "".join(
            json.dumps({"id": s.id, "image_path": str(s.image_path), "ground_truth": s.ground_truth}) + "\n"
            for s in samples
        ),
        encoding="utf-8",
    )
    return manifest


def test_the_cache_holds_no_image_data_and_no_text(tmp_path):
    root = tmp_path / "exports"
    samples = lines(tmp_path / "input", range(10))
    export(samples, "generic", "b1", root, progress=False)
    files = list((root / ".ocr-datasets").iterdir())
    assert files and all(path.name.startswith("verdicts.sqlite") for path in files)
    stored = b"".join(path.read_bytes() for path in files)
    for sample in samples:
        for text in (sample.id, sample.ground_truth, Path(sample.image_path).name, str(tmp_path)):
            assert text.encode() not in stored
        assert sample.read_image_bytes()[16:48] not in stored
    with sqlite3.connect(cache_path(root)) as connection:
        assert connection.execute("SELECT count(*) FROM verdicts").fetchone() == (10,)


def rejected_ids(error: ValidationError) -> list[str]:
    return [problem.sample_id for problem in error.report.rejected]


def export_with_broken(tmp_path: Path, num_proc: int = 1):
    samples = [*lines(tmp_path / "input", range(6)), broken_line(tmp_path / "input")]
    with pytest.raises(ValidationError) as raised:
        export(samples, "trocr", "b2", tmp_path / "exports", progress=False, num_proc=num_proc)
    return raised.value


def test_a_damaged_cache_file_is_started_afresh_and_passes_nothing(num_proc, tmp_path):
    root = tmp_path / "exports"
    export(lines(tmp_path / "input", range(6)), "trocr", "b1", root, progress=False)
    cache_path(root).write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    for suffix in ("-wal", "-shm"):
        Path(f"{cache_path(root)}{suffix}").unlink(missing_ok=True)

    error = export_with_broken(tmp_path, num_proc)
    assert rejected_ids(error) == ["broken"] and "damaged or truncated" in str(error)

    with pytest.warns(UserWarning, match="verdict cache .* is damaged"):
        result = export(lines(tmp_path / "input", range(6)), "trocr", "b3", root, progress=False, num_proc=num_proc)
    assert image_checks(result) == {"decoded": 6, "verdicts_from_cache": 0}
    again = export(lines(tmp_path / "input", range(6)), "trocr", "b4", root, progress=False, num_proc=num_proc)
    assert image_checks(again) == {"decoded": 0, "verdicts_from_cache": 6}


def test_a_damaged_entry_is_no_verdict(tmp_path):
    root = tmp_path / "exports"
    broken = broken_line(tmp_path / "input")
    VerdictCache(cache_path(root), context()).store([passing_verdict_for(broken.read_image_bytes())])
    with sqlite3.connect(cache_path(root)) as connection:
        connection.execute("UPDATE verdicts SET width = width + 1")

    error = export_with_broken(tmp_path)
    assert rejected_ids(error) == ["broken"]


@pytest.mark.parametrize("other", ["rules 0; Pillow 1.0; keep_image_metadata False", context(keep_image_metadata=True)])
def test_a_verdict_made_under_other_rules_or_another_pillow_does_not_count(other, tmp_path):
    root = tmp_path / "exports"
    broken = broken_line(tmp_path / "input")
    VerdictCache(cache_path(root), other).store([passing_verdict_for(broken.read_image_bytes())])
    error = export_with_broken(tmp_path)
    assert rejected_ids(error) == ["broken"]


def test_new_validation_rules_decode_every_image_again(tmp_path, monkeypatch):
    root = tmp_path / "exports"
    samples = lines(tmp_path / "input", range(8))
    export(samples, "trocr", "b1", root, progress=False)
    monkeypatch.setattr(validation_module, "IMAGE_RULES_VERSION", validation_module.IMAGE_RULES_VERSION + 1)
    result = export(samples, "trocr", "b2", root, progress=False)
    assert image_checks(result) == {"decoded": 8, "verdicts_from_cache": 0}


def test_verdicts_another_export_has_not_committed_do_not_count(num_proc, tmp_path):
    root = tmp_path / "exports"
    export(lines(tmp_path / "input", range(6)), "trocr", "b1", root, progress=False)
    broken = broken_line(tmp_path / "input")
    # A well-made entry passing the broken image, as another export would be storing it.
    elsewhere = tmp_path / "elsewhere.sqlite"
    VerdictCache(elsewhere, context()).store([passing_verdict_for(broken.read_image_bytes())])
    with sqlite3.connect(elsewhere) as connection:
        [entry] = connection.execute("SELECT * FROM verdicts").fetchall()
    with sqlite3.connect(cache_path(root), isolation_level=None) as writing:
        writing.execute("BEGIN IMMEDIATE")
        writing.execute("INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", entry)
        error = export_with_broken(tmp_path, num_proc)
        writing.execute("ROLLBACK")
    assert rejected_ids(error) == ["broken"]
