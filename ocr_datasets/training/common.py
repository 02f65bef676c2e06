"""What both fine-tuning paths share: offline switches, loading a batch, tiny tokenizers, CER,
and the predictions file ``ocr-datasets eval`` reads."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..api import load_batch
from ..evaluation import write_predictions
from ..offline import switch_offline as go_offline
from ..statistics import error_rates
from ..validation import normalize_text

__all__ = [
    "announce_predictions",
    "byte_level_bpe",
    "character_error_rate",
    "go_offline",
    "greedy_answers",
    "load_batch",
    "save_predictions",
]


def byte_level_bpe(
    texts: Iterable[str], special_tokens: Sequence[str], vocab_size: int = 400, split_pattern: str | None = None
):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts`` (for tiny local models).

    Byte level with the full byte alphabet, so every character (ſ, ẞ, U+0364 ...) round-trips
    even when the training texts never showed it. ``split_pattern`` is a pre-tokenizer regex
    (for example Llama 3's), else whitespace-and-punctuation splitting as in GPT-2.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    if split_pattern is None:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split_pattern), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.add_special_tokens(list(special_tokens))
    return tokenizer


def character_error_rate(references: Sequence[str], predictions: Sequence[str]) -> float | None:
    """CER over the whole set (total edits / total reference characters), as the batch card and
    ``ocr-datasets eval`` compute it: the references are a batch's (already normalised), the
    predictions are normalised as an export's texts are by default (NFC, spaces collapsed)."""
    normalised = (normalize_text(prediction, "NFC") for prediction in predictions)
    return error_rates(list(zip(references, normalised, strict=True)))["cer"]


def save_predictions(output_dir: str | os.PathLike[str], split: str, ids: Iterable[str], texts: Iterable[str]) -> Path:
    """Write what the model read on each line of ``split`` to ``<output_dir>/predictions-<split>.jsonl``,
    the file ``ocr-datasets eval BATCH --predictions FILE --split SPLIT`` scores; returns its path."""
    return write_predictions(Path(output_dir) / f"predictions-{split}.jsonl", ids, texts)


def announce_predictions(
    output_dir: str | os.PathLike[str], batch_dir: str | os.PathLike[str], ids: Iterable[str], texts: Iterable[str]
) -> Path:
    """``save_predictions`` of the validation split, and the ``ocr-datasets eval`` command that scores them."""
    path = save_predictions(output_dir, "validation", ids, texts)
    print(f"validation predictions: {path} (ocr-datasets eval {batch_dir} --predictions {path} --split validation)")
    return path


def greedy_answers(
    model,
    processor,
    rows: Sequence[dict[str, Any]],
    prompt_inputs: Callable[[Any, Sequence[dict[str, Any]]], Any],
    max_new_tokens: int,
    batch_size: int,
    **generate: Any,
) -> list[str]:
    """A vision chat model's greedy answer to each of ``rows``, ``batch_size`` at a time, from
    the (left padded) ``prompt_inputs(processor, rows)``, decoded without special tokens;
    ``generate`` adds to ``model.generate``'s arguments. Puts the model in eval mode (no dropout,
    also in LoRA layers)."""
    import torch

    model.eval()
    tokenizer = processor.tokenizer
    answers: list[str] = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            inputs = prompt_inputs(processor, rows[start : start + batch_size]).to(model.device)
            generated = model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                **generate,
            )
            answers += tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return answers
