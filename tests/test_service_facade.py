"""The original export service's calling code, unchanged, against the new library."""

from __future__ import annotations

import base64
import dataclasses
import inspect
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import ocr_datasets
from ocr_datasets import TrainingExportService, TrainingSample, get_training_export_service
from ocr_datasets.adapters import FORMAT_NAMES

RESULT_FIELDS = ["export_format", "export_path", "sample_count", "batch_id", "created_at", "manifest_path"]
GENERATED_BATCH_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")


@pytest.fixture
def samples(example_manifest) -> list[TrainingSample]:
    """The samples as the original service's callers built them: keyword arguments, str paths."""
    samples = []
    for line in example_manifest.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        samples.append(
            TrainingSample(
                id=record["id"],
                image_path=str(example_manifest.parent / record["image_path"]),
                ground_truth=record["ground_truth"],
                ocr_text=record["ocr_text"],
                ocr_confidence=record["ocr_confidence"],
                metadata=record["metadata"],
            )
        )
    return samples


@pytest.fixture
def export_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "exports"
    monkeypatch.setenv("OCR_EXPORT_PATH", str(root))
    return root


@pytest.fixture(autouse=True)
def fresh_shared_service():
    """The shared service is cached for the process: clear it so each test's environment applies
    and no test hands its service to the next."""
    get_training_export_service.cache_clear()
    yield
    get_training_export_service.cache_clear()


@pytest.mark.parametrize(
    "call, folder, batch_id",
    [
        pytest.param(lambda service, samples: service.export(samples, "trocr"), "trocr", None, id="trocr-generated-id"),
        pytest.param(
            lambda service, samples: service.export(
                samples, "llama_vision", batch_id="x", copy_images=True, include_base64=True
            ),
            "llama-vision",
            "x",
            id="llama_vision-keywords",
        ),
        pytest.param(
            lambda service, samples: service.export(samples, "generic", "y"), "generic", "y", id="generic-positional-id"
        ),
    ],
)
def test_original_calls_write_batches_where_the_original_service_did(call, folder, batch_id, samples, export_root):
    before = datetime.now(UTC)
    result = call(TrainingExportService(), samples)

    assert [field.name for field in dataclasses.fields(result)] == RESULT_FIELDS
    assert result.export_format == folder.replace("-", "_")
    assert result.sample_count == len(samples) == 12
    if batch_id is None:
        assert GENERATED_BATCH_ID.fullmatch(result.batch_id), result.batch_id
    else:
        assert result.batch_id == batch_id
    assert Path(result.export_path) == export_root / folder / result.batch_id
    assert Path(result.manifest_path) == Path(result.export_path) / "manifest.json"
    manifest = json.loads(Path(result.manifest_path).read_text(encoding="utf-8"))
    assert (manifest["format"], manifest["batch_id"], manifest["sample_count"]) == (
        result.export_format,
        result.batch_id,
        result.sample_count,
    )
    # The original's created_at is a datetime, the manifest holds it as ISO 8601 text.
    assert datetime.fromisoformat(manifest["created_at"]) == result.created_at
    assert result.created_at.utcoffset() == timedelta(0)
    assert before <= result.created_at <= datetime.now(UTC)


def test_generated_batch_ids_differ_between_exports(samples, export_root):
    service = TrainingExportService()
    first, second = service.export(samples[:2], "trocr"), service.export(samples[:2], "trocr")
    assert first.batch_id != second.batch_id
    assert sorted(path.name for path in (export_root / "trocr").iterdir()) == sorted([first.batch_id, second.batch_id])


