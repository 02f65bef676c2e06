"""Vision-language models on ``vlm`` rows (TRL's prompt–completion form): greedy transcription for
any processor with a chat template, and a tiny, offline Qwen2.5-VL for tests and
``scripts/finetune_vlm.py --tiny``.

Training needs no code of ours: TRL's ``SFTTrainer`` collates ``vlm`` rows with its own
``DataCollatorForVisionLanguageModeling`` and, for prompt–completion rows, puts the loss on the
completion alone. The tiny model is built in memory with the real Qwen2.5-VL chat template,
Qwen's special tokens and pre-tokenizer split, and the real model's structure, shrunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from ..images import rgb
from ..options import DEFAULT_INSTRUCTION
from .common import byte_level_bpe, greedy_answers

# Verbatim chat_template of Qwen/Qwen2.5-VL-7B-Instruct (chat_template.json; Qwen2-VL ships the same
# bytes), as TRL 1.16 stores it in trl/chat_templates/qwen2_5_vl.jinja, which TRL's weekly CI
# (scripts/check_chat_templates.py) compares with the Hub; tests/test_vlm_consumers.py checks the
# two agree. Without a system turn it adds Qwen's default one; the image part becomes
# <|vision_start|><|image_pad|><|vision_end|>, which the processor expands to one pad per patch group.
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2's pre-tokenizer split (tokenizer.json of Qwen2.5): single digits, unlike Llama 3's triples.
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"

# The added special tokens of Qwen2.5-VL's tokenizer, in their order there (151643 ...).
QWEN2_5_VL_SPECIAL_TOKENS = (
    ENDOFTEXT,
    IM_START,
    IM_END,
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    VISION_START,
    VISION_END,
    "<|vision_pad|>",
    IMAGE_PAD,
    VIDEO_PAD,
)

# The real preprocessor_config.json values (CLIP normalisation, 14-pixel patches merged 2 x 2);
# only the pixel budget shrinks, so that a text line becomes a few dozen image tokens.
PATCH_SIZE, MERGE_SIZE, TEMPORAL_PATCH_SIZE = 14, 2, 2
TINY_MIN_PIXELS = 4 * (PATCH_SIZE * MERGE_SIZE) ** 2
TINY_MAX_PIXELS = 32 * (PATCH_SIZE * MERGE_SIZE) ** 2


def qwen2_5_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A tiny tokenizer that behaves like Qwen2.5-VL's: byte-level BPE trained on ``texts`` with
    Qwen2's pre-tokenizer split and its special tokens, no BOS (Qwen adds none), ``<|im_end|>``
    as end of turn, ``<|endoftext|>`` as padding, and the real chat template."""
    tokenizer = byte_level_bpe(
        texts, QWEN2_5_VL_SPECIAL_TOKENS, vocab_size=vocab_size, split_pattern=QWEN2_SPLIT_PATTERN
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
        chat_template=QWEN2_5_VL_CHAT_TEMPLATE,
        # The names the Qwen2.5-VL processor looks up its placeholders by.
        extra_special_tokens={"image_token": IMAGE_PAD, "video_token": VIDEO_PAD, "vision_bos_token": VISION_START},
    )


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` without its video processor. That one needs torchvision, which has
    no build for every torch (none for the CPU torch 2.13 this project tests with), and
    transformers 5.25 can neither check nor save an empty video slot without it. OCR lines are
    images. Saved, it is an image processor, a tokenizer and the chat template."""

    video_processor = None

    @classmethod
    def get_attributes(cls):
        return [name for name in super().get_attributes() if name != "video_processor"]


def tiny_qwen2_5_vl_processor(texts: Iterable[str] = (), instruction: str = DEFAULT_INSTRUCTION) -> Qwen2_5_VLProcessor:
    """An offline Qwen2.5-VL processor with the real chat template and image preprocessing at a
    small pixel budget; its tokenizer is trained on ``instruction`` and ``texts``. Cheap (milliseconds).

    It has no video processor (see ``ImageOnlyQwen2_5_VLProcessor``)."""
    # The PIL backend: the default Qwen2VLImageProcessor needs torchvision.
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS,
        patch_size=PATCH_SIZE,
        merge_size=MERGE_SIZE,
        temporal_patch_size=TEMPORAL_PATCH_SIZE,
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
    )
    return ImageOnlyQwen2_5_VLProcessor(
        image_processor=image_processor,
        video_processor=None,
        tokenizer=qwen2_5_tokenizer([instruction, *texts]),
        chat_template=QWEN2_5_VL_CHAT_TEMPLATE,
    )


def tiny_qwen2_5_vl(
    texts: Iterable[str], instruction: str = DEFAULT_INSTRUCTION, seed: int = 0
) -> tuple[Qwen2_5_VLProcessor, Qwen2_5_VLForConditionalGeneration]:
    """A tiny, randomly initialised Qwen2.5-VL and its processor (tokenizer trained on
    ``instruction`` and ``texts``), for exercising the real training and generation code on a CPU.

    The structure is the real model's, shrunk: a windowed ViT with full attention in its last
    block, 2 x 2 patch merging into the text model's width, and a decoder with multimodal
    (3-D) rotary positions."""
    processor = tiny_qwen2_5_vl_processor(texts, instruction)
    tokenizer = processor.tokenizer
    text_hidden = 64
    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": PATCH_SIZE,
            "spatial_merge_size": MERGE_SIZE,
            "temporal_patch_size": TEMPORAL_PATCH_SIZE,
            "window_size": 112,
            "fullatt_block_indexes": [1],
            "out_hidden_size": text_hidden,
        },
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": text_hidden,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 2048,
            # Temporal, height and width split the rotary frequencies of the 16-wide heads as the real
            # model splits its 128-wide ones (16/24/24).
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": tokenizer.convert_tokens_to_ids(ENDOFTEXT),
            "eos_token_id": tokenizer.convert_tokens_to_ids(IM_END),
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_PAD),
        video_token_id=tokenizer.convert_tokens_to_ids(VIDEO_PAD),
        vision_start_token_id=tokenizer.convert_tokens_to_ids(VISION_START),
        vision_end_token_id=tokenizer.convert_tokens_to_ids(VISION_END),
    )
    # Seeded without touching the caller's random state, as tiny_trocr does.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(IM_END)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return processor, model


def prompt_inputs(processor, rows: Sequence[dict[str, Any]]):
    """Generation inputs for ``vlm`` rows: each row's ``prompt`` rendered with the processor's
    chat template and the generation prompt, with its images in RGB, left padded (so every row's
    next token comes at the same position). Tokenized without special tokens, as TRL does: the
    template writes those it needs."""
    texts = [processor.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True) for row in rows]
    # Scans come as bilevel or grey (8- or 16-bit); image processors expect three 8-bit channels.
    images = [[rgb(image) for image in row["images"]] for row in rows]
    return processor(
        images=images, text=texts, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt"
    )


def transcribe(
    model, processor, rows: Sequence[dict[str, Any]], max_new_tokens: int = 128, batch_size: int = 4
) -> list[str]:
    """The model's greedy answer to each ``vlm`` row's prompt (``greedy_answers``), stripped;
    generation stops at the model's end-of-turn token(s) or after ``max_new_tokens``."""
    answers = greedy_answers(model, processor, rows, prompt_inputs, max_new_tokens, batch_size)
    return [answer.strip() for answer in answers]
