"""scripts/finetune_vlm.py end to end on real Fraktur lines exported as vlm: TRL's SFTTrainer with
LoRA on a tiny Qwen2.5-VL built offline, then a predictions file for the validation split."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support.data import line_gt_batch, line_gt_samples
from support.data import run_script as run_named_script

from ocr_datasets import export, load_batch

LINE_COUNT = 24


@pytest.fixture(scope="module")
def batch_dir(line_gt_copy, tmp_path_factory) -> Path:
    """Real lines as a vlm batch, whole works split into train and validation."""
    exports = tmp_path_factory.mktemp("exports")
    return line_gt_batch(line_gt_copy, exports, "vlm", "fraktur-vlm", LINE_COUNT, split="train=0.7,validation=0.3")


def run_script(*arguments: str) -> subprocess.CompletedProcess:
    return run_named_script("finetune_vlm.py", *arguments)


@pytest.mark.slow  # a subprocess that imports torch, transformers, TRL and peft, and trains
def test_script_fine_tunes_tiny_qwen2_5_vl_with_lora_and_writes_validation_predictions(batch_dir, tmp_path):
    output = tmp_path / "run"
    completed = run_script(
        str(batch_dir),
        "--tiny",
        "--output", str(output),
        "--lora-r", "8",
        "--max-steps", "2",
        "--batch-size", "2",
        "--gradient-accumulation-steps", "1",
        "--logging-steps", "1",
        "--max-new-tokens", "8",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    predictions = output / "predictions-validation.jsonl"
    assert f"validation predictions: {predictions} (ocr-datasets eval " in completed.stdout
    assert re.search(r"^validation CER: \d+\.\d\d% \(\d+ lines\)$", completed.stdout, re.MULTILINE), completed.stdout

    validation_ids = load_batch(batch_dir)["validation"]["id"]
    lines = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == validation_ids
    assert all(line.keys() == {"id", "text"} and isinstance(line["text"], str) for line in lines)

    adapter_config = json.loads((output / "adapter_config.json").read_text())
    assert adapter_config["peft_type"] == "LORA" and adapter_config["r"] == 8
    assert "language_model" in adapter_config["target_modules"]
    assert (output / "tiny-base" / "config.json").is_file() and (output / "chat_template.jinja").is_file()


def test_script_refuses_a_batch_of_another_format(line_gt_copy, tmp_path):
    trocr_batch = export(
        line_gt_samples(line_gt_copy)[:2], "trocr", batch_id="b", output_dir=tmp_path / "exports", progress=False
    )
    completed = run_script(trocr_batch.export_path, "--tiny", "--output", str(tmp_path / "run"))
    assert completed.returncode != 0
    assert "not a vlm batch" in completed.stderr and "--format vlm" in completed.stderr


@pytest.mark.parametrize(
    ("arguments", "refused"),
    [
        (("--eval-batch-size", "0"), "--eval-batch-size: '0' is not a whole number of 1 or more"),
        (("--batch-size", "-1"), "--batch-size: '-1' is not a whole number of 1 or more"),
        (("--lora-targets", " , "), "--lora-targets: ' , ' names no projection"),
    ],
)
def test_script_refuses_arguments_that_would_fail_only_after_training(arguments, refused, tmp_path):
    # Before: range() refused an eval batch size of 0 after training, and peft an empty target list
    # after the model had loaded.
    completed = run_script(str(tmp_path / "batch"), "--tiny", "--output", str(tmp_path / "run"), *arguments)
    assert completed.returncode == 2 and refused in completed.stderr, completed.stderr
    assert not (tmp_path / "run").exists()