def test_llama_vision_with_base64_carries_each_source_image_inline(samples, export_root):
    result = TrainingExportService().export(
        samples, "llama_vision", batch_id="x", copy_images=True, include_base64=True
    )
    batch = Path(result.export_path)
    rows = [json.loads(line) for line in (batch / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    sources = {sample.id: Path(sample.image_path).read_bytes() for sample in samples}
    assert [row["id"] for row in rows] == list(sources)
    for row in rows:
        [image_part] = [part for turn in row["messages"] for part in turn["content"] if part["type"] == "image_url"]
        prefix, encoded = image_part["image_url"]["url"].split(",", 1)
        assert prefix == "data:image/png;base64"
        assert base64.b64decode(encoded) == sources[row["id"]]
    # copy_images=True: the image files are in the batch as well.
    assert sorted(path.read_bytes() for path in (batch / "images").iterdir()) == sorted(sources.values())


def test_export_result_is_used_as_the_original_callers_used_it(samples, export_root):
    result = TrainingExportService().export(samples[:2], "trocr", "b1")

    assert isinstance(result.created_at, datetime)
    assert result.created_at.tzinfo is not None
    assert result.created_at.isoformat().endswith("+00:00")
    assert timedelta(0) <= datetime.now(UTC) - result.created_at < timedelta(minutes=5)
    assert dataclasses.asdict(result) == {
        "export_format": "trocr",
        "export_path": str(export_root / "trocr" / "b1"),
        "sample_count": 2,
        "batch_id": "b1",
        "created_at": result.created_at,
        "manifest_path": str(export_root / "trocr" / "b1" / "manifest.json"),
    }


def test_export_all_returns_one_original_result_per_format(samples, export_root):
    results = TrainingExportService().export(samples[:2], "all", "b1")

    assert [(result.export_format, result.batch_id, result.sample_count) for result in results] == [
        (name, "b1", 2) for name in FORMAT_NAMES
    ]
    for result in results:
        assert [field.name for field in dataclasses.fields(result)] == RESULT_FIELDS
        assert result.created_at.utcoffset() == timedelta(0)


def test_list_exports_newest_first_and_by_format(samples, export_root):
    service = TrainingExportService()
    for export_format, batch_id in [("trocr", "t1"), ("generic", "g1"), ("trocr", "t2")]:
        service.export(samples[:3], export_format, batch_id)

    assert [m["batch_id"] for m in service.list_exports()] == ["t2", "g1", "t1"]
    assert [(m["format"], m["batch_id"], m.get("sample_count")) for m in service.list_exports("trocr")] == [
        ("trocr", "t2", 3),
        ("trocr", "t1", 3),
    ]
    assert service.list_exports("llama_vision") == []


def test_list_exports_gives_each_manifest_as_a_dict_with_its_export_path(samples, export_root):
    service = TrainingExportService()
    results = [service.export(samples[:3], "trocr", "t1"), service.export(samples[:2], "llama_vision", "l1")]

    listed = []
    for m in service.list_exports():
        listed.append((m["batch_id"], m.get("sample_count"), m["export_path"]))
        manifest = json.loads((Path(m["export_path"]) / "manifest.json").read_text(encoding="utf-8"))
        assert type(m) is dict
        assert m == {**manifest, "export_path": m["export_path"]}
    assert listed == [(result.batch_id, result.sample_count, result.export_path) for result in results[::-1]]
    # Callers stored or sent the listing as JSON.
    assert json.loads(json.dumps(service.list_exports())) == service.list_exports()


def test_every_keyword_of_the_library_export_passes_through(samples, export_root):
    keywords = {
        name: parameter.default
        for name, parameter in inspect.signature(ocr_datasets.export).parameters.items()
        if parameter.kind is parameter.KEYWORD_ONLY
    }
    keywords |= {"seed": 7, "progress": False}

    result = TrainingExportService().export(samples[:2], "generic", "b1", **keywords)

    manifest = json.loads(Path(result.manifest_path).read_text(encoding="utf-8"))
    assert manifest["options"]["seed"] == 7


@pytest.mark.parametrize(
    "keyword, explanation",
    [
        pytest.param("copy_imgs", "copy_images", id="misspelt"),
        pytest.param("output_dir", "export_path", id="output_dir-is-the-services-folder"),
    ],
)
def test_an_unknown_keyword_is_a_type_error_naming_it(keyword, explanation, samples, export_root):
    with pytest.raises(TypeError, match=rf"TrainingExportService\.export\(\).*'{keyword}'.*{explanation}"):
        TrainingExportService().export(samples[:2], "trocr", "b1", **{keyword: False})
    assert not export_root.exists()


def test_service_reads_ocr_export_path_when_created(samples, tmp_path, monkeypatch):
    monkeypatch.setenv("OCR_EXPORT_PATH", str(tmp_path / "at-creation"))
    service = TrainingExportService()
    monkeypatch.setenv("OCR_EXPORT_PATH", str(tmp_path / "changed-later"))
    result = service.export(samples[:2], "trocr", "b1")
    assert Path(result.export_path) == tmp_path / "at-creation" / "trocr" / "b1"
    assert not (tmp_path / "changed-later").exists()


def test_service_defaults_to_ocr_exports_in_the_working_directory(samples, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = TrainingExportService().export(samples[:2], "generic", "b1")
    assert (tmp_path / "ocr-exports" / "generic" / "b1" / "manifest.json").is_file()
    assert Path(result.export_path).resolve() == (tmp_path / "ocr-exports" / "generic" / "b1").resolve()


def test_get_training_export_service_returns_one_shared_instance(samples, export_root):
    service = get_training_export_service()
    assert get_training_export_service() is service
    assert service.export_path == export_root
    result = service.export(samples[:2], "trocr", "shared")
    assert [(m["batch_id"], m["export_path"]) for m in get_training_export_service().list_exports()] == [
        ("shared", result.export_path)
    ]
