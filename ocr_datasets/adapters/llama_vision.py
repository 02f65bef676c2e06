"""Llama 3.2 Vision chat rows, in the shape TRL's SFTTrainer and the Mllama chat template accept."""

from __future__ import annotations

from typing import Any, ClassVar

from ..features import Features, Image, List, Value
from .base import FormatAdapter

_CONTENT_PART = {"type": Value("string"), "text": Value("string")}


class LlamaVisionAdapter(FormatAdapter):
    name = "llama_vision"
    folder = "llama-vision"
    features = Features(
        {
            "id": Value("string"),
            "images": List(Image()),
            "messages": List({"role": Value("string"), "content": List(_CONTENT_PART)}),
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
            "messages": [self._messages(options.instruction, text) for text in batch["ground_truth"]],
        }

    @staticmethod
    def _messages(instruction: str, answer: str) -> list[dict]:
        # No system turn: the Mllama template refuses one next to an image. The image part comes
        # first because the image attends only to the text after it. Every content is a list,
        # since one Arrow column cannot hold both strings and lists.
        return [
            {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": instruction}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]

    def transcription(self, row):
        [answer] = [turn for turn in row["messages"] if turn["role"] == "assistant"]
        return answer["content"][0]["text"]

    def view_record(self, row, images, options):
        messages = [
            {"role": turn["role"], "content": [_without_empty_text(part) for part in turn["content"]]}
            for turn in row["messages"]
        ]
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


def _without_empty_text(part: dict) -> dict:
    return {key: value for key, value in part.items() if not (key == "text" and value is None)}
