"""Fine-tune TrOCR on an exported trocr batch, offline, and report the validation CER.

    python scripts/finetune_trocr.py exports/trocr/b1 --model models/trocr-base-handwritten --output runs/trocr-b1
    python scripts/finetune_trocr.py exports/trocr/b1 --tiny --output runs/tiny --max-steps 20

Trains on the batch's train split with Seq2SeqTrainer, saves the model and processor to
--output, and, when the batch has a validation split, transcribes it, prints
"validation CER: x.xx%" and writes what the model read to OUTPUT/predictions-validation.jsonl,
which `ocr-datasets eval BATCH --predictions FILE --split validation` scores in full.
Never reaches the network: --model is a local folder (a checkpoint downloaded beforehand, for
example with `hf download microsoft/trocr-base-handwritten --local-dir
models/trocr-base-handwritten`), and --tiny builds a small random TrOCR from the batch's train
texts to check the pipeline in seconds on a CPU.
"""

from __future__ import annotations

import argparse

from ocr_datasets.training.common import go_offline

go_offline()  # before anything below loads or downloads

import torch  # noqa: E402
from transformers import (  # noqa: E402
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrOCRProcessor,
    VisionEncoderDecoderModel,
)

from ocr_datasets.options import positive_int  # noqa: E402
from ocr_datasets.training import TrOCRCollator, character_error_rate, load_batch  # noqa: E402
from ocr_datasets.training.common import announce_predictions  # noqa: E402
from ocr_datasets.training.trocr import prepare_trocr_model, tiny_trocr  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("batch", help="an exported trocr batch folder (with a train split, optionally validation)")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", metavar="DIR", help="a local TrOCR checkpoint folder (model + processor)")
    model.add_argument(
        "--tiny", action="store_true", help="a tiny random TrOCR built from the train texts (smoke test)"
    )
    parser.add_argument(
        "--output", required=True, metavar="DIR", help="where checkpoints, the model and the processor are saved"
    )
    parser.add_argument("--epochs", metavar="N", type=float, default=3.0, help="training epochs (default: 3)")
    parser.add_argument(
        "--batch-size",
        metavar="N",
        type=positive_int,
        default=8,
        help="lines per training and generation step (default: 8)",
    )
    parser.add_argument(
        "--learning-rate", metavar="X", type=float, default=5e-5, help="peak learning rate (default: 5e-5)"
    )
    parser.add_argument(
        "--max-target-length",
        metavar="N",
        type=positive_int,
        default=128,
        help="label tokens per line; longer texts are cut (default: 128)",
    )
    parser.add_argument(
        "--max-steps", metavar="N", type=int, default=-1, help="stop after this many steps, overriding --epochs"
    )
    return parser.parse_args(argv)


def load_model(args, train_texts):
    if args.tiny:
        return tiny_trocr(train_texts)
    processor = TrOCRProcessor.from_pretrained(args.model, local_files_only=True)
    model = VisionEncoderDecoderModel.from_pretrained(args.model, local_files_only=True)
    return processor, prepare_trocr_model(model, processor)


def transcribe(model, collator, rows, batch_size, max_new_tokens):
    model.eval()
    texts = []
    for start in range(0, len(rows), batch_size):
        images = rows[start : start + batch_size]["image"]
        generated = model.generate(collator.pixel_values(images).to(model.device), max_new_tokens=max_new_tokens)
        texts.extend(collator.processor.batch_decode(generated, skip_special_tokens=True))
    return texts


def main(argv=None) -> None:
    args = parse_args(argv)
    batch = load_batch(args.batch)
    processor, model = load_model(args, batch["train"]["text"])
    collator = TrOCRCollator(processor, max_target_length=args.max_target_length)
    training_args = Seq2SeqTrainingArguments(
        output_dir=args.output,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        remove_unused_columns=False,  # the collator needs the image and text columns
        save_total_limit=2,
        report_to="none",
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=training_args,
        train_dataset=batch["train"],
        data_collator=collator,
        processing_class=processor,
    )
    trainer.train()
    trainer.save_model(args.output)  # the processor too, as processing_class
    print(f"saved model and processor to {args.output}")

    if "validation" in batch:
        validation = batch["validation"]
        with torch.inference_mode():
            predictions = transcribe(trainer.model, collator, validation, args.batch_size, args.max_target_length)
        cer = character_error_rate(list(validation["text"]), predictions)
        print(f"validation CER: {cer:.2%} over {len(validation)} lines")
        announce_predictions(args.output, args.batch, validation["id"], predictions)


if __name__ == "__main__":
    main()
