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
from .chat import TURNS, answer_text, answer_turn, user_turn, view_turns


class VlmAdapter(FormatAdapter):
    name = "vlm"
    folder = "vlm"
    features = Features({"id": Value("string"), "images": List(Image()), "prompt": TURNS, "completion": TURNS})
    image_column = "images"
    model_config: ClassVar[dict[str, Any]] = {
        "trainer": "trl.SFTTrainer",
        "dataset_type": "conversational prompt-completion, vision",
        "columns": {"prompt": "prompt", "completion": "completion", "images": "images"},
    }

    def project(self, batch, options):
        return {
            "id": batch["id"],
            "images": [[image] for image in batch["image"]],
            "prompt": [[user_turn(options.instruction)]] * len(batch["id"]),
            "completion": [[answer_turn(text)] for text in batch["ground_truth"]],
        }

    def transcription(self, row):
        return answer_text(row["completion"])

    def view_record(self, row, images, options):
        record: dict[str, Any] = {"id": row["id"], "prompt": view_turns(row["prompt"])}
        record["completion"] = view_turns(row["completion"])
        if options.copy_images:
            record["images"] = [image.path for image in images]
        if options.include_base64:
            record["images_base64"] = [image.data_url for image in images]
        return record
