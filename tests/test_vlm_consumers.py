"""The vlm rows, exported from real Fraktur lines and read back with load_batch, are TRL's
conversational vision prompt–completion data: TRL's own SFTTrainer picks its own vision collator
for them, puts the loss on the transcription alone, and trains two model families built here
from tiny configs (Qwen2.5-VL and SmolVLM/Idefics3), offline, with their real chat templates."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trl
from support.data import line_gt_batch, line_gt_samples
from support.smolvlm import (
    END_OF_UTTERANCE,
    FAKE_IMAGE_TOKEN,
    GLOBAL_IMAGE_TAG,
    IMAGE_TOKEN,
    ROW_COL_TOKENS,
    SMOLVLM_CHAT_TEMPLATE,
    tiny_smolvlm,
)
from trl import SFTConfig, SFTTrainer
from trl.data_utils import is_conversational
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from ocr_datasets import DEFAULT_INSTRUCTION, load_batch
from ocr_datasets.training.vlm import (
    IM_END,
    IMAGE_PAD,
    QWEN2_5_VL_CHAT_TEMPLATE,
    VISION_END,
    VISION_START,
    tiny_qwen2_5_vl,
)

LINE_COUNT = 8
TRAIN_STEPS = 3
TRL_TEMPLATES = Path(trl.__file__).parent / "chat_templates"


@dataclass(frozen=True)
class Family:
    """A model family as the tests need it: its tiny builder, the text its template wraps an
    answer in, the generation prompt that ends every prompt, and the tokens that stand for images."""

    build: Any
    completion: Any
    generation_prompt: str
    image_tokens: tuple[str, ...]


FAMILIES = {
    # <|im_end|> and the newline after it close the assistant turn: both are supervised, so the
    # model learns to stop.
    "qwen2_5_vl": Family(
        tiny_qwen2_5_vl,
        lambda text: f"{text}{IM_END}\n",
        "<|im_start|>assistant\n",
        (IMAGE_PAD, VISION_START, VISION_END),
    ),
    # The template writes "Assistant: " before a text answer and "Assistant:" as generation
    # prompt, so the completion starts with the space; <end_of_utterance> and a newline close it.
    "smolvlm": Family(
        tiny_smolvlm,
        lambda text: f" {text}{END_OF_UTTERANCE}\n",
        "Assistant:",
        (IMAGE_TOKEN, FAKE_IMAGE_TOKEN, GLOBAL_IMAGE_TAG, *ROW_COL_TOKENS),
    ),
}


@pytest.fixture(scope="module")
def batch_dir(line_gt_copy, tmp_path_factory) -> Path:
    """Real Fraktur lines (TIFF, bilevel and grey) exported as one vlm batch."""
    return line_gt_batch(line_gt_copy, tmp_path_factory.mktemp("exports"), "vlm", "fraktur-vlm", LINE_COUNT)


@pytest.fixture(scope="module")
def ground_truths(line_gt_copy) -> dict[str, str]:
    return {sample.id: sample.ground_truth for sample in line_gt_samples(line_gt_copy)[:LINE_COUNT]}


@pytest.fixture(scope="module")
def train(batch_dir):
    return load_batch(batch_dir)["train"]


def answer(row: dict) -> str:
    return row["completion"][0]["content"][0]["text"]


def test_rows_are_trl_conversational_prompt_completion_with_one_image(train, ground_truths):
    assert train.column_names == ["id", "images", "prompt", "completion"]
    assert sorted(train["id"]) == sorted(ground_truths)
    for row in train:
        assert is_conversational(row)
        assert len(row["images"]) == 1
        assert row["prompt"] == [
            {
                "role": "user",
                "content": [{"type": "image", "text": None}, {"type": "text", "text": DEFAULT_INSTRUCTION}],
            }
        ]
        assert row["completion"] == [
            {"role": "assistant", "content": [{"type": "text", "text": ground_truths[row["id"]]}]}
        ]


def test_jsonl_view_has_the_same_turns_without_null_text_and_relative_image_paths(batch_dir, train):
    rows = {row["id"]: row for row in train}
    lines = [json.loads(line) for line in (batch_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(rows)
    for line in lines:
        assert line.keys() == {"id", "prompt", "completion", "images"}
        assert line["prompt"][0]["content"] == [{"type": "image"}, {"type": "text", "text": DEFAULT_INSTRUCTION}]
        assert line["completion"] == rows[line["id"]]["completion"]
        [relative] = line["images"]
        assert not Path(relative).is_absolute()
        image_file = (batch_dir / relative).resolve()
        assert image_file.is_relative_to(batch_dir.resolve()) and image_file.is_file()


@pytest.mark.parametrize(
    ("template", "trl_file"),
    [(QWEN2_5_VL_CHAT_TEMPLATE, "qwen2_5_vl.jinja"), (SMOLVLM_CHAT_TEMPLATE, "smolvlm.jinja")],
    ids=["qwen2_5_vl", "smolvlm"],
)
def test_chat_templates_are_the_published_ones_trl_recognises(template, trl_file):
    # TRL keeps the models' templates byte for byte to recognise them, and checks them weekly against the Hub.
    assert template == (TRL_TEMPLATES / trl_file).read_text(encoding="utf-8")


def sft_trainer(family: Family, rows, output_dir: Path) -> SFTTrainer:
    processor, model = family.build([answer(row) for row in rows])
    args = SFTConfig(
        output_dir=str(output_dir),
        max_steps=TRAIN_STEPS,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        logging_steps=1,
        bf16=False,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    return SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=processor)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("family_name", FAMILIES)
def test_sft_trainer_supervises_only_the_transcription_and_trains(family_name, train, tmp_path):
    family = FAMILIES[family_name]
    trainer = sft_trainer(family, train, tmp_path)
    # No collator of ours: SFTTrainer chose TRL's vision collator, with the loss on the completion only.
    collator = trainer.data_collator
    assert type(collator) is DataCollatorForVisionLanguageModeling and collator.completion_only_loss

    tokenizer = trainer.processing_class.tokenizer
    by_length = sorted(train, key=lambda row: len(answer(row)))
    rows = [by_length[0], by_length[-1]]
    batch = collator([dict(row) for row in rows])
    image_ids = set(tokenizer.convert_tokens_to_ids(list(family.image_tokens)))
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    for row, input_ids, labels, length in zip(rows, batch["input_ids"], batch["labels"], lengths, strict=True):
        trained = (labels != -100).nonzero().flatten().tolist()
        start = trained[0]
        assert trained == list(range(start, length)), "the trained labels must be one run ending the row"
        assert (labels[length:] == -100).all(), "padding is trained"
        expected = tokenizer(family.completion(answer(row)), add_special_tokens=False)["input_ids"]
        assert labels[trained].tolist() == input_ids[trained].tolist() == expected
        prompt_ids = input_ids[:start].tolist()
        prompt = tokenizer.decode(prompt_ids)
        assert DEFAULT_INSTRUCTION in prompt and prompt.endswith(family.generation_prompt)
        assert image_ids & set(prompt_ids), "the image must be in the prompt"
        assert not image_ids & set(labels.tolist()), "an image token is trained"

    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    print(family_name, "losses:", [round(loss, 3) for loss in losses])
    assert len(losses) == TRAIN_STEPS and all(map(math.isfinite, losses))
