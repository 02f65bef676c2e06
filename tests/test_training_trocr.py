"""TrOCR fine-tuning from an exported batch of the real Fraktur lines: the collator's tensors,
a tiny local TrOCR that learns under Seq2SeqTrainer, and scripts/finetune_trocr.py end to end.
All offline, on CPU, with real transformers, datasets and torch."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pytest
import torch
from support.data import LINE_GT_LINES, line_gt_batch
from support.data import run_script as run_named_script
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrOCRProcessor, VisionEncoderDecoderModel

from ocr_datasets import evaluate_predictions
from ocr_datasets.training import TrOCRCollator, load_batch
from ocr_datasets.training.trocr import TINY_IMAGE_SIZE, prepare_trocr_model, tiny_trocr

# Builds and trains tiny models with torch and transformers.
pytestmark = pytest.mark.slow

LINE_COUNT = LINE_GT_LINES
ROW_COUNT = 8
TRAINING_STEPS = 30
TOP_LEVEL_IDS = ("decoder_start_token_id", "pad_token_id", "eos_token_id", "vocab_size")


@pytest.fixture
def batch_dir(line_gt_copy, tmp_path) -> Path:
    """All real lines as one trocr batch, split by work so no page sits in both splits."""
    batch = line_gt_batch(line_gt_copy, tmp_path / "exports", "trocr", "fraktur", split="train=0.8,validation=0.2")
    assert json.loads((batch / "manifest.json").read_text(encoding="utf-8"))["sample_count"] == LINE_COUNT
    return batch


@pytest.fixture
def batch(batch_dir, tmp_path):
    return load_batch(batch_dir, cache_dir=tmp_path / "load-cache")


@pytest.fixture
def train_rows(batch):
    return batch["train"].select(range(ROW_COUNT))


@pytest.fixture
def processor_and_model(batch):
    return tiny_trocr(batch["train"]["text"])


@pytest.fixture
def processor(processor_and_model):
    return processor_and_model[0]


@pytest.fixture
def checkpoint_without_top_level_ids(processor_and_model, tmp_path) -> Path:
    """A saved tiny TrOCR missing what published TrOCR checkpoints miss (their fine-tuning
    tutorials set it by hand): the ids in the model's config, and a generation_config.json."""
    folder = tmp_path / "checkpoint"
    for part in processor_and_model:
        part.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    for name in TOP_LEVEL_IDS:
        del config[name]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "generation_config.json").unlink()
    return folder


def run_script(batch_dir: Path, output: Path, *options: str) -> subprocess.CompletedProcess:
    return run_named_script(
        "finetune_trocr.py", str(batch_dir), "--output", str(output), "--max-target-length", "64", *options
    )


def assert_reports_validation_cer(completed: subprocess.CompletedProcess, validation_count: int) -> None:
    assert completed.returncode == 0, completed.stderr
    assert re.search(rf"^validation CER: \d+\.\d\d% over {validation_count} lines$", completed.stdout, re.MULTILINE), (
        completed.stdout
    )


def assert_writes_predictions_that_eval_scores(
    completed: subprocess.CompletedProcess, batch_dir: Path, output: Path, validation_ids: list[str]
) -> None:
    """The script's predictions file holds one line per validation line, in order, and
    ``ocr-datasets eval`` scores it at the CER the script printed."""
    path = output / "predictions-validation.jsonl"
    assert f"validation predictions: {path} (ocr-datasets eval {batch_dir} --predictions {path}" in completed.stdout
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [record["id"] for record in records] == validation_ids
    assert all(isinstance(record["text"], str) for record in records)
    figures = evaluate_predictions(batch_dir, path, "validation")
    assert figures["model"]["lines"] == len(validation_ids)
    assert f"validation CER: {figures['model']['cer']:.2%} over" in completed.stdout


def test_labels_are_the_token_ids_with_padding_set_to_minus_100(processor, train_rows):
    labels = TrOCRCollator(processor)(list(train_rows))["labels"]

    token_ids = [processor.tokenizer(text).input_ids for text in train_rows["text"]]
    # Lines of different lengths, so the batch really is padded.
    assert len({len(ids) for ids in token_ids}) > 1
    assert labels.shape == (ROW_COUNT, max(len(ids) for ids in token_ids))
    for ids, row_labels in zip(token_ids, labels, strict=True):
        assert row_labels[: len(ids)].tolist() == ids
        assert row_labels[len(ids) :].eq(-100).all()
        assert ids[-1] == processor.tokenizer.eos_token_id  # so the model learns where a line ends


def test_greyscale_lines_become_rgb_pixel_values_of_the_processor_size(processor, train_rows):
    # The scans are single-channel; ViT's image processor normalises three channels and fails on one.
    assert set(train_rows["image"][0].getbands()) == {"L"}

    pixel_values = TrOCRCollator(processor)(list(train_rows))["pixel_values"]

    assert pixel_values.shape == (ROW_COUNT, 3, TINY_IMAGE_SIZE["height"], TINY_IMAGE_SIZE["width"])
    assert torch.equal(pixel_values[:, 0], pixel_values[:, 1]) and torch.equal(pixel_values[:, 1], pixel_values[:, 2])
    assert pixel_values.std() > 0  # ink on paper, not a blank line


