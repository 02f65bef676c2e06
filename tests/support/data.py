"""Test data and subprocess helpers shared by the test files."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from ocr_datasets import TrainingSample, export

# tests/data inside the repository: real data a plain clone carries (see tests/data/README.md).
REPO_DATA = Path(__file__).resolve().parents[1] / "data"
LINE_GT = REPO_DATA / "ocrd-line-gt"
# Lines and works in it, counted once by hand (ls *.gt.txt): the tests compare against these.
LINE_GT_LINES, LINE_GT_WORKS = 114, 38


def repo_copy(name: str, tmp_path_factory) -> Path:
    """A writable copy of ``tests/data/<name>``, so no test can change the data another reads."""
    source = REPO_DATA / name
    if not source.is_dir():
        pytest.fail(f"test data missing from the repository: {source}")
    copy = tmp_path_factory.mktemp(name) / name
    shutil.copytree(source, copy)
    return copy


def line_gt_samples(folder: Path) -> list[TrainingSample]:
    """One sample per ``<name>.tif`` + ``<name>.gt.txt`` pair, text exactly as in the file."""
    samples = []
    for image in sorted(folder.glob("*.tif")):
        text = image.with_suffix(".gt.txt").read_text(encoding="utf-8").rstrip("\n")
        samples.append(
            TrainingSample(
                id=image.stem, image_path=image, ground_truth=text, metadata={"work": image.stem.rsplit("_", 2)[0]}
            )
        )
    return samples


SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def line_gt_batch(
    folder: Path,
    output_dir: Path,
    export_format: str,
    batch_id: str,
    count: int | None = None,
    split: str | None = None,
) -> Path:
    """The folder of a batch of the real lines in ``folder`` (the first ``count``), split by
    ``split``, whole works to a split."""
    grouped = {"split": split, "group_by": "work"} if split else {}
    samples = line_gt_samples(folder)[:count]
    result = export(samples, export_format, batch_id=batch_id, output_dir=output_dir, progress=False, **grouped)
    return Path(result.export_path)


def run_script(name: str, *arguments: str) -> subprocess.CompletedProcess:
    """``scripts/<name>`` run in a fresh interpreter with ``arguments``, offline, its output kept."""
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *arguments],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        # The tiny models' tensors are so small that a second torch thread only costs.
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )


def run_python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter (offline, with the test's HF home) and return its stdout."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def loaded_texts(result, cache_dir: Path) -> dict[str, str]:
    """id -> transcription of an exported batch, read back with ``datasets.load_dataset``."""
    import datasets

    from ocr_datasets.adapters import get_adapter

    rows = datasets.load_dataset(result.export_path, split="train", cache_dir=str(cache_dir))
    return {row["id"]: get_adapter(result.export_format).transcription(row) for row in rows}


def line_png(number: int) -> bytes:
    """A small PNG line image reading "Zeile <number>": no two numbers give the same bytes."""
    picture = Image.new("L", (90, 20), 255)
    ImageDraw.Draw(picture).text((2, 4), f"Zeile {number}", fill=0)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def numbered_lines(count: int, text: str = "Zeile {number}") -> list[TrainingSample]:
    """``count`` lines of ``line_png`` images, ten to a page (``metadata["page"]``), their text
    ``text`` with the line's number."""
    return [
        TrainingSample(
            id=f"line-{number:03d}",
            image_path=f"line-{number:03d}.png",
            image_bytes=line_png(number),
            ground_truth=text.format(number=number),
            metadata={"page": number // 10},
        )
        for number in range(count)
    ]


def lines_with_twins(late_conflict: bool = False) -> list[TrainingSample]:
    """300 numbered lines whose texts hold two spaces (rows hold the normalised text), an id that
    differs from another only in case (its image file gets another name), a duplicate (exported
    once), and with ``late_conflict`` the first line's image again with another text, long after
    the first was written (both rejected, and the batch written again)."""
    page = {"page": 0}
    extra = [
        TrainingSample("LINE-007", "x.png", "Groß", image_bytes=line_png(1007), metadata=page),
        TrainingSample("twin", "twin.png", "Zeile 5", image_bytes=line_png(5), metadata=page),
    ]
    late = [TrainingSample("late", "late.png", "anders", image_bytes=line_png(0), metadata=page)]
    return [*numbered_lines(300, "Zeile  {number}"), *extra, *(late if late_conflict else [])]


def batch_files(result) -> dict[str, bytes]:
    """Every file of a batch but its card and manifest (which carry the batch id and time), by path."""
    batch = Path(result.export_path)
    return {
        str(path.relative_to(batch)): path.read_bytes()
        for path in sorted(batch.rglob("*"))
        if path.is_file() and path.name not in ("README.md", "manifest.json")
    }


# How every engine must write ``lines_with_twins`` alike: split by hash, balanced, and with a
# late conflict (see ``split_options``).
split_cases = pytest.mark.parametrize(
    ("strategy", "late_conflict"),
    [("hash", False), ("balanced", False), ("hash", True)],
    ids=["hash", "balanced", "late-conflict"],
)


def split_options(strategy: str) -> dict:
    """Three splits grouped by page with ``strategy``, invalid samples left out, no progress bars."""
    return {
        "split": "train=0.6,validation=0.2,test=0.2",
        "group_by": "page",
        "split_strategy": strategy,
        "skip_invalid": True,
        "progress": False,
    }
