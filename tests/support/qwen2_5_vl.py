"""Qwen2.5-VL for tests: the library's tiny offline processor and model (the real chat template,
Qwen's special tokens and pre-tokenizer split, a PIL image processor at a small pixel budget; see
``ocr_datasets.training.vlm``), named here beside the other families the tests train."""

from __future__ import annotations

from ocr_datasets.training.vlm import (
    IM_END,
    IMAGE_PAD,
    QWEN2_5_VL_CHAT_TEMPLATE,
    VISION_END,
    VISION_START,
    tiny_qwen2_5_vl,
    tiny_qwen2_5_vl_processor,
)

__all__ = [
    "IMAGE_PAD",
    "IM_END",
    "QWEN2_5_VL_CHAT_TEMPLATE",
    "VISION_END",
    "VISION_START",
    "tiny_qwen2_5_vl",
    "tiny_qwen2_5_vl_processor",
]
