#!/usr/bin/env python
"""Fine-tune Llama 3.2 Vision with LoRA on an exported llama_vision batch, offline.

    python scripts/finetune_llama_vision.py ocr-exports/llama-vision/b1 \\
        --model ~/models/Llama-3.2-11B-Vision-Instruct --output runs/b1-lora

    python scripts/finetune_llama_vision.py ocr-exports/llama-vision/b1 --tiny --output runs/tiny --max-steps 10

Loads the batch's train split, wraps the attention projections of the model's language half
in LoRA, trains with transformers' Trainer and ocr_datasets.training.LlamaVisionCollator (loss
on each answer and its closing <|eot_id|> only), saves the adapter and the processor to
--output, and when the batch has a validation split, transcribes it greedily, prints
"validation CER: x.xx%" and writes what the model read to OUTPUT/predictions-validation.jsonl,
which `ocr-datasets eval BATCH --predictions FILE --split validation` scores in full
(--eval-limit transcribes only some lines, and writes no such file). Nothing is downloaded:
the model comes from a local folder and the Hugging Face libraries run in offline mode. The
11B model's weights alone take ~21 GB in bfloat16; train it on a GPU, use --tiny to check the
pipeline on a CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ocr_datasets.adapters.chat import answer_text
from ocr_datasets.options import positive_int
from ocr_datasets.training.common import announce_predictions
from ocr_datasets.training.lora import (
    add_lora_arguments,
    add_training_arguments,
    add_validation_arguments,
    lora_config,
    parsed,
    script_parser,
    trainer_arguments,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = script_parser(
        __doc__,
        batch="an exported llama_vision batch folder (<export folder>/llama-vision/<batch id>)",
        output="folder for the LoRA adapter (adapter_config.json, adapter_model.safetensors) and the processor",
        model="local folder of a Llama 3.2 Vision checkpoint (config.json, *.safetensors, tokenizer and processor "
        "files), e.g. a downloaded copy of meta-llama/Llama-3.2-11B-Vision-Instruct; never fetched from the Hub",
        tiny="instead of a real model, a tiny random Mllama whose tokenizer is trained on the batch (saved to "
        "OUTPUT/tiny-base): checks the whole pipeline on a CPU in a minute; it learns nothing useful",
    )
    add_lora_arguments(
        parser,
        default_targets="q_proj,v_proj",
        adapted="the language model's self- and cross-attention (of q_proj, k_proj, v_proj, o_proj)",
    )
    training = add_training_arguments(
        parser, dtype_help="weights of the base model (default: bfloat16; --tiny always uses float32)"
    )
    training.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass: less memory, more time",
    )
    validation = add_validation_arguments(parser)
    validation.add_argument(
        "--eval-limit",
        type=positive_int,
        default=None,
        help="transcribe only the first N validation rows (default: all)",
    )
    return parsed(parser, argv)


def text_parts(rows) -> list[str]:
    return [
        part["text"]
        for messages in rows["messages"]
        for turn in messages
        for part in turn["content"]
        if part["type"] == "text"
    ]


def build_tiny_base(train, output: Path) -> Path:
    """Build the tiny model on the train split's texts and save it, so it is loaded like a real one."""
    from ocr_datasets.training.llama_vision import tiny_mllama

    processor, model = tiny_mllama(text_parts(train.select_columns(["messages"])))
    folder = output / "tiny-base"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def load_base(model_dir: Path, dtype: str):
    import torch
    from transformers import AutoProcessor, MllamaForConditionalGeneration

    from ocr_datasets.training.llama_vision import PAD

    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    if processor.tokenizer.pad_token is None:
        # Llama 3 reserves this token for padding in fine-tuning; the collator masks it in the labels.
        processor.tokenizer.pad_token = PAD
    model = MllamaForConditionalGeneration.from_pretrained(
        model_dir, local_files_only=True, dtype=getattr(torch, dtype)
    )
    return processor, model


def with_lora(model, args: argparse.Namespace):
    from peft import get_peft_model

    # The language model's self- and cross-attention layers read the image.
    model = get_peft_model(model, lora_config(args, "language_model"))
    model.print_trainable_parameters()
    return model


def train(model, processor, train_rows, args: argparse.Namespace) -> None:
    from transformers import Trainer, TrainingArguments

    from ocr_datasets.training import LlamaVisionCollator

    training_args = TrainingArguments(
        **trainer_arguments(args, TrainingArguments, use_reentrant=False),
        warmup_steps=0,
        # The collator reads the raw messages and images columns, which are no model arguments.
        remove_unused_columns=False,
    )
    Trainer(
        model=model,
        args=training_args,
        train_dataset=train_rows,
        data_collator=LlamaVisionCollator(processor, max_length=args.max_length),
    ).train()


def report_validation_cer(model, processor, rows, args: argparse.Namespace) -> None:
    from ocr_datasets.training import character_error_rate
    from ocr_datasets.training.llama_vision import transcribe

    split_size = len(rows)
    if args.eval_limit is not None:
        rows = rows.select(range(min(args.eval_limit, split_size)))
    rows = list(rows)
    predictions = transcribe(
        model, processor, rows, max_new_tokens=args.max_new_tokens, batch_size=args.eval_batch_size
    )
    references = [answer_text(row["messages"]) for row in rows]
    for reference, prediction in list(zip(references, predictions, strict=True))[:3]:
        print(f"  reference:  {reference}\n  prediction: {prediction}")
    cer = character_error_rate(references, predictions)
    print(
        f"validation CER: {cer:.2%} ({len(rows)} lines)"
        if cer is not None
        else "validation CER: n/a (empty references)"
    )
    if len(rows) < split_size:
        # ocr-datasets eval scores whole splits: a file of some lines would be refused.
        print(f"no predictions file: --eval-limit transcribed {len(rows)} of the {split_size} validation lines")
        return
    announce_predictions(args.output, args.batch_dir, [row["id"] for row in rows], predictions)


def main() -> int:
    args = parse_args()
    # Before anything is loaded; it also switches libraries that ocr_datasets already imported.
    from ocr_datasets.training import go_offline, load_batch

    go_offline()

    batch = load_batch(args.batch_dir)
    if "train" not in batch:
        sys.exit(f"{args.batch_dir}: no train split (splits: {', '.join(batch)})")
    args.output.mkdir(parents=True, exist_ok=True)
    model_dir = build_tiny_base(batch["train"], args.output) if args.tiny else args.model
    processor, model = load_base(model_dir, args.dtype)
    model = with_lora(model, args)
    train(model, processor, batch["train"], args)
    model.save_pretrained(args.output)
    processor.save_pretrained(args.output)
    print(f"LoRA adapter and processor saved to {args.output} (base model: {model_dir})")
    if "validation" in batch:
        report_validation_cer(model, processor, batch["validation"], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
