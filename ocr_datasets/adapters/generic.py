"""Generic rows: every canonical field, for tools outside the TrOCR and Llama worlds."""

from __future__ import annotations

import json

from ..canonical import CANONICAL_FEATURES
from .base import FormatAdapter


class CanonicalRowsAdapter(FormatAdapter):
    """A format whose rows are the canonical rows as they are."""

    features = CANONICAL_FEATURES
    image_column = "image"

    def transcription(self, row):
        return row["ground_truth"]


def manifest_extras(row: dict) -> dict:
    """A canonical row's optional fields as the input manifest names them (so that what a format
    writes of them reads back as an input)."""
    return {
        "ocr_text": row["ocr_text"],
        "ocr_confidence": row["ocr_confidence"],
        "metadata": json.loads(row["metadata"]),
    }


class GenericAdapter(CanonicalRowsAdapter):
    name = "generic"
    folder = "generic"
    json_array_view = True

    def project(self, batch, options):
        return {column: batch[column] for column in self.features}

    def view_name(self, split):
        return "data.jsonl" if split == "train" else f"data-{split}.jsonl"

    def view_record(self, row, images, options):
        # The view uses the input manifest's field names, so it can be read back as an input.
        record = {
            "id": row["id"],
            "image_path": images[0].path,
            "ground_truth": row["ground_truth"],
            **manifest_extras(row),
        }
        if images[0].data_url:
            record["image_base64"] = images[0].data_url
        return record
