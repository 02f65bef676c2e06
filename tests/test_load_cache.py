"""datasets caches a local folder by folder name and config name: each batch must still read its own rows."""

from __future__ import annotations

from datasets import load_dataset

from ocr_datasets import export, export_all, read_manifest


def test_same_batch_id_in_two_formats_loads_two_datasets_in_one_cache(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    results = export_all(samples, batch_id="b1", output_dir=tmp_path / "exports", progress=False)
    cache = tmp_path / "cache"

    trocr = load_dataset(results[0].export_path, split="train", cache_dir=str(cache))
    llama = load_dataset(results[1].export_path, split="train", cache_dir=str(cache))
    generic = load_dataset(results[2].export_path, split="train", cache_dir=str(cache))

    assert trocr.column_names == ["image", "text", "id"]
    assert llama.column_names == ["id", "images", "messages"]
    assert generic.column_names == ["id", "image", "ground_truth", "ocr_text", "ocr_confidence", "metadata"]


def test_re_exported_batch_loads_its_new_rows(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    cache = tmp_path / "cache"
    first = export(samples, "trocr", batch_id="b1", output_dir=tmp_path / "exports", progress=False)
    assert load_dataset(first.export_path, split="train", cache_dir=str(cache))["text"][0] == samples[0].ground_truth

    samples[0].ground_truth = "Neu geſchrieben"
    second = export(samples, "trocr", batch_id="b1", output_dir=tmp_path / "exports", overwrite=True, progress=False)
    assert load_dataset(second.export_path, split="train", cache_dir=str(cache))["text"][0] == "Neu geſchrieben"


def test_same_folder_name_under_two_roots_loads_each_own_rows(example_manifest, tmp_path):
    samples = list(read_manifest(example_manifest))
    cache = tmp_path / "cache"
    one = export(samples[:3], "trocr", batch_id="b1", output_dir=tmp_path / "root-one", progress=False)
    two = export(samples[3:], "trocr", batch_id="b1", output_dir=tmp_path / "root-two", progress=False)

    assert load_dataset(one.export_path, split="train", cache_dir=str(cache))["id"] == [s.id for s in samples[:3]]
    assert load_dataset(two.export_path, split="train", cache_dir=str(cache))["id"] == [s.id for s in samples[3:]]
