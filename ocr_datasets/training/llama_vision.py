"""Llama 3.2 Vision (Mllama): a training collator for ``llama_vision`` rows, greedy transcription,
and a tiny, offline Mllama model for tests and ``scripts/finetune_llama_vision.py --tiny``.

The real checkpoint (``meta-llama/Llama-3.2-11B-Vision-Instruct``) is gated and ~21 GB in bfloat16,
so nothing here downloads it: the tiny processor and model are built in memory with the real chat template,
the Llama 3 special tokens and pre-tokenizer split, and the real model's structure, shrunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from tokenizers import processors
from transformers import (
    MllamaConfig,
    MllamaForConditionalGeneration,
    MllamaImageProcessorPil,
    MllamaProcessor,
    PreTrainedTokenizerFast,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from ..images import rgb
from ..options import DEFAULT_INSTRUCTION
from .common import byte_level_bpe, greedy_answers

# Verbatim chat template of meta-llama/Llama-3.2-11B-Vision-Instruct (chat_template.json), taken from
# maiqingqiang/Jinja Tests/JinjaTests/ChatTemplateTests.swift (`llama3_2visionChatTemplate`) and
# cross-checked character for character against an independent copy in an NVIDIA config class
# (`MLlamaTemplateConfig`, escaped differently): 4909 chars,
# sha256 e407323269d15bba92fc431b5b7d757e66d920d01b45cae58149a692d7697d3c.
# One line per template line so the trailing spaces after the namespace line survive editors.
LLAMA_32_VISION_CHAT_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- if custom_tools is defined %}\n"
    "    {%- set tools = custom_tools %}\n"
    "{%- endif %}\n"
    "{%- if not tools_in_user_message is defined %}\n"
    "    {%- set tools_in_user_message = true %}\n"
    "{%- endif %}\n"
    "{%- if not date_string is defined %}\n"
    "    {%- if strftime_now is defined %}\n"
    '        {%- set date_string = strftime_now("%d %b %Y") %}\n'
    "    {%- else %}\n"
    '        {%- set date_string = "26 Jul 2024" %}\n'
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- if not tools is defined %}\n"
    "    {%- set tools = none %}\n"
    "{%- endif %}\n"
    "\n"
    "{#- This block extracts the system message, so we can slot it into the right place. #}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    '    {%- set system_message = "" %}\n'
    "{%- endif %}\n"
    "\n"
    "{#- Find out if there are any images #}\n"
    "{% set image_ns = namespace(has_images=false) %}      \n"
    "{%- for message in messages %}\n"
    "    {%- for content in message['content'] %}\n"
    "        {%- if content['type'] == 'image' %}\n"
    "            {%- set image_ns.has_images = true %}\n"
    "        {%- endif %}\n"
    "    {%- endfor %}\n"
    "{%- endfor %}\n"
    "\n"
    "{#- Error out if there are images and system message #}\n"
    '{%- if image_ns.has_images and not system_message == "" %}\n'
    '    {{- raise_exception("Prompting with images is incompatible with system messages.") }}\n'
    "{%- endif %}\n"
    "\n"
    "{#- System message if there are no images #}\n"
    "{%- if not image_ns.has_images %}\n"
    '    {{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}\n'
    "    {%- if tools is not none %}\n"
    '        {{- "Environment: ipython\\n" }}\n'
    "    {%- endif %}\n"
    '    {{- "Cutting Knowledge Date: December 2023\\n" }}\n'
    '    {{- "Today Date: " + date_string + "\\n\\n" }}\n'
    "    {%- if tools is not none and not tools_in_user_message %}\n"
    '        {{- "You have access to the following functions. '
    'To call a function, please respond with JSON for a function call." }}\n'
    '        {{- \'Respond in the format {"name": function name, '
    '"parameters": dictionary of argument name and its value}.\' }}\n'
    '        {{- "Do not use variables.\\n\\n" }}\n'
    "        {%- for t in tools %}\n"
    "            {{- t | tojson(indent=4) }}\n"
    '            {{- "\\n\\n" }}\n'
    "        {%- endfor %}\n"
    "    {%- endif %}\n"
    "    {{- system_message }}\n"
    '    {{- "<|eot_id|>" }}\n'
    "{%- endif %}\n"
    "\n"
    "{#- Custom tools are passed in a user message with some extra guidance #}\n"
    "{%- if tools_in_user_message and not tools is none %}\n"
    "    {#- Extract the first user message so we can plug it in here #}\n"
    "    {%- if messages | length != 0 %}\n"
    "        {%- set first_user_message = messages[0]['content']|trim %}\n"
    "        {%- set messages = messages[1:] %}\n"
    "    {%- else %}\n"
    '        {{- raise_exception("Cannot put tools in the first user message '
    "when there's no first user message!\") }}\n"
    "{%- endif %}\n"
    "    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n"
    '    {{- "Given the following functions, please respond with a JSON for a function call " }}\n'
    '    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}\n'
    '    {{- \'Respond in the format {"name": function name, '
    '"parameters": dictionary of argument name and its value}.\' }}\n'
    '    {{- "Do not use variables.\\n\\n" }}\n'
    "    {%- for t in tools %}\n"
    "        {{- t | tojson(indent=4) }}\n"
    '        {{- "\\n\\n" }}\n'
    "    {%- endfor %}\n"
    '    {{- first_user_message + "<|eot_id|>"}}\n'
    "{%- endif %}\n"
    "\n"
    "{%- for message in messages %}\n"
    "    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}\n"
    "        {%- if message['content'] is string %}\n"
    "            {{- message['content'] }}\n"
    "        {%- else %}\n"
    "            {%- for content in message['content'] %}\n"
    "                {%- if content['type'] == 'image' %}\n"
    "                    {{- '<|image|>' }}\n"
    "                {%- elif content['type'] == 'text' %}\n"
    "                    {{- content['text'] }}\n"
    "                {%- endif %}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '<|eot_id|>' }}\n"
    "    {%- elif 'tool_calls' in message %}\n"
    "        {%- if not message.tool_calls|length == 1 %}\n"
    '            {{- raise_exception("This model only supports single tool-calls at once!") }}\n'
    "        {%- endif %}\n"
    "        {%- set tool_call = message.tool_calls[0].function %}\n"
    "        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    "        {{- '{\"name\": \"' + tool_call.name + '\", ' }}\n"
    "        {{- '\"parameters\": ' }}\n"
    "        {{- tool_call.arguments | tojson }}\n"
    '        {{- "}" }}\n'
    '        {{- "<|eot_id|>" }}\n'
    '    {%- elif message.role == "tool" or message.role == "ipython" %}\n'
    '        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}\n'
    "        {%- if message.content is mapping or message.content is iterable %}\n"
    "            {{- message.content | tojson }}\n"
    "        {%- else %}\n"
    "            {{- message.content }}\n"
    "        {%- endif %}\n"
    '        {{- "<|eot_id|>" }}\n'
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n"
)

# Llama 3 pre-tokenizer split (tokenizer.json of Llama 3.x), so words split where the real ones do.
LLAMA3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

BOS = "<|begin_of_text|>"
EOT = "<|eot_id|>"
PAD = "<|finetune_right_pad_id|>"
IMAGE_TOKEN = "<|image|>"

# Same order as in the real vocabulary (128000...). <|image|> stays the last id, as in the real
# tokenizer (128256), where it equals the text model's vocab_size: the LM head has no row for it.
LLAMA3_SPECIAL_TOKENS = (
    BOS,
    "<|end_of_text|>",
    PAD,
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    EOT,
    "<|python_tag|>",
    IMAGE_TOKEN,
)

# The real preprocessor_config.json values; only the tile size shrinks (560 there).
TINY_TILE_SIZE = 56
TINY_MAX_TILES = 4


def llama3_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A tiny tokenizer that behaves like Llama 3.2 Vision's: byte-level BPE trained on ``texts``
    with Llama 3's pre-tokenizer split, its special tokens (``<|image|>`` last), BOS prepended by
    ``add_special_tokens=True``, and the real chat template."""
    tokenizer = byte_level_bpe(texts, LLAMA3_SPECIAL_TOKENS, vocab_size=vocab_size, split_pattern=LLAMA3_SPLIT_PATTERN)
    # Like the real tokenizer, add_special_tokens=True prepends BOS; chat-templated text already
    # starts with BOS, which is why it is tokenized with add_special_tokens=False.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {BOS}:1 $B:1",
        special_tokens=[(BOS, tokenizer.token_to_id(BOS))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
        chat_template=LLAMA_32_VISION_CHAT_TEMPLATE,
    )


