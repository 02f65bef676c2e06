"""SmolVLM (the Idefics3 architecture) for tests: a tiny, offline ``Idefics3Processor`` with the
real SmolVLM chat template, and a tiny ``Idefics3ForConditionalGeneration`` to train with TRL."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    PreTrainedTokenizerFast,
)

from ocr_datasets.options import DEFAULT_INSTRUCTION
from ocr_datasets.training.common import byte_level_bpe

# Verbatim chat_template of HuggingFaceTB/SmolVLM-Instruct (SmolVLM2 ships the same bytes), as TRL 1.16
# stores it in trl/chat_templates/smolvlm.jinja for its weekly comparison with the Hub;
# tests/test_vlm_consumers.py checks the two agree. A turn that starts with an image gets "User:"
# with no space, and every turn ends with <end_of_utterance> and a newline.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

IM_START = "<|im_start|>"
END_OF_UTTERANCE = "<end_of_utterance>"
PAD = "<|im_end|>"
IMAGE_TOKEN = "<image>"
FAKE_IMAGE_TOKEN = "<fake_token_around_image>"
GLOBAL_IMAGE_TAG = "<global-img>"
# The tokens the Idefics3 processor writes around each image's sub-images (up to a 6 x 6 grid).
ROW_COL_TOKENS = tuple(f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7))
SPECIAL_TOKENS = (
    "<|endoftext|>",
    IM_START,
    PAD,
    FAKE_IMAGE_TOKEN,
    IMAGE_TOKEN,
    END_OF_UTTERANCE,
    GLOBAL_IMAGE_TAG,
    *ROW_COL_TOKENS,
)

# SigLIP's normalisation as in SmolVLM's preprocessor_config.json; the sizes shrink (384 / 1536
# there): a line is cut into 56-pixel tiles, each 4 x 4 patches, pooled 2 x 2 into 4 image tokens.
TILE = 56
PATCH = 14
SCALE_FACTOR = 2
IMAGE_SEQ_LEN = (TILE // PATCH) ** 2 // SCALE_FACTOR**2


def tiny_smolvlm_processor(texts: Iterable[str] = (), instruction: str = DEFAULT_INSTRUCTION) -> Idefics3Processor:
    """An offline SmolVLM processor: byte-level BPE trained on ``instruction`` and ``texts`` with
    the special tokens the processor and template use, SmolVLM's chat template, and Idefics3's
    image splitting at a tiny tile size."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe([instruction, *texts], SPECIAL_TOKENS, vocab_size=512),
        bos_token=IM_START,
        eos_token=END_OF_UTTERANCE,
        pad_token=PAD,
        clean_up_tokenization_spaces=False,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )
    # The PIL backend: the default Idefics3ImageProcessor needs torchvision.
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2 * TILE},
        max_image_size={"longest_edge": TILE},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=IMAGE_SEQ_LEN,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )


def tiny_smolvlm(
    texts: Iterable[str], instruction: str = DEFAULT_INSTRUCTION, seed: int = 0
) -> tuple[Idefics3Processor, Idefics3ForConditionalGeneration]:
    """A tiny, randomly initialised SmolVLM (SigLIP encoder, pixel-shuffle connector, Llama
    decoder) and its processor."""
    processor = tiny_smolvlm_processor(texts, instruction)
    tokenizer = processor.tokenizer
    config = Idefics3Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": TILE,
            "patch_size": PATCH,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        scale_factor=SCALE_FACTOR,
        image_token_id=processor.image_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Idefics3ForConditionalGeneration(config)
    return processor, model
