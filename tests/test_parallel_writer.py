"""Validation's worker processes spool the rows that pass and write each chunk's files (images,
view lines, line files, projected rows); the main process names the files and writes parquet and
views in chunk order. Whatever the number of processes, the batches are the same files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.data import batch_files, lines_with_twins, run_python, split_cases, split_options

from ocr_datasets import FORMAT_NAMES, ExportOptions, build_dataset, export_all, validation, verify_batch, writer
from ocr_datasets.adapters import get_adapter


@split_cases
def test_every_format_written_by_worker_processes_is_the_serial_batch(strategy, late_conflict, monkeypatch, tmp_path):
    options = split_options(strategy)
    serial = export_all(lines_with_twins(late_conflict), batch_id="serial", output_dir=tmp_path, num_proc=1, **options)
    # A pool even for a few hundred images. Its workers write the chunks while validation runs
    # (hash); with balanced, and after a late conflict, the main process writes them after it.
    monkeypatch.setattr(validation, "_MIN_IMAGES_PER_PROCESS", 1)
    pooled = export_all(lines_with_twins(late_conflict), batch_id="pooled", output_dir=tmp_path, num_proc=2, **options)

    for alone, together in zip(serial, pooled, strict=True):
        files = batch_files(alone)
        assert files == batch_files(together)
        assert alone.read_manifest()["fingerprint"] == together.read_manifest()["fingerprint"]
        assert verify_batch(alone.export_path) == [] and verify_batch(together.export_path) == []
        assert alone.read_manifest()["counts"]["duplicates"] == 1
        assert alone.read_manifest()["counts"]["exported"] == (300 if late_conflict else 301)
        if alone.export_format == "trocr":
            assert {"images/line-007.png", "images/line-000.png"} <= set(files) or late_conflict
            assert any(name.startswith("images/LINE-007-") for name in files)
            assert b'"text": "Zeile 12"' in b"".join(files[name] for name in files if name.endswith(".jsonl"))
    # Nothing of the export's own working files is left beside the batches.
    assert sorted(path.name for path in tmp_path.rglob(".*")) == [".ocr-datasets"]


@pytest.mark.parametrize("copy_images", [True, False], ids=["views", "parquet-only"])
@split_cases
def test_each_formats_parquet_holds_its_projection_of_the_canonical_rows(
    strategy, late_conflict, copy_images, monkeypatch, tmp_path
):
    # A format that passes canonical columns on as they are (trocr, generic) has its rows taken
    # from each chunk's canonical rows by the main process (with no views, its chunks go to no
    # worker at all); the others are projected by the workers. Either way they are what the
    # format's projection makes of the canonical rows, in input order across a split's shards.
    options = split_options(strategy) | {"copy_images": copy_images}
    monkeypatch.setattr(validation, "_MIN_IMAGES_PER_PROCESS", 1)
    results = export_all(lines_with_twins(late_conflict), output_dir=tmp_path, num_proc=2, **options)
    built = build_dataset(
        lines_with_twins(late_conflict), cache_dir=tmp_path / "built", skip_invalid=True, progress=False
    )
    canonical = {row["id"]: row for row in built.data.table.to_pylist()}

    order = list(canonical)
    view = ExportOptions().view()
    for result in results:
        adapter = get_adapter(result.export_format)
        shards = sorted(Path(result.export_path).glob("data/*.parquet"))
        exported = 0
        for split in {shard.name.rsplit("-", 3)[0] for shard in shards}:
            written = pa.concat_tables(pq.read_table(shard) for shard in shards if shard.name.startswith(f"{split}-"))
            ids = written.column("id").to_pylist()
            projected = [
                adapter.project({name: [value] for name, value in canonical[sample_id].items()}, view)
                for sample_id in ids
            ]
            expected = pa.Table.from_pylist(
                [{name: values[0] for name, values in row.items()} for row in projected], schema=written.schema
            )
            assert written.to_pylist() == expected.to_pylist()
            assert ids == sorted(ids, key=order.index), f"{result.export_format} {split}: not in input order"
            exported += written.num_rows
        assert exported == result.sample_count == len(canonical)


def test_the_formats_whose_rows_are_the_canonical_rows_are_trocr_and_generic():
    # Their parquet rows are taken from the chunks as they are; a format that projects no rows
    # at all as the very lists it is given, whatever its options, would be taken too.
    passed_on = {
        name: writer._columns_passed_on(get_adapter(name), ExportOptions(**options).view())
        for name in FORMAT_NAMES
        for options in ({}, {"include_base64": True}, {"instruction": "Lies die Zeile."})
    }
    assert passed_on == {
        "trocr": ["image", "ground_truth", "id"],
        "generic": ["id", "image", "ground_truth", "ocr_text", "ocr_confidence", "metadata"],
        "llama_vision": None,
        "vlm": None,
        "line_gt": None,
    }


def test_with_worker_processes_writing_the_chunks_no_process_imports_pandas(tmp_path):
    # pyarrow imports pandas (0.3 s) on the first array it builds from Python objects; while
    # validation runs (one split, or the hash strategy) the workers build them, for every chunk,
    # and the main process none. An audit hook, inherited by the forked workers, notes each
    # process that loads pandas for real (pandas.core: a refused import of pandas is an event
    # too). Nor does the main process import pyarrow.compute (25-40 ms) or asyncio (tqdm.auto's,
    # 25 ms): pandas imports the first, and an export of one split without duplicates needs
    # neither (a row left out or a second split takes rows, with pyarrow.compute); nor, with no
    # OCR text to measure, regex and rapidfuzz (18 ms).
    importers = tmp_path / "importers"
    output = run_python(
        f"""
        import os, sys

        def note(event, args):
            if event == "import" and args[0] == "pandas.core":
                with open({str(importers)!r}, "a") as file:
                    file.write(f"{{os.getpid()}}\\n")

        sys.addaudithook(note)
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from support.data import numbered_lines
        from ocr_datasets import export, validation
        validation._MIN_IMAGES_PER_PROCESS = 1
        lines = numbered_lines(600)
        result = export(lines, "trocr", batch_id="b", output_dir={str(tmp_path / "out")!r}, num_proc=2, progress=False)
        assert result.sample_count == 600
        unneeded = ("pyarrow.compute", "asyncio", "regex", "rapidfuzz")
        print(os.getpid(), *sorted(name for name in unneeded if name in sys.modules))
        """
    )
    main_process, *imported = output.split()
    assert imported == [], f"the export's process imported {imported}"
    assert not importers.exists(), f"pandas loaded by {importers.read_text().split()}, the export's is {main_process}"


def test_a_worker_spared_the_pandas_import_still_converts_to_pandas():
    output = run_python(
        """
        import sys
        from ocr_datasets import validation
        validation._start_worker(True)
        import pyarrow
        pyarrow.array(["a line"])
        print("pandas" in sys.modules)
        print(type(pyarrow.table({"text": ["a line"]}).to_pandas()).__name__)
        """
    )
    assert output.split() == ["False", "DataFrame"]
