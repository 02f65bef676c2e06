"""Model-neutral vision chat rows: TRL's conversational prompt–completion form with images.

TRL's ``SFTTrainer`` reads these rows as they are for any vision-language model whose processor
has a chat template (Qwen2.5-VL / Qwen3-VL, Gemma 3, SmolVLM / Idefics3, Llama 3.2 Vision ...),
and with a separate ``prompt`` and ``completion`` it trains on the transcription alone
(``completion_only_loss``), which a ``messages`` column does not give vision models.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..features import Features, Image, List, Value
from .base import FormatAdapter
from .llama_vision import _CONTENT_PART, _without_empty_text

_TURNS = List({"role": Value("string"), "content": List(_CONTENT_PART)})


class VlmAdapter(FormatAdapter):
    name = "vlm"
    folder = "vlm"
    features = Features({"id": Value("string"), "images": List(Image()), "prompt": _TURNS, "completion": _TURNS})
    image_column = "images"
    model_config: ClassVar[dict[str, Any]] = {
        "trainer": "trl.SFTTrainer",
        "dataset_type": "conversational prompt-completion, vision",
        "columns": {"prompt": "prompt", "completion": "completion", "images": "images"},
    }

    def project(self, batch, options):
        # The image part first and no system turn, as in llama_vision rows: some templates refuse a
        # system turn beside an image (Mllama), and the image attends only to the text after it.
        prompt = [
            {
                "role": "user",
                "content": [{"type": "image", "text": None}, {"type": "text", "text": options.instruction}],
            }
        ]
        return {
            "id": batch["id"],
            "images": [[image] for image in batch["image"]],
            "prompt": [prompt] * len(batch["id"]),
            "completion": [
                [{"role": "assistant", "content": [{"type": "text", "text": text}]}] for text in batch["ground_truth"]
            ],
        }

    def transcription(self, row):
        [answer] = row["completion"]
        return answer["content"][0]["text"]

    def view_record(self, row, images, options):
        record: dict[str, Any] = {"id": row["id"]}
        for column in ("prompt", "completion"):
            record[column] = [
                {"role": turn["role"], "content": [_without_empty_text(part) for part in turn["content"]]}
                for turn in row[column]
            ]
        if options.copy_images:
            record["images"] = [image.path for image in images]
        if options.include_base64:
            record["images_base64"] = [image.data_url for image in images]
        return record
