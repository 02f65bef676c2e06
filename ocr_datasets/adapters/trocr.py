"""TrOCR rows: a line image and its text, as VisionEncoderDecoderModel fine-tuning reads them."""

from __future__ import annotations

from typing import Any, ClassVar

from ..features import Features, Image, Value
from .base import FormatAdapter


class TrOCRAdapter(FormatAdapter):
    name = "trocr"
    folder = "trocr"
    features = Features({"image": Image(), "text": Value("string"), "id": Value("string")})
    image_column = "image"
    model_config: ClassVar[dict[str, Any]] = {
        "architecture": "VisionEncoderDecoderModel",
        "base_model": "microsoft/trocr-base-handwritten",
        "processor": "TrOCRProcessor",
        "columns": {"image": "image", "text": "text"},
    }

    def project(self, batch, options):
        return {"image": batch["image"], "text": batch["ground_truth"], "id": batch["id"]}

    def transcription(self, row):
        return row["text"]

    def view_record(self, row, images, options):
        # file_name + text: the layout of an imagefolder metadata.jsonl and of the original service.
        record = {"file_name": images[0].path, "text": row["text"], "id": row["id"]}
        if images[0].data_url:
            record["image_base64"] = images[0].data_url
        return record