def tiny_mllama_processor(texts: Iterable[str] = (), instruction: str = DEFAULT_INSTRUCTION) -> MllamaProcessor:
    """An offline ``MllamaProcessor`` with the real chat template and image preprocessing at a
    tiny tile size; its tokenizer is trained on ``instruction`` and ``texts``. Cheap (milliseconds)."""
    # The PIL backend: the default MllamaImageProcessor needs torchvision.
    image_processor = MllamaImageProcessorPil(
        size={"height": TINY_TILE_SIZE, "width": TINY_TILE_SIZE},
        max_image_tiles=TINY_MAX_TILES,
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        resample=2,
    )
    return MllamaProcessor(
        image_processor=image_processor,
        tokenizer=llama3_tokenizer([instruction, *texts]),
        chat_template=LLAMA_32_VISION_CHAT_TEMPLATE,
    )


def tiny_mllama(
    texts: Iterable[str], instruction: str = DEFAULT_INSTRUCTION, seed: int = 0
) -> tuple[MllamaProcessor, MllamaForConditionalGeneration]:
    """A tiny, randomly initialised Llama 3.2 Vision and its processor (tokenizer trained on
    ``instruction`` and ``texts``), for exercising the real training and generation code on a CPU.

    The structure is the real model's, shrunk: a tiled vision encoder with a global encoder and
    intermediate-layer features, a text decoder with a gated cross-attention layer, and
    ``<|image|>``'s id equal to the text ``vocab_size`` (the LM head has no row for it).
    """
    processor = tiny_mllama_processor(texts, instruction)
    tokenizer = processor.tokenizer
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if image_token_id != len(tokenizer) - 1:
        raise RuntimeError(f"{IMAGE_TOKEN} must be the last token (id {len(tokenizer) - 1}), not {image_token_id}")
    vision_hidden, intermediate_layers = 32, [0, 1]
    config = MllamaConfig(
        vision_config={
            "image_size": TINY_TILE_SIZE,
            "patch_size": 14,
            "max_num_tiles": TINY_MAX_TILES,
            "hidden_size": vision_hidden,
            "intermediate_size": 2 * vision_hidden,
            "attention_heads": 2,
            "num_hidden_layers": 2,
            "num_global_layers": 1,
            "intermediate_layers_indices": intermediate_layers,
            # The last hidden state concatenated with one state per intermediate layer.
            "vision_output_dim": vision_hidden * (1 + len(intermediate_layers)),
        },
        text_config={
            "vocab_size": image_token_id,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "cross_attention_layers": [1],
            "max_position_embeddings": 512,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.convert_tokens_to_ids(EOT),
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_index=image_token_id,
    )
    # Seeded without touching the caller's random state, as tiny_trocr does.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MllamaForConditionalGeneration(config)
    return processor, model


def _render(processor: MllamaProcessor, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    return processor.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def _rgb_images(row: dict) -> list:
    # Scans come as bilevel or grey (8- or 16-bit) TIFF/PNG; the image processor expects three
    # 8-bit channels, and convert("RGB") alone would clip 16-bit grey to white.
    return [rgb(image) for image in row["images"]]


def _require_pad_token(processor: MllamaProcessor) -> None:
    if processor.tokenizer.pad_token_id is None:
        raise ValueError(
            f"the tokenizer has no pad token; set processor.tokenizer.pad_token (Llama 3 reserves {PAD!r} for it)"
        )


def _prompt_messages(row: dict) -> list[dict]:
    messages = row["messages"]
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError(
            f"row {row.get('id', '?')!r}: the last turn must be the assistant's answer, got "
            f"{[turn['role'] for turn in messages]}"
        )
    return messages[:-1]


class LlamaVisionCollator:
    """Collates ``llama_vision`` rows (``messages`` + ``images``) into a training batch for
    ``MllamaForConditionalGeneration``: ``input_ids``, ``attention_mask``, ``pixel_values``,
    ``aspect_ratio_ids``, ``aspect_ratio_mask``, ``cross_attention_mask`` and ``labels``.

    Each row is rendered with the processor's chat template and tokenized with
    ``add_special_tokens=False`` (the template already starts with ``<|begin_of_text|>``; the
    tokenizer would add a second one). Images are converted to RGB. Rows are padded on the right.

    Labels train only on the answer: the answer's tokens and the closing ``<|eot_id|>`` keep their
    ids, so the model learns to transcribe and then to stop. Everything else is -100 (ignored by
    the loss):

    - the prompt, i.e. every token up to and including the assistant header
      (``<|start_header_id|>assistant<|end_header_id|>\\n\\n``): the model should not spend its
      capacity learning to predict the instruction, which is the same in every row;
    - padding;
    - ``<|image|>``, wherever it occurs. Its id (128256) equals the size of the output
      vocabulary: the LM head has no row for it, so a label with that id makes the loss index out
      of range (transformers issue 33819). Inside the prompt it is masked anyway; it is masked
      explicitly so that no row shape can bring it back.

    The prompt length is measured, not assumed: the prompt (every turn but the answer, rendered
    with ``add_generation_prompt=True``) must tokenize to a prefix of the full sequence, else the
    collator raises ``ValueError`` rather than train on a misaligned mask. ``max_length``
    truncates long rows on the right; a row left without any answer token raises ``ValueError``.
    """

    def __init__(self, processor: MllamaProcessor, max_length: int | None = None):
        _require_pad_token(processor)
        self.processor = processor
        self.max_length = max_length
        self.image_token_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        encoded = self.processor(
            images=[_rgb_images(row) for row in rows],
            text=[_render(self.processor, row["messages"]) for row in rows],
            add_special_tokens=False,
            padding=True,
            padding_side="right",
            truncation=self.max_length is not None,
            max_length=self.max_length,
            return_tensors="pt",
        )
        labels = encoded["input_ids"].clone()
        labels[encoded["attention_mask"] == 0] = -100
        labels[labels == self.image_token_id] = -100
        for index, row in enumerate(rows):
            unpadded = encoded["input_ids"][index][encoded["attention_mask"][index] == 1].tolist()
            labels[index, : self._prompt_length(row, unpadded)] = -100
        return {**encoded, "labels": labels}

    def _prompt_length(self, row: dict, sequence: list[int]) -> int:
        prompt = _render(self.processor, _prompt_messages(row), add_generation_prompt=True)
        prompt_ids = self.processor.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if self.max_length is not None and len(sequence) <= len(prompt_ids) and prompt_ids[: len(sequence)] == sequence:
            raise ValueError(
                f"row {row.get('id', '?')!r}: max_length={self.max_length} leaves no answer token after the "
                f"{len(prompt_ids)}-token prompt"
            )
        if sequence[: len(prompt_ids)] != prompt_ids:
            raise ValueError(
                f"row {row.get('id', '?')!r}: the tokenized prompt is not a prefix of the tokenized conversation, "
                "so the answer cannot be located (does the chat template render the generation prompt differently "
                "from a finished turn, or does the tokenizer merge across the assistant header?)"
            )
        return len(prompt_ids)


def prompt_inputs(processor: MllamaProcessor, rows: Sequence[dict[str, Any]]):
    """Generation inputs for ``rows``: every turn but the answer, then the assistant header, left
    padded (so every row's next token comes at the same position)."""
    _require_pad_token(processor)
    return processor(
        images=[_rgb_images(row) for row in rows],
        text=[_render(processor, _prompt_messages(row), add_generation_prompt=True) for row in rows],
        add_special_tokens=False,
        padding=True,
        padding_side="left",
        return_tensors="pt",
    )


def _stop_ids(model: MllamaForConditionalGeneration, tokenizer) -> list[int]:
    configured = model.generation_config.eos_token_id
    configured = [] if configured is None else [configured] if isinstance(configured, int) else list(configured)
    # The Instruct model ends its turn with <|eot_id|>; a base checkpoint may list only <|end_of_text|>.
    return sorted({tokenizer.convert_tokens_to_ids(EOT), *configured})


def transcribe(
    model: MllamaForConditionalGeneration,
    processor: MllamaProcessor,
    rows: Sequence[dict[str, Any]],
    max_new_tokens: int = 128,
    batch_size: int = 4,
) -> list[str]:
    """The model's greedy answer to each row's prompt (its ``messages`` without the answer;
    ``greedy_answers``); generation stops at ``<|eot_id|>`` or after ``max_new_tokens``."""
    stop_ids = _stop_ids(model, processor.tokenizer)
    return greedy_answers(model, processor, rows, prompt_inputs, max_new_tokens, batch_size, eos_token_id=stop_ids)
