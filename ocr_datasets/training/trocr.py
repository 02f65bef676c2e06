"""TrOCR fine-tuning glue: the collator for ``Seq2SeqTrainer`` and a tiny local TrOCR for tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..images import rgb
from .common import byte_level_bpe

BOS, PAD, EOS, UNK = "<s>", "<pad>", "</s>", "<unk>"
# Real TrOCR squashes a line into 384 x 384; the tiny one keeps a line-like aspect at a size a CPU trains in seconds.
TINY_IMAGE_SIZE = {"height": 32, "width": 128}


@dataclass
class TrOCRCollator:
    """Turns rows of a ``trocr`` batch (``image``, ``text``, ``id``) into ``pixel_values`` and
    ``labels`` for ``VisionEncoderDecoderModel`` and ``Seq2SeqTrainer``.

    Images are converted to 8-bit RGB (scanned lines are often greyscale or bitonal, and the
    image processor normalises three channels); 16-bit and float greyscale is scaled, not
    clipped to white (``ocr_datasets.images.eight_bit``). Texts are tokenised, padded to the longest in the
    batch, truncated at ``max_target_length`` tokens, and padding is set to -100 so the loss
    ignores it (the processor does not do that).

    The model's config needs the ids it shifts labels with and generates from; checkpoints
    often lack them (``prepare_trocr_model`` fills in the missing ones)::

        model.config.decoder_start_token_id = processor.tokenizer.bos_token_id  # or the checkpoint's
        model.config.pad_token_id = processor.tokenizer.pad_token_id
        model.config.vocab_size = model.config.decoder.vocab_size

    The ``Seq2SeqTrainingArguments`` need ``remove_unused_columns=False``: the trainer would
    otherwise drop ``image`` and ``text``, which the model's ``forward`` does not take, before
    this collator sees them.
    """

    processor: Any
    max_target_length: int = 128

    def pixel_values(self, images: Sequence[Any]):
        return self.processor(images=[rgb(image) for image in images], return_tensors="pt").pixel_values

    def __call__(self, rows: Sequence[dict]) -> dict:
        tokens = self.processor.tokenizer(
            [row["text"] for row in rows],
            padding=True,
            truncation=True,
            max_length=self.max_target_length,
            return_tensors="pt",
        )
        # The attention mask, not the pad id, marks padding: a tokenizer may pad with its eos id.
        labels = tokens.input_ids.masked_fill(tokens.attention_mask == 0, -100)
        return {"pixel_values": self.pixel_values([row["image"] for row in rows]), "labels": labels}


def prepare_trocr_model(model, processor):
    """Set the ids training and generation need on ``model.config`` and ``model.generation_config``
    where they are missing: ``decoder_start_token_id`` (the checkpoint's, else the tokenizer's
    bos), ``pad_token_id`` and ``eos_token_id`` (the tokenizer's), and ``vocab_size`` (the
    decoder's). Ids already set are kept. Returns ``model``."""
    tokenizer = processor.tokenizer
    start = model.generation_config.decoder_start_token_id
    ids = {
        "decoder_start_token_id": tokenizer.bos_token_id if start is None else start,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    for config in (model.config, model.generation_config):
        for name, value in ids.items():
            if getattr(config, name, None) is None:
                setattr(config, name, value)
    if getattr(model.config, "vocab_size", None) is None:
        model.config.vocab_size = model.config.decoder.vocab_size
    return model


def tiny_trocr(texts: Iterable[str], seed: int = 0):
    """A randomly initialised TrOCR of ~70k parameters and its processor, built offline: a
    byte-level BPE tokenizer trained on ``texts`` (labels end in ``</s>``, decoding starts at
    ``<s>``), a ViT encoder on 32 x 128 pixel lines and a 2-layer TrOCR decoder, initialised
    from ``seed`` (the global random state is left alone). For tests and smoke runs of the
    training code, not for reading text. Returns ``(processor, model)``."""
    import torch
    from tokenizers import processors
    from transformers import (
        PreTrainedTokenizerFast,
        TrOCRConfig,
        TrOCRProcessor,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessorPil,
    )

    bpe = byte_level_bpe(texts, special_tokens=[BOS, PAD, EOS, UNK])
    bpe.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, bpe.token_to_id(EOS))])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=BOS, pad_token=PAD, eos_token=EOS, unk_token=UNK
    )
    # The Pil image processor: ViTImageProcessor needs torchvision.
    processor = TrOCRProcessor(image_processor=ViTImageProcessorPil(size=TINY_IMAGE_SIZE), tokenizer=tokenizer)

    encoder = ViTConfig(
        image_size=(TINY_IMAGE_SIZE["height"], TINY_IMAGE_SIZE["width"]),
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    decoder = TrOCRConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        decoder_layers=2,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = VisionEncoderDecoderModel(
            config=VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
        )
    return processor, prepare_trocr_model(model, processor)
