"""Llama 3.2 Vision chat rows, in the shape TRL's SFTTrainer and the Mllama chat template accept."""

from __future__ import annotations

from typing import Any, ClassVar

from ..features import Features, Image, List, Value
from .base import FormatAdapter
from .chat import TURNS, answer_text, answer_turn, user_turn, view_turns


class LlamaVisionAdapter(FormatAdapter):
    name = "llama_vision"
    folder = "llama-vision"
    features = Features(
        {
            "id": Value("string"),
            "images": List(Image()),
            "messages": TURNS,
        }
    )
    image_column = "images"
    model_config: ClassVar[dict[str, Any]] = {
        "architecture": "MllamaForConditionalGeneration",
        "base_model": "meta-llama/Llama-3.2-11B-Vision-Instruct",
        "ollama_tag": "llama3.2-vision:11b",
        "columns": {"messages": "messages", "images": "images"},
    }

    def project(self, batch, options):
        return {
            "id": batch["id"],
            "images": [[image] for image in batch["image"]],
            "messages": [[user_turn(options.instruction), answer_turn(text)] for text in batch["ground_truth"]],
        }

    def transcription(self, row):
        return answer_text(row["messages"])

    def view_record(self, row, images, options):
        messages = view_turns(row["messages"])
        if options.include_base64:
            # The original service's OpenAI-style lines: each image part carries its data: URL.
            inline = iter(images)
            for turn in messages:
                turn["content"] = [
                    {"type": "image_url", "image_url": {"url": next(inline).data_url}}
                    if part["type"] == "image"
                    else part
                    for part in turn["content"]
                ]
            return {"id": row["id"], "messages": messages}
        return {"id": row["id"], "messages": messages, "images": [image.path for image in images]}
