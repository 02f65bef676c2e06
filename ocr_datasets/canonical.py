"""The canonical dataset: one row per sample, every field kept, the image embedded as bytes."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
from datasets import Features, Image, Value

from .images import identify
from .names import file_stem
from .privacy import without_private_metadata
from .samples import TrainingSample

CANONICAL_FEATURES = Features(
    {
        "id": Value("string"),
        "image": Image(),
        "ground_truth": Value("string"),
        "ocr_text": Value("string"),
        "ocr_confidence": Value("float64"),
        # Free metadata is a JSON string: parquet cannot store an empty struct, and every
        # sample may carry different keys.
        "metadata": Value("string"),
    }
)


def canonical_table(samples: Sequence[TrainingSample], keep_image_metadata: bool = False) -> pa.Table:
    """Read each sample's image once and lay the samples out as one Arrow table.

    The image's ``path`` is only a safe file name derived from the id, never the source path,
    so no folder name of the source machine travels with the data. Unless
    ``keep_image_metadata``, EXIF orientation is applied and private metadata dropped.
    """
    images = []
    for sample in samples:
        data = sample.read_image_bytes()
        if not keep_image_metadata:
            data = without_private_metadata(data)
        info = identify(data, sample.id)
        images.append({"bytes": data, "path": file_stem(sample.id) + info.suffix})
    columns = {
        "id": [sample.id for sample in samples],
        "image": images,
        "ground_truth": [sample.ground_truth for sample in samples],
        "ocr_text": [sample.ocr_text for sample in samples],
        "ocr_confidence": [sample.ocr_confidence for sample in samples],
        "metadata": [json.dumps(sample.metadata, ensure_ascii=False, sort_keys=True) for sample in samples],
    }
    return pa.Table.from_pydict(columns, schema=CANONICAL_FEATURES.arrow_schema)
