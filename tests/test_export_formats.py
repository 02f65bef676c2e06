"""Each format: exact row shapes, JSONL views, and a round trip that survives the source images moving away."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil

import pyarrow.parquet as pq
import pytest
from PIL import Image
from support.data import run_python

from ocr_datasets import TrainingSample, build_dataset, export, export_all, read_manifest
from ocr_datasets.adapters import FORMAT_NAMES, get_adapter

FOLDERS = {name: get_adapter(name).folder for name in FORMAT_NAMES}


def pixel_digest(image: Image.Image) -> str:
    return hashlib.sha256(image.mode.encode() + repr(image.size).encode() + image.tobytes()).hexdigest()


@pytest.mark.parametrize("export_format", FOLDERS)
def test_round_trip_after_sources_are_gone(export_format, example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    expected = {sample.id: (sample.ground_truth, pixel_digest(Image.open(sample.image_path))) for sample in samples}
    result = export(samples, export_format, batch_id="b1", output_dir=tmp_path / "exports", progress=False)
    shutil.rmtree(example_manifest.parent)

    loaded = run_python(
        f"""
        import hashlib, json
        from datasets import load_dataset
        from ocr_datasets.adapters import get_adapter
        adapter = get_adapter({export_format!r})
        rows = load_dataset({result.export_path!r}, split="train", cache_dir={str(tmp_path / "cache")!r})
        def digest(image):
            return hashlib.sha256(image.mode.encode() + repr(image.size).encode() + image.tobytes()).hexdigest()
        out = {{}}
        for row in rows:
            [image] = adapter.images(row)
            out[row["id"]] = [adapter.transcription(row), digest(image)]
        print(json.dumps(out))
        """
    )
    assert {key: tuple(value) for key, value in json.loads(loaded).items()} == expected
    assert result.export_path == str(tmp_path / "exports" / FOLDERS[export_format] / "b1")
    assert result.sample_count == len(samples)


def test_trocr_rows_and_view(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    batch = tmp_path / "exports" / "trocr" / "b1"
    export(samples, "trocr", batch_id="b1", output_dir=tmp_path / "exports", progress=False)

    table = pq.read_table(batch / "data" / "train-00000-of-00001.parquet")
    assert table.column_names == ["image", "text", "id"]
    assert table.column("image").to_pylist()[0]["bytes"] == samples[0].image_path.read_bytes()

    lines = [json.loads(line) for line in (batch / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == [sample.id for sample in samples]
    for line, sample in zip(lines, samples, strict=True):
        assert set(line) == {"file_name", "text", "id"}
        assert line["text"] == sample.ground_truth
        assert (batch / line["file_name"]).read_bytes() == sample.image_path.read_bytes()


def test_llama_vision_rows_have_no_system_turn_and_image_first(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    batch = tmp_path / "exports" / "llama-vision" / "b1"
    export(
        samples,
        "llama_vision",
        batch_id="b1",
        output_dir=tmp_path / "exports",
        instruction="Transkribiere.",
        progress=False,
    )

    rows = pq.read_table(batch / "data" / "train-00000-of-00001.parquet").to_pylist()
    assert list(rows[0]) == ["id", "images", "messages"]
    for row, sample in zip(rows, samples, strict=True):
        assert len(row["images"]) == 1
        assert row["messages"] == [
            {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Transkribiere."}]},
            {"role": "assistant", "content": [{"type": "text", "text": sample.ground_truth}]},
        ]


def test_generic_keeps_every_field_and_its_view_reads_back_as_input(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    batch = tmp_path / "exports" / "generic" / "b1"
    export(samples, "generic", batch_id="b1", output_dir=tmp_path / "exports", progress=False)

    rows = pq.read_table(batch / "data" / "train-00000-of-00001.parquet").to_pylist()
    assert [json.loads(row["metadata"]) for row in rows] == [sample.metadata for sample in samples]
    assert [(row["ocr_text"], row["ocr_confidence"]) for row in rows] == [
        (s.ocr_text, s.ocr_confidence) for s in samples
    ]

    array = json.loads((batch / "data.json").read_text(encoding="utf-8"))
    lines = [json.loads(line) for line in (batch / "data.jsonl").read_text(encoding="utf-8").splitlines()]
    assert array == lines
    reread = list(read_manifest(batch / "data.jsonl"))
    assert [(s.id, s.ground_truth, s.ocr_text, s.ocr_confidence, s.metadata) for s in reread] == [
        (s.id, s.ground_truth, s.ocr_text, s.ocr_confidence, s.metadata) for s in samples
    ]
    assert [s.image_path.read_bytes() for s in reread] == [s.image_path.read_bytes() for s in samples]


@pytest.mark.parametrize("export_format", FOLDERS)
def test_without_copies_the_batch_is_parquet_card_and_manifest(export_format, example_manifest, tmp_path):
    result = export(
        read_manifest(example_manifest),
        export_format,
        batch_id="b1",
        output_dir=tmp_path,
        copy_images=False,
        progress=False,
    )
    names = sorted(
        path.relative_to(result.export_path).as_posix()
        for path in tmp_path.joinpath(FOLDERS[export_format], "b1").rglob("*")
    )
    assert names == ["README.md", "data", "data/train-00000-of-00001.parquet", "manifest.json"]


@pytest.mark.parametrize("export_format", ["trocr", "generic"])
def test_base64_views_carry_the_image_inline(export_format, example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    result = export(samples, export_format, batch_id="b1", output_dir=tmp_path, include_base64=True, progress=False)
    view = next(path for path in tmp_path.joinpath(FOLDERS[export_format], "b1").glob("*.jsonl"))
    first = json.loads(view.read_text(encoding="utf-8").splitlines()[0])
    header, _, payload = first["image_base64"].partition(",")
    assert header == "data:image/png;base64"
    assert base64.b64decode(payload) == samples[0].image_path.read_bytes()
    assert result.sample_count == len(samples)


def test_tiff_lines_become_png_data_urls_with_the_same_pixels(tmp_path):
    tiff = io.BytesIO()
    Image.new("1", (40, 12), color=1).save(tiff, format="TIFF", compression="group4")
    sample = TrainingSample(id="t1", image_path="t1.tif", image_bytes=tiff.getvalue(), ground_truth="ſ")
    export([sample], "generic", batch_id="b1", output_dir=tmp_path, include_base64=True, progress=False)
    line = json.loads((tmp_path / "generic" / "b1" / "data.jsonl").read_text(encoding="utf-8"))
    header, _, payload = line["image_base64"].partition(",")
    assert header == "data:image/png;base64"
    converted = Image.open(io.BytesIO(base64.b64decode(payload)))
    assert converted.format == "PNG"
    assert pixel_digest(converted) == pixel_digest(Image.open(tiff))
    assert (tmp_path / "generic" / "b1" / "images" / "t1.tif").read_bytes() == tiff.getvalue()


def test_all_formats_share_one_batch_id_and_refuse_to_half_overwrite(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    results = export_all(samples, batch_id="b1", output_dir=tmp_path, progress=False)
    assert [(r.export_format, r.batch_id) for r in results] == [(name, "b1") for name in FORMAT_NAMES]

    shutil.rmtree(tmp_path / "trocr" / "b1")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_all(samples, batch_id="b1", output_dir=tmp_path, progress=False)
    assert not (tmp_path / "trocr" / "b1").exists()


def test_export_returns_one_result_and_export_all_a_list_whatever_the_formats(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    with pytest.raises(ValueError, match="export_all"):
        export(samples, "all", batch_id="b0", output_dir=tmp_path, progress=False)
    [only] = export_all(samples, batch_id="b2", output_dir=tmp_path, formats=["generic"], progress=False)
    assert only.export_format == "generic" and not (tmp_path / "trocr" / "b2").exists()


def test_an_option_the_call_does_not_take_is_named(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    with pytest.raises(TypeError, match="'copy_image'"):
        export(samples, "trocr", output_dir=tmp_path, copy_image=False)
    with pytest.raises(TypeError, match="'split'"):
        build_dataset(samples, split="train=0.5,test=0.5")
