"""From an exported llama_vision batch of the real Fraktur lines to a fine-tuned Llama 3.2
Vision: the collator's label mask, Trainer on a tiny local Mllama, greedy transcription, and
scripts/finetune_llama_vision.py end to end. Offline, on a CPU: the model is built here, never
downloaded, with the real model's chat template, special tokens and vocabulary layout."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from support.data import LINE_GT_LINES, line_gt_batch
from support.data import run_script as run_named_script
from transformers import AutoProcessor, MllamaForConditionalGeneration, Trainer, TrainingArguments

from ocr_datasets import evaluate_predictions
from ocr_datasets.training import LlamaVisionCollator, load_batch
from ocr_datasets.training.llama_vision import (
    BOS,
    EOT,
    IMAGE_TOKEN,
    LLAMA_32_VISION_CHAT_TEMPLATE,
    prompt_inputs,
    tiny_mllama,
)

# Builds and trains tiny models with torch and transformers.
pytestmark = pytest.mark.slow

ASSISTANT_HEADER = "<|start_header_id|>assistant<|end_header_id|>\n\n"
MODEL_INPUTS = {
    "input_ids",
    "attention_mask",
    "pixel_values",
    "aspect_ratio_ids",
    "aspect_ratio_mask",
    "cross_attention_mask",
    "labels",
}
TRAIN_ROW_COUNT = 6
TRAIN_STEPS = 24


@pytest.fixture(scope="module")
def line_batch_dir(line_gt_copy, tmp_path_factory) -> Path:
    """All real lines as one llama_vision batch, whole works split into train and validation."""
    exports = tmp_path_factory.mktemp("exports")
    return line_gt_batch(line_gt_copy, exports, "llama_vision", "fraktur-lines", split="train=0.8,validation=0.2")


@pytest.fixture(scope="module")
def line_batch(line_batch_dir):
    batch = load_batch(line_batch_dir)
    assert set(batch) == {"train", "validation"}
    assert batch["train"].num_rows + batch["validation"].num_rows == LINE_GT_LINES
    return batch


def answer(messages: list[dict]) -> str:
    return messages[-1]["content"][0]["text"]


@pytest.fixture(scope="module")
def train_answers(line_batch) -> list[str]:
    # The messages column alone: no image is decoded.
    return [answer(messages) for messages in line_batch["train"]["messages"]]


@pytest.fixture
def train_answers_processor(train_answers):
    processor, _ = tiny_mllama(train_answers)
    return processor


def rows_of_different_lengths(train, answers: list[str]) -> list[dict]:
    by_length = sorted(range(len(answers)), key=lambda index: len(answers[index]))
    return [train[index] for index in (by_length[0], by_length[len(by_length) // 2], by_length[-1])]


def with_instruction(row: dict, instruction: str) -> dict:
    row = copy.deepcopy(row)
    row["messages"][0]["content"][1]["text"] = instruction
    return row


def test_tiny_model_has_the_real_vocabulary_layout(train_answers):
    processor, model = tiny_mllama(train_answers)
    image_token_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert image_token_id == len(processor.tokenizer) - 1
    assert model.config.image_token_index == image_token_id == model.config.text_config.vocab_size
    assert model.lm_head.out_features == image_token_id
    assert processor.image_processor.size.height == model.config.vision_config.image_size
    assert processor.image_processor.max_image_tiles == model.config.vision_config.max_num_tiles


def test_collator_labels_only_the_answer_and_its_closing_eot(line_batch, train_answers, train_answers_processor):
    processor = train_answers_processor
    rows = rows_of_different_lengths(line_batch["train"], train_answers)
    batch = LlamaVisionCollator(processor)(rows)
    assert set(batch) == MODEL_INPUTS
    tokenizer = processor.tokenizer
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert len(set(lengths)) == len(rows), "rows must differ in length so that padding is exercised"
    for row, input_ids, labels, length in zip(rows, batch["input_ids"], batch["labels"], lengths, strict=True):
        assert (labels[length:] == -100).all(), "padding is trained"
        assert image_token_id not in labels.tolist()
        assert input_ids[:length].tolist().count(image_token_id) == 1
        trained = (labels != -100).nonzero().flatten().tolist()
        answer_start = trained[0]
        assert trained == list(range(answer_start, length)), "trained labels must be one run at the end of the row"
        assert labels[trained].tolist() == input_ids[trained].tolist()
        assert tokenizer.decode(labels[trained]) == answer(row["messages"]) + EOT
        prompt = tokenizer.decode(input_ids[:answer_start])
        assert prompt.startswith(BOS) and prompt.count(BOS) == 1, (
            "BOS doubled: the text was tokenized with add_special_tokens=True"
        )
        assert prompt.endswith(ASSISTANT_HEADER)


def test_unmasked_image_token_label_breaks_the_loss_as_in_the_real_model(line_batch, train_answers):
    # Why the collator masks <|image|>: its id is one past the LM head's last row (transformers issue 33819).
    processor, model = tiny_mllama(train_answers)
    batch = LlamaVisionCollator(processor)([line_batch["train"][0]])
    naive_labels = batch["input_ids"].clone()
    with pytest.raises(IndexError, match="out of bounds"):
        model(**{**batch, "labels": naive_labels})
    assert math.isfinite(model(**batch).loss.item())


def test_collator_refuses_a_template_whose_generation_prompt_is_not_the_answer_prefix(
    line_batch, train_answers_processor
):
    processor = train_answers_processor
    generation_prompt = "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}"
    assert LLAMA_32_VISION_CHAT_TEMPLATE.endswith(generation_prompt + "\n")
    processor.chat_template = LLAMA_32_VISION_CHAT_TEMPLATE.replace(
        generation_prompt, generation_prompt.replace("\\n\\n", "\\n\\nAntwort: ")
    )
    with pytest.raises(ValueError, match="not a prefix"):
        LlamaVisionCollator(processor)([line_batch["train"][0]])


@pytest.mark.parametrize("cut", [0, 2], ids=["right-after-the-prompt", "inside-the-prompt"])
def test_collator_refuses_max_length_that_leaves_no_answer(line_batch, train_answers_processor, cut):
    row = line_batch["train"][0]
    prompt_length = prompt_inputs(train_answers_processor, [row])["input_ids"].shape[1]
    # Cuts stay after the image token: cutting before it, the processor itself refuses the row.
    with pytest.raises(ValueError, match="leaves no answer token"):
        LlamaVisionCollator(train_answers_processor, max_length=prompt_length - cut)([row])


def test_collator_refuses_rows_without_an_assistant_answer(line_batch, train_answers_processor):
    row = copy.deepcopy(line_batch["train"][0])
    row["messages"] = row["messages"][:1]
    with pytest.raises(ValueError, match="last turn must be the assistant"):
        LlamaVisionCollator(train_answers_processor)([row])


def test_trainer_loss_falls_on_repeated_real_lines(line_batch, train_answers, one_torch_thread, tmp_path):
    processor, model = tiny_mllama(train_answers)
    rows = line_batch["train"].select(list(range(TRAIN_ROW_COUNT)) * 5)
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        max_steps=TRAIN_STEPS,
        per_device_train_batch_size=2,
        learning_rate=3e-3,
        logging_steps=1,
        remove_unused_columns=False,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=LlamaVisionCollator(processor))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    print("losses:", [round(loss, 3) for loss in losses])
    assert len(losses) == TRAIN_STEPS and all(map(math.isfinite, losses))
    # The mean of the last few steps, since single steps of batch size 2 are noisy.
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0]


def greedy_scores(model, processor, rows: list[dict]) -> torch.Tensor:
    generated = model.generate(
        **prompt_inputs(processor, rows),
        do_sample=False,
        max_new_tokens=4,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=processor.tokenizer.pad_token_id,
    )
    return torch.stack(generated.scores, dim=1)


@torch.no_grad()
def test_prompts_generate_in_a_batch_as_they_do_alone(line_batch, train_answers, one_torch_thread):
    processor, model = tiny_mllama(train_answers)
    model.eval()
    rows = [line_batch["validation"][index] for index in range(3)]
    # A shorter instruction makes the prompts differ in length, so the batch is padded. On the
    # wrong side, the padded row's scores differ by ~0.7 (measured): strings from a random model
    # would hide that, its greedy answers hardly depend on the prompt.
    rows[1] = with_instruction(rows[1], "Lies die Zeile.")
    assert (prompt_inputs(processor, rows)["attention_mask"] == 0).any()
    batched = greedy_scores(model, processor, rows)
    for index, row in enumerate(rows):
        torch.testing.assert_close(batched[index], greedy_scores(model, processor, [row])[0], atol=1e-4, rtol=1e-4)


def run_script(*arguments: str) -> subprocess.CompletedProcess:
    return run_named_script("finetune_llama_vision.py", *arguments)


def test_script_help_names_every_choice():
    completed = run_script("--help")
    assert completed.returncode == 0, completed.stderr
    for option in (
        "--model",
        "--tiny",
        "--output",
        "--lora-r",
        "--lora-alpha",
        "--epochs",
        "--batch-size",
        "--learning-rate",
        "--max-steps",
    ):
        assert option in completed.stdout


def test_script_fine_tunes_tiny_model_with_lora_reports_validation_cer_and_writes_predictions(
    line_batch_dir, line_batch, tmp_path
):
    output = tmp_path / "run"
    validation_ids = list(line_batch["validation"]["id"])
    completed = run_script(
        str(line_batch_dir),
        "--tiny",
        "--output", str(output),
        "--lora-r", "8",
        "--max-steps", "4",
        "--batch-size", "2",
        "--gradient-accumulation-steps", "1",
        "--learning-rate", "1e-2",
        "--logging-steps", "1",
        "--gradient-checkpointing",
        "--max-new-tokens", "16",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    pattern = rf"^validation CER: \d+\.\d\d% \({len(validation_ids)} lines\)$"
    assert re.search(pattern, completed.stdout, re.MULTILINE), completed.stdout
    # Every validation line's transcription, in order, in the file ocr-datasets eval scores, at the printed CER.
    predictions = output / "predictions-validation.jsonl"
    assert f"validation predictions: {predictions} (ocr-datasets eval {line_batch_dir}" in completed.stdout
    records = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    assert [record["id"] for record in records] == validation_ids
    figures = evaluate_predictions(line_batch_dir, predictions, "validation")
    assert f"validation CER: {figures['model']['cer']:.2%} ({len(validation_ids)} lines)" in completed.stdout
    adapter_config = json.loads((output / "adapter_config.json").read_text())
    assert adapter_config["peft_type"] == "LORA" and adapter_config["r"] == 8
    assert "language_model" in adapter_config["target_modules"]
    processor = AutoProcessor.from_pretrained(output, local_files_only=True)
    assert processor.chat_template == LLAMA_32_VISION_CHAT_TEMPLATE
    # The adapter attaches to the base it was trained on, and training moved it off its zero start.
    model = PeftModel.from_pretrained(
        MllamaForConditionalGeneration.from_pretrained(output / "tiny-base", local_files_only=True), output
    )
    lora_b = [parameter for name, parameter in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(parameter.abs().sum() > 0 for parameter in lora_b)
