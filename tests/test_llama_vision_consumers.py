"""The llama_vision rows, read back from an exported batch, are accepted unchanged by their consumers:
the real Llama 3.2 Vision chat template, MllamaProcessor and TRL's vision collator."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import datasets
import pytest
from jinja2.exceptions import TemplateError
from PIL import Image
from support.data import line_gt_samples
from support.mllama import tiny_mllama_processor, trl_vision_collate

from ocr_datasets import DEFAULT_INSTRUCTION, TrainingSample, export
from ocr_datasets.example import example_samples

SAMPLE_COUNT = 6
BOS = "<|begin_of_text|>"
USER_HEADER = "<|start_header_id|>user<|end_header_id|>\n\n"
ASSISTANT_HEADER = "<|start_header_id|>assistant<|end_header_id|>\n\n"
IMAGE_TOKEN = "<|image|>"
EOT = "<|eot_id|>"
# Non-ASCII on purpose: the instruction must reach the user turn byte for byte.
CUSTOM_INSTRUCTION = "Transkribiere die Frakturzeile buchſtabengetreu: ſ bleibt ſ, aͤ bleibt aͤ."
PNG_DATA_URL_PREFIX = "data:image/png;base64,"


def export_llama_vision(samples: list[TrainingSample], tmp_path: Path, **options) -> Path:
    result = export(
        samples, "llama_vision", batch_id="consumers", output_dir=tmp_path / "exports", progress=False, **options
    )
    return Path(result.export_path)


def load_rows(batch: Path, tmp_path: Path) -> list[dict]:
    return list(datasets.load_dataset(str(batch), cache_dir=str(tmp_path / "cache"), split="train"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def pixels(image: Image.Image) -> tuple:
    return image.mode, image.size, image.tobytes()


def decoded_pixels(data: bytes) -> tuple:
    with Image.open(io.BytesIO(data)) as image:
        return pixels(image)


def render(messages: list[dict]) -> str:
    return tiny_mllama_processor().apply_chat_template(messages, tokenize=False)


def expected_rendering(instruction: str, answer: str) -> str:
    # What the real template makes of a system-less, image-first conversation: the image token
    # right after the user header, then the instruction, then the answer as the assistant turn.
    return f"{BOS}{USER_HEADER}{IMAGE_TOKEN}{instruction}{EOT}{ASSISTANT_HEADER}{answer}{EOT}"


@pytest.fixture
def example() -> list[TrainingSample]:
    return list(example_samples(SAMPLE_COUNT))


@pytest.fixture
def ground_truths(example) -> dict[str, str]:
    return {sample.id: sample.ground_truth for sample in example}


@pytest.fixture
def rows(example, tmp_path) -> list[dict]:
    rows = load_rows(export_llama_vision(example, tmp_path), tmp_path)
    assert len(rows) == SAMPLE_COUNT
    return rows


def test_rows_have_one_image_part_first_in_user_turn_and_no_system_turn(rows, ground_truths):
    for row in rows:
        messages = row["messages"]
        assert [turn["role"] for turn in messages] == ["user", "assistant"]
        assert all(isinstance(turn["content"], list) for turn in messages)
        image_parts = [part for turn in messages for part in turn["content"] if part["type"] == "image"]
        assert len(image_parts) == len(row["images"]) == 1
        user, assistant = messages
        assert [part["type"] for part in user["content"]] == ["image", "text"]
        assert user["content"][1]["text"] == DEFAULT_INSTRUCTION
        assert assistant["content"] == [{"type": "text", "text": ground_truths[row["id"]]}]
        assert isinstance(row["images"][0], Image.Image)


@pytest.mark.parametrize(
    "instruction", [DEFAULT_INSTRUCTION, CUSTOM_INSTRUCTION], ids=["default-instruction", "custom-instruction"]
)
def test_chat_template_renders_image_then_instruction_in_user_turn(example, ground_truths, tmp_path, instruction):
    rows = load_rows(export_llama_vision(example, tmp_path, instruction=instruction), tmp_path)
    for row in rows:
        assert render(row["messages"]) == expected_rendering(instruction, ground_truths[row["id"]])


def test_processor_encodes_rendered_rows_with_their_images(rows):
    processor = tiny_mllama_processor()
    # The rendered text already starts with BOS, so (like TRL) no second one is added.
    encoded = processor(
        images=[row["images"] for row in rows],
        text=[render(row["messages"]) for row in rows],
        add_special_tokens=False,
        padding=True,
        return_tensors="pt",
    )
    assert encoded["pixel_values"].shape[:2] == (len(rows), 1)
    assert encoded["cross_attention_mask"].shape[0] == len(rows)
    image_token_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert (encoded["input_ids"] == image_token_id).sum(dim=1).tolist() == [1] * len(rows)


def test_template_refuses_a_system_message_next_to_the_image(rows):
    # This is why the instruction lives in the user turn; it also proves the template is the real one.
    with_system = [{"role": "system", "content": [{"type": "text", "text": DEFAULT_INSTRUCTION}]}, *rows[0]["messages"]]
    with pytest.raises(TemplateError, match="Prompting with images is incompatible with system messages"):
        render(with_system)


def test_trl_vision_collator_batches_exported_rows(rows, ground_truths):
    batch = trl_vision_collate(rows[:2])
    assert batch["input_ids"].shape[0] == 2
    assert batch["labels"].shape == batch["input_ids"].shape
    assert batch["pixel_values"].shape[0] == 2
    decoded = tiny_mllama_processor().tokenizer.batch_decode(batch["input_ids"])
    for row, text in zip(rows[:2], decoded, strict=True):
        assert text.count(IMAGE_TOKEN) == 1
        assert f"{ASSISTANT_HEADER}{ground_truths[row['id']]}{EOT}" in text


def test_jsonl_view_holds_same_messages_and_relative_image_paths(example, ground_truths, tmp_path):
    batch = export_llama_vision(example, tmp_path)
    lines = read_jsonl(batch / "train.jsonl")
    rows = {row["id"]: row for row in load_rows(batch, tmp_path)}
    assert [line["id"] for line in lines] == [sample.id for sample in example]
    for line in lines:
        user, assistant = line["messages"]
        assert user["content"] == [{"type": "image"}, {"type": "text", "text": DEFAULT_INSTRUCTION}]
        assert assistant["content"] == [{"type": "text", "text": ground_truths[line["id"]]}]
        assert render(line["messages"]) == render(rows[line["id"]]["messages"])
        assert len(line["images"]) == 1
        relative = Path(line["images"][0])
        assert not relative.is_absolute()
        image_file = (batch / relative).resolve()
        assert image_file.is_relative_to(batch.resolve()) and image_file.is_file()
        assert decoded_pixels(image_file.read_bytes()) == pixels(rows[line["id"]]["images"][0])


SAMPLE_SOURCES = {
    "png-example": (lambda request: list(example_samples(SAMPLE_COUNT)), "PNG"),
    # Real Fraktur lines are TIFF, which OpenAI-style consumers of data: URLs cannot read.
    "tiff-fraktur-lines": (lambda request: line_gt_samples(request.getfixturevalue("line_gt_copy"))[:2], "TIFF"),
}


@pytest.mark.parametrize("source", SAMPLE_SOURCES)
def test_base64_view_inlines_each_image_as_a_lossless_png_data_url(source, request, tmp_path):
    make_samples, source_format = SAMPLE_SOURCES[source]
    samples = make_samples(request)
    for sample in samples:
        with Image.open(io.BytesIO(sample.read_image_bytes())) as image:
            assert image.format == source_format
    lines = read_jsonl(export_llama_vision(samples, tmp_path, include_base64=True) / "train.jsonl")
    assert [line["id"] for line in lines] == [sample.id for sample in samples]
    for sample, line in zip(samples, lines, strict=True):
        user, assistant = line["messages"]
        image_part, text_part = user["content"]
        assert image_part.keys() == {"type", "image_url"} and image_part["type"] == "image_url"
        assert image_part["image_url"].keys() == {"url"}
        url = image_part["image_url"]["url"]
        assert url.startswith(PNG_DATA_URL_PREFIX)
        data = base64.b64decode(url.removeprefix(PNG_DATA_URL_PREFIX), validate=True)
        with Image.open(io.BytesIO(data)) as inline:
            assert inline.format == "PNG"
        assert decoded_pixels(data) == decoded_pixels(sample.read_image_bytes())
        assert text_part == {"type": "text", "text": DEFAULT_INSTRUCTION}
        assert assistant["content"] == [{"type": "text", "text": sample.ground_truth}]
