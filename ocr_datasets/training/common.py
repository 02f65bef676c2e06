"""What both fine-tuning paths share: offline switches, loading a batch, tiny tokenizers, CER."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..api import load_batch
from ..offline import switch_offline as go_offline
from ..statistics import error_rates

__all__ = ["byte_level_bpe", "character_error_rate", "go_offline", "load_batch"]


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
    """CER over the whole set (total edits / total reference characters), as the batch card computes it."""
    return error_rates(list(zip(references, predictions, strict=True)))["cer"]
