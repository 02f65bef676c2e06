"""The chat batches' views for tools outside TRL, checked against those tools' documented formats:
LLaMA-Factory and ms-swift (``<split>.llamafactory.jsonl`` and ``dataset_info.json``) and
mlx-vlm's LoRA trainer (the batch folder as ``datasets.load_dataset`` reads it)."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path, PurePosixPath

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ocr_datasets import export_all, read_samples, verify_batch
from ocr_datasets.verify import read_batch_manifest

CHAT_FORMATS = ("llama_vision", "vlm")
SPLITS = {"train": 0.7, "validation": 0.3}
PLACEHOLDER = "<image>"
# LLaMA-Factory's data/README.md: the keys of a dataset description, of its "columns" and "tags".
LLAMAFACTORY_KEYS = {
    "hf_hub_url", "ms_hub_url", "script_url", "cloud_file_name", "file_name", "formatting", "ranking", "subset",
    "split", "folder", "num_samples", "columns", "tags",
}  # fmt: skip
LLAMAFACTORY_COLUMNS = {
    "prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos", "audios",
    "chosen", "rejected", "kto_tag",
}  # fmt: skip
LLAMAFACTORY_TAGS = {
    "role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag",
}  # fmt: skip
# ms-swift's standard format: the roles of "messages" (docs/source_en/Customization/Custom-dataset.md).
SWIFT_ROLES = {"system", "user", "assistant", "tool_call", "tool_response"}


@pytest.fixture(scope="module")
def chat_batches(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chat")
    manifest = _example_manifest(root)
    results = export_all(
        read_samples(manifest), "b1", root / "exports", formats=CHAT_FORMATS, split=SPLITS, progress=False
    )
    return {result.export_format: Path(result.export_path) for result in results}


def _example_manifest(root: Path) -> Path:
    from ocr_datasets.example import write_example_manifest

    return write_example_manifest(root / "input", count=12)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def parquet_rows(batch: Path, split: str) -> dict[str, dict]:
    rows = [row for shard in sorted(batch.glob(f"data/{split}-*.parquet")) for row in pq.read_table(shard).to_pylist()]
    return {row["id"]: row for row in rows}


def pixels(data: bytes) -> tuple:
    with Image.open(io.BytesIO(data)) as image:
        return image.mode, image.size, image.tobytes()


@pytest.mark.parametrize("export_format", CHAT_FORMATS)
def test_every_line_has_one_placeholder_per_image_in_the_image_parts_place(chat_batches, export_format):
    batch = chat_batches[export_format]
    manifest = read_batch_manifest(batch)
    for split, count in manifest["splits"].items():
        records = read_jsonl(batch / f"{split}.llamafactory.jsonl")
        rows = parquet_rows(batch, split)
        assert len(records) == count > 0 and {record["id"] for record in records} == set(rows)
        for record in records:
            row = rows[record["id"]]
            messages = record["messages"]
            assert [turn["role"] for turn in messages] == ["user", "assistant"]
            assert all(isinstance(turn["content"], str) for turn in messages)
            # LLaMA-Factory: "The number of images should be identical to the <image> tokens in
            # the conversations"; the image part comes first, so its placeholder does too.
            assert sum(turn["content"].count(PLACEHOLDER) for turn in messages) == len(record["images"]) == 1
            instruction = read_batch_manifest(batch)["options"]["instruction"]
            assert messages[0]["content"] == PLACEHOLDER + instruction
            answer = row["messages"][1] if export_format == "llama_vision" else row["completion"][0]
            assert messages[1]["content"] == answer["content"][0]["text"]


@pytest.mark.parametrize("export_format", CHAT_FORMATS)
def test_image_paths_are_relative_to_the_batch_and_hold_the_rows_pixels(chat_batches, export_format):
    batch = chat_batches[export_format]
    checksums = read_batch_manifest(batch)["checksums"]
    for split in SPLITS:
        rows = parquet_rows(batch, split)
        for record in read_jsonl(batch / f"{split}.llamafactory.jsonl"):
            [path] = record["images"]
            assert not PurePosixPath(path).is_absolute() and ".." not in PurePosixPath(path).parts
            # LLaMA-Factory joins the path to media_dir (by default dataset_dir, the batch);
            # ms-swift to ROOT_IMAGE_DIR (the batch), else to the folder it runs in.
            file = Path(os.path.join(batch, path))
            assert file.is_file() and path in checksums
            assert hashlib.sha256(file.read_bytes()).hexdigest() == checksums[path]["sha256"]
            assert pixels(file.read_bytes()) == pixels(rows[record["id"]]["images"][0]["bytes"])


@pytest.mark.parametrize("export_format", CHAT_FORMATS)
def test_dataset_info_describes_each_split_as_llamafactory_documents_it(chat_batches, export_format):
    batch = chat_batches[export_format]
    info = json.loads((batch / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == set(SPLITS)
    for split, entry in info.items():
        assert set(entry) <= LLAMAFACTORY_KEYS and set(entry["columns"]) <= LLAMAFACTORY_COLUMNS
        assert set(entry["tags"]) <= LLAMAFACTORY_TAGS
        # What data/README.md gives for multimodal data in the OpenAI-style sharegpt layout.
        assert entry["file_name"] == f"{split}.llamafactory.jsonl" and (batch / entry["file_name"]).is_file()
        assert entry["formatting"] == "sharegpt"
        assert entry["columns"] == {"messages": "messages", "images": "images"}
        tags = entry["tags"]
        assert (tags["role_tag"], tags["content_tag"]) == ("role", "content")
        # LLaMA-Factory loads a file with datasets' json builder, into the split "train" unless
        # the entry names another, and takes user turns at even positions, assistant at odd.
        rows = datasets.load_dataset("json", data_files=[str(batch / entry["file_name"])], split="train")
        assert len(rows) == read_batch_manifest(batch)["splits"][split]
        for row in rows:
            roles = [turn[tags["role_tag"]] for turn in row[entry["columns"]["messages"]]]
            assert len(roles) % 2 == 0
            assert roles[0::2] == [tags["user_tag"]] * (len(roles) // 2)
            assert roles[1::2] == [tags["assistant_tag"]] * (len(roles) // 2)
            assert set(roles) <= SWIFT_ROLES
            assert all((batch / path).is_file() for path in row[entry["columns"]["images"]])


@pytest.mark.parametrize("export_format", CHAT_FORMATS)
def test_the_manifest_lists_the_views_and_dataset_info_with_their_checksums(chat_batches, export_format):
    batch = chat_batches[export_format]
    checksums = read_batch_manifest(batch)["checksums"]
    for name in ["dataset_info.json", *(f"{split}.llamafactory.jsonl" for split in SPLITS)]:
        assert hashlib.sha256((batch / name).read_bytes()).hexdigest() == checksums[name]["sha256"]
    assert verify_batch(batch) == []


def test_a_batch_without_image_files_has_no_llamafactory_view(tmp_path, example_manifest):
    [result] = export_all(
        read_samples(example_manifest), "b1", tmp_path, formats=["llama_vision"], copy_images=False, progress=False
    )
    batch = Path(result.export_path)
    assert not list(batch.glob("*.llamafactory.jsonl")) and not (batch / "dataset_info.json").exists()
    assert verify_batch(batch) == []


def test_a_missing_view_line_is_found_by_verify(tmp_path, example_manifest):
    [result] = export_all(read_samples(example_manifest), "b1", tmp_path, formats=["vlm"], progress=False)
    view = Path(result.export_path) / "train.llamafactory.jsonl"
    view.write_text("".join(view.read_text(encoding="utf-8").splitlines(keepends=True)[1:]), encoding="utf-8")
    problems = verify_batch(result.export_path)
    assert "train.llamafactory.jsonl: 11 records, manifest says 12" in problems


@pytest.mark.parametrize("split", SPLITS)
def test_mlx_vlm_reads_a_llama_vision_batch_folder_as_its_lora_trainer_loads_it(chat_batches, split, tmp_path):
    # mlx_vlm/lora.py: load_dataset(args.dataset, args.dataset_config, split=args.split) (--split
    # defaults to train), then VisionDataset reads item["images"] and item["messages"].
    batch = chat_batches["llama_vision"]
    rows = datasets.load_dataset(str(batch), None, split=split, cache_dir=str(tmp_path / "cache"))
    assert len(rows) == read_batch_manifest(batch)["splits"][split]
    for row in rows:
        assert all(isinstance(image, Image.Image) for image in row["images"])
        # mlx-vlm's apply_chat_template counts a user turn's images by its parts of type "image"
        # (prompt_utils._content_media_count) and reads the text parts' "text".
        user, assistant = row["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert sum(part["type"] == "image" for part in user["content"]) == len(row["images"]) == 1
        assert [part["type"] for part in assistant["content"]] == ["text"]


def test_the_documented_bridge_gives_mlx_vlm_the_messages_of_a_vlm_batch(chat_batches, tmp_path):
    # A vlm batch has prompt and completion, not the messages mlx-vlm reads: docs/chat-tools.md
    # joins them into a folder of <split>.parquet, which load_dataset(folder) reads by split.
    bridged = tmp_path / "mlx"
    for split in SPLITS:
        vlm = datasets.load_dataset(str(chat_batches["vlm"]), split=split, cache_dir=str(tmp_path / "cache"))
        vlm.map(
            lambda r: {"messages": r["prompt"] + r["completion"]}, remove_columns=["prompt", "completion"]
        ).to_parquet(str(bridged / f"{split}.parquet"))
    for split in SPLITS:
        rows = datasets.load_dataset(str(bridged), split=split, cache_dir=str(tmp_path / "cache"))
        llama = datasets.load_dataset(str(chat_batches["llama_vision"]), split=split, cache_dir=str(tmp_path / "cache"))
        expected = {row["id"]: row for row in llama}
        assert len(rows) == len(expected)
        for row in rows:
            assert row["messages"] == expected[row["id"]]["messages"]
            assert [pixels(_png(image)) for image in row["images"]] == [
                pixels(_png(image)) for image in expected[row["id"]]["images"]
            ]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