def test_labels_are_cut_at_max_target_length_and_still_end_in_eos(processor, train_rows):
    max_target_length = 6
    labels = TrOCRCollator(processor, max_target_length=max_target_length)(list(train_rows))["labels"]

    assert labels.shape == (ROW_COUNT, max_target_length)
    for text, row_labels in zip(train_rows["text"], labels, strict=True):
        full_ids = processor.tokenizer(text).input_ids
        assert len(full_ids) > max_target_length
        assert row_labels[:-1].tolist() == full_ids[: max_target_length - 1]
        assert row_labels[-1] == processor.tokenizer.eos_token_id


def test_tiny_trocr_loss_falls_when_seq2seq_trainer_repeats_one_batch(
    processor_and_model, train_rows, tmp_path, one_torch_thread
):
    processor, model = processor_and_model
    arguments = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "run"),
        per_device_train_batch_size=ROW_COUNT,
        max_steps=TRAINING_STEPS,
        # High and constant: a ~70k-parameter model has to show learning within seconds.
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        remove_unused_columns=False,
        report_to="none",
        dataloader_pin_memory=False,  # no accelerator here: pinning would only warn
        seed=0,
    )
    trainer = Seq2SeqTrainer(
        model=model, args=arguments, train_dataset=train_rows, data_collator=TrOCRCollator(processor)
    )
    trainer.train()

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == TRAINING_STEPS
    assert all(math.isfinite(loss) for loss in losses)
    print(f"tiny TrOCR loss: first {losses[0]:.3f}, last {losses[-1]:.3f}")
    assert losses[-1] < 0.5 * losses[0]


def test_prepare_trocr_model_fills_in_the_ids_a_checkpoint_lacks_and_keeps_those_it_has(
    checkpoint_without_top_level_ids, train_rows
):
    processor = TrOCRProcessor.from_pretrained(checkpoint_without_top_level_ids, local_files_only=True)
    model = VisionEncoderDecoderModel.from_pretrained(checkpoint_without_top_level_ids, local_files_only=True)
    rows = TrOCRCollator(processor)(list(train_rows))
    # Why the ids matter: labels cannot be shifted into decoder inputs (transformers 5 fails
    # with an AttributeError on the config before its own "Make sure to set" message).
    with pytest.raises(AttributeError, match="pad_token_id"):
        model(**rows)
    model.config.decoder_start_token_id = processor.tokenizer.eos_token_id  # as the published checkpoints do (fairseq)

    prepare_trocr_model(model, processor)

    assert model.config.decoder_start_token_id == processor.tokenizer.eos_token_id
    assert model.config.pad_token_id == processor.tokenizer.pad_token_id
    assert model.config.eos_token_id == processor.tokenizer.eos_token_id
    assert model.config.vocab_size == model.config.decoder.vocab_size == len(processor.tokenizer)
    assert math.isfinite(model(**rows).loss.item())


def test_script_fine_tunes_a_tiny_trocr_saves_it_reports_validation_cer_and_writes_predictions(
    batch, batch_dir, tmp_path
):
    output = tmp_path / "tiny-run"

    completed = run_script(batch_dir, output, "--tiny", "--max-steps", "3")

    assert_reports_validation_cer(completed, len(batch["validation"]))
    assert_writes_predictions_that_eval_scores(completed, batch_dir, output, list(batch["validation"]["id"]))
    processor = TrOCRProcessor.from_pretrained(output, local_files_only=True)
    model = VisionEncoderDecoderModel.from_pretrained(output, local_files_only=True)
    assert model.config.decoder_start_token_id == processor.tokenizer.bos_token_id
    assert model.config.pad_token_id == processor.tokenizer.pad_token_id
    # The saved pair works together: the reloaded processor's rows give the reloaded model a loss.
    loss = model(**TrOCRCollator(processor)(list(batch["validation"].select(range(2))))).loss
    assert math.isfinite(loss.item())


def test_script_fine_tunes_a_local_checkpoint_that_lacks_the_top_level_ids(
    batch, batch_dir, checkpoint_without_top_level_ids, tmp_path
):
    output = tmp_path / "checkpoint-run"

    completed = run_script(batch_dir, output, "--model", str(checkpoint_without_top_level_ids), "--max-steps", "2")

    assert_reports_validation_cer(completed, len(batch["validation"]))
    assert_writes_predictions_that_eval_scores(completed, batch_dir, output, list(batch["validation"]["id"]))
    saved = json.loads((output / "config.json").read_text())
    assert all(saved[name] is not None for name in TOP_LEVEL_IDS)


@pytest.mark.parametrize(
    ("arguments", "refused"),
    [
        (("--batch-size", "0"), "--batch-size: '0' is not a whole number of 1 or more"),
        (("--max-target-length", "-3"), "--max-target-length: '-3' is not a whole number of 1 or more"),
    ],
)
def test_script_refuses_counts_below_one_before_loading_anything(arguments, refused, tmp_path):
    # Before: a batch size of 0 reached range() after training, a traceback in place of a usage error.
    completed = run_named_script(
        "finetune_trocr.py", str(tmp_path / "batch"), "--tiny", "--output", str(tmp_path / "run"), *arguments
    )
    assert completed.returncode == 2 and refused in completed.stderr, completed.stderr
    assert not (tmp_path / "run").exists()
