#!/usr/bin/env python
"""Fine-tune a vision-language model with LoRA on an exported vlm batch, offline, with TRL.

    python scripts/finetune_vlm.py ocr-exports/vlm/b1 \\
        --model ~/models/Qwen2.5-VL-3B-Instruct --output runs/b1-lora

    python scripts/finetune_vlm.py ocr-exports/vlm/b1 --tiny --output runs/tiny --max-steps 10

Trains on the batch's train split with TRL's SFTTrainer, which collates the prompt-completion
rows with its own vision collator and puts the loss on each transcription and its end-of-turn
token only; LoRA (peft) adapts the language model's attention, the vision encoder stays frozen.
Saves the adapter and the processor to --output. When the batch has a validation split, it
transcribes it greedily, writes one JSON line per validation line, {"id": ..., "text": ...}, to
OUTPUT/predictions-validation.jsonl, and prints that path, the `ocr-datasets eval` command that
scores it, and "validation CER: x.xx%".

--model is a local folder of any checkpoint whose processor has a chat template and which
AutoModelForImageTextToText loads (Qwen2.5-VL / Qwen3-VL, SmolVLM, Gemma 3 ...), downloaded
beforehand, for example with `hf download Qwen/Qwen2.5-VL-3B-Instruct --local-dir
models/Qwen2.5-VL-3B-Instruct`; Qwen's video processor needs torchvision installed. --tiny builds a
tiny random Qwen2.5-VL from the train texts to check the pipeline on a CPU in a minute; it learns
nothing useful (its base weights go to OUTPUT/tiny-base). The Hugging Face libraries run in
offline mode: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys

from ocr_datasets.adapters.chat import answer_text
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = script_parser(
        __doc__,
        batch="an exported vlm batch folder (<export folder>/vlm/<batch id>)",
        output="folder for the LoRA adapter, the processor and predictions-validation.jsonl",
        model="local folder of a vision-language checkpoint (config.json, *.safetensors, processor files with a "
        "chat template); never fetched from the Hub",
        tiny="instead of a real model, a tiny random Qwen2.5-VL whose tokenizer is trained on the batch "
        "(weights saved to OUTPUT/tiny-base): checks the whole pipeline on a CPU; it learns nothing useful",
    )
    add_lora_arguments(parser, default_targets="q_proj,k_proj,v_proj,o_proj", adapted="the language model's attention")
    training = add_training_arguments(
        parser,
        dtype_help="weights of the base model and mixed precision (default: bfloat16; --tiny always uses float32)",
    )
    training.add_argument(
        "--no-gradient-checkpointing",
        dest="gradient_checkpointing",
        action="store_false",
        help="keep activations instead of recomputing them (TRL's default recomputes: less memory, more time)",
    )
    add_validation_arguments(parser)
    return parsed(parser, argv)


def load_base(args: argparse.Namespace, train):
    if args.tiny:
        from ocr_datasets.training.vlm import tiny_qwen2_5_vl

        instruction = train[0]["prompt"][0]["content"][-1]["text"]
        # The processor stays in memory (reloading Qwen2.5-VL's needs torchvision); the base weights
        # are saved so that the adapter can be attached to them again.
        processor, model = tiny_qwen2_5_vl([answer_text(turns) for turns in train["completion"]], instruction)
        model.save_pretrained(args.output / "tiny-base")
        return processor, model
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(args.model, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(
        args.model, local_files_only=True, dtype=getattr(torch, args.dtype)
    )
    return processor, model


def train(model, processor, train_rows, args: argparse.Namespace):
    from trl import SFTConfig, SFTTrainer

    config = SFTConfig(**trainer_arguments(args, SFTConfig), max_length=args.max_length, bf16=args.dtype == "bfloat16")
    # Prompt-completion rows: SFTTrainer's vision collator sets completion_only_loss by itself.
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=train_rows,
        processing_class=processor,
        # Vision encoders have projections of the same names: LoRA stays in the language model
        # (language_model in Qwen2.5-VL and Gemma 3, text_model in SmolVLM / Idefics3).
        peft_config=lora_config(args, "language_model|text_model"),
    )
    trainer.train()
    return trainer


def report_validation(model, processor, rows, args: argparse.Namespace) -> None:
    from ocr_datasets.adapters import get_adapter
    from ocr_datasets.training import character_error_rate
    from ocr_datasets.training.vlm import transcribe

    rows = list(rows)
    predictions = transcribe(
        model, processor, rows, max_new_tokens=args.max_new_tokens, batch_size=args.eval_batch_size
    )
    announce_predictions(args.output, args.batch_dir, [row["id"] for row in rows], predictions)
    cer = character_error_rate([get_adapter("vlm").transcription(row) for row in rows], predictions)
    print(f"validation CER: {cer:.2%} ({len(rows)} lines)" if cer is not None else "validation CER: n/a")


def main(argv=None) -> int:
    args = parse_args(argv)
    # Before anything is loaded; it also switches libraries that ocr_datasets already imported.
    from ocr_datasets.training import go_offline, load_batch

    go_offline()

    batch = load_batch(args.batch_dir)
    if "train" not in batch:
        sys.exit(f"{args.batch_dir}: no train split (splits: {', '.join(batch)}); export with --split")
    if "completion" not in batch["train"].column_names:
        sys.exit(
            f"{args.batch_dir}: not a vlm batch (columns: {', '.join(batch['train'].column_names)}); "
            "export it with --format vlm"
        )
    args.output.mkdir(parents=True, exist_ok=True)
    processor, model = load_base(args, batch["train"])
    trainer = train(model, processor, batch["train"], args)
    trainer.save_model(str(args.output))  # the adapter, and the processor as the trainer's processing_class
    print(f"LoRA adapter and processor saved to {args.output} (base model: {'tiny' if args.tiny else args.model})")
    if "validation" in batch:
        report_validation(trainer.model, processor, batch["validation"], args)
    else:
        print("no validation split: no predictions written (export with --split train=0.9,validation=0.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
