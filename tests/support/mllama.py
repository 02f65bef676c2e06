"""Llama 3.2 Vision for tests: the library's tiny offline processor (real chat template, Llama 3
special tokens, tiled image preprocessing; see ``ocr_datasets.training.llama_vision``), and TRL's
vision collator run on it."""

from __future__ import annotations

from typing import Any

from ocr_datasets.training.llama_vision import tiny_mllama_processor

__all__ = ["tiny_mllama_processor", "trl_vision_collate"]


def trl_vision_collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate dataset rows exactly as TRL's SFTTrainer does for a vision dataset, without a model.

    SFTTrainer skips dataset preparation for vision data (columns ``image``/``images``) and hands
    the raw rows to this collator, so a row it accepts here is a row SFTTrainer trains on.
    """
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    collator = DataCollatorForVisionLanguageModeling(processor=tiny_mllama_processor())
    return collator(rows)
