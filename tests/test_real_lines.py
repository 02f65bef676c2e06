"""The real Fraktur lines survive an export to every format: once the source images are gone, a
fresh offline process loads every batch with the same ids, texts (long s, combining e) and pixels."""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from support.data import LINE_GT_LINES, line_gt_samples, run_python

from ocr_datasets import FORMAT_NAMES, export_all

LINE_COUNT = LINE_GT_LINES
BATCH_ID = "fraktur"
LONG_S = "\u017f"
COMBINING_E = "\u0364"


def pixel_summary(image) -> dict:
    # Also run in the fresh process (sent as source), so both sides compare pixels the same way.
    return {"mode": image.mode, "size": list(image.size), "sha256": hashlib.sha256(image.tobytes()).hexdigest()}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class FrakturExport:
    batches: dict[str, Path]
    ids: list[str]
    texts: dict[str, str]
    pixels: dict[str, dict]
    file_digests: dict[str, str]


@pytest.fixture(scope="module")
def module_hf_home(tmp_path_factory):
    """The autouse per-test HF home is not active yet when module fixtures run; this one keeps
    them offline and away from the user's cache too."""
    home = tmp_path_factory.mktemp("real-lines-hf-home")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "HF_HOME": home,
            "HF_DATASETS_CACHE": home / "datasets",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
        }.items():
            patch.setenv(name, str(value))
        yield home


@pytest.fixture(scope="module")
def fraktur_export(module_hf_home, line_gt_copy, tmp_path_factory) -> FrakturExport:
    """Every format exported from a private copy of the lines, whose images are then moved away."""
    root = tmp_path_factory.mktemp("real-lines")
    sources = root / "lines"
    shutil.copytree(line_gt_copy, sources)
    samples = line_gt_samples(sources)
    assert len(samples) == LINE_COUNT
    pixels = {}
    for sample in samples:
        with Image.open(sample.image_path) as image:
            assert image.format == "TIFF"
            pixels[sample.id] = pixel_summary(image)
    results = export_all(samples, batch_id=BATCH_ID, output_dir=root / "exports", progress=False)
    expected = FrakturExport(
        batches={result.export_format: Path(result.export_path) for result in results},
        ids=[sample.id for sample in samples],
        texts={sample.id: sample.ground_truth for sample in samples},
        pixels=pixels,
        file_digests={sample.id: file_sha256(Path(sample.image_path)) for sample in samples},
    )
    # Moved, not deleted: a batch that still pointed at a source path would now break.
    sources.rename(root / "lines-moved")
    assert not sources.exists()
    return expected


LOAD_IN_FRESH_PROCESS = """
import datasets
from ocr_datasets.adapters import get_adapter

loaded = {}
for export_format, batch in BATCHES.items():
    # One cache for all formats: the batches share their folder name, which datasets keys its cache by.
    rows = datasets.load_dataset(batch, cache_dir=CACHE_DIR, split="train")
    adapter = get_adapter(export_format)
    loaded[export_format] = [
        {
            "id": row["id"],
            "text": adapter.transcription(row),
            "pixels": [pixel_summary(image) for image in adapter.images(row)],
        }
        for row in rows
    ]
print(json.dumps(loaded))
"""


@pytest.fixture(scope="module")
def loaded_in_fresh_process(fraktur_export, module_hf_home) -> dict[str, list[dict]]:
    batches = {export_format: str(path) for export_format, path in fraktur_export.batches.items()}
    code = "\n".join(
        [
            "import hashlib, json",
            inspect.getsource(pixel_summary),
            f"BATCHES = {batches!r}",
            f"CACHE_DIR = {str(module_hf_home / 'load-cache')!r}",
            LOAD_IN_FRESH_PROCESS,
        ]
    )
    return json.loads(run_python(code, HF_DATASETS_OFFLINE="1"))


def count_lines_with(texts, character: str) -> tuple[int, int]:
    """Lines holding ``character`` and its occurrences in all."""
    texts = list(texts)
    return sum(character in text for text in texts), sum(text.count(character) for text in texts)


def test_all_formats_were_exported(fraktur_export):
    assert sorted(fraktur_export.batches) == sorted(FORMAT_NAMES)


@pytest.mark.parametrize("export_format", FORMAT_NAMES)
def test_batch_loads_every_line_with_its_text_without_the_sources(
    export_format, fraktur_export, loaded_in_fresh_process
):
    rows = loaded_in_fresh_process[export_format]
    assert [row["id"] for row in rows] == fraktur_export.ids
    assert {row["id"]: row["text"] for row in rows} == fraktur_export.texts


@pytest.mark.parametrize("character", [LONG_S, COMBINING_E], ids=["long-s", "combining-e"])
@pytest.mark.parametrize("export_format", FORMAT_NAMES)
def test_historical_characters_survive(export_format, character, fraktur_export, loaded_in_fresh_process):
    expected = count_lines_with(fraktur_export.texts.values(), character)
    # The corpus must hold the character, or this test would prove nothing.
    assert expected[0] > 0
    assert count_lines_with((row["text"] for row in loaded_in_fresh_process[export_format]), character) == expected


@pytest.mark.parametrize("export_format", FORMAT_NAMES)
def test_batch_images_have_the_source_pixels(export_format, fraktur_export, loaded_in_fresh_process):
    loaded = {row["id"]: row["pixels"] for row in loaded_in_fresh_process[export_format]}
    assert loaded == {line_id: [pixels] for line_id, pixels in fraktur_export.pixels.items()}


def read_view(path: Path) -> list[dict]:
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# Each view: its batch's format, its file name, and how one record names the text and the images.
VIEWS = {
    "trocr": ("trocr", "train.jsonl", lambda record: (record["text"], [record["file_name"]])),
    "llama_vision": (
        "llama_vision",
        "train.jsonl",
        lambda record: (record["messages"][1]["content"][0]["text"], record["images"]),
    ),
    "generic": ("generic", "data.jsonl", lambda record: (record["ground_truth"], [record["image_path"]])),
    "generic-array": ("generic", "data.json", lambda record: (record["ground_truth"], [record["image_path"]])),
}


@pytest.mark.parametrize("view", VIEWS)
def test_view_holds_the_texts_and_copies_of_the_source_images(view, fraktur_export):
    export_format, file_name, text_and_images = VIEWS[view]
    batch = fraktur_export.batches[export_format]
    records = read_view(batch / file_name)
    assert [record["id"] for record in records] == fraktur_export.ids
    for record in records:
        text, images = text_and_images(record)
        assert text == fraktur_export.texts[record["id"]]
        assert not any(Path(image).is_absolute() for image in images)
        assert [file_sha256(batch / image) for image in images] == [fraktur_export.file_digests[record["id"]]]
