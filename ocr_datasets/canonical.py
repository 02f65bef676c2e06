"""The canonical dataset: one row per sample, every field kept, the image embedded as bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import pyarrow as pa
from datasets import Features, Image, Value

from .images import identify, suffix_for
from .names import file_stem
from .privacy import without_private_metadata
from .problems import IMAGE_CHANGED_AFTER_VALIDATION
from .samples import SampleError
from .validation import CheckedSample

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


def canonical_table(checked: Sequence[CheckedSample], keep_image_metadata: bool = False) -> pa.Table:
    """Read each sample's image and lay the samples out as one Arrow table.

    Each image must be the one validation checked (the same sha256): a file replaced or cut
    short in between would otherwise be exported unchecked. The image's ``path`` is only a safe
    file name derived from the id, never the source path, so no folder name of the source
    machine travels with the data. Unless ``keep_image_metadata``, EXIF orientation is applied
    and private metadata dropped (only where validation found any: clean images are passed on
    without being parsed again).
    """
    samples = [item.sample for item in checked]
    images = []
    for item in checked:
        data = item.sample.read_image_bytes()
        if hashlib.sha256(data).hexdigest() != item.image_sha256:
            raise SampleError(
                item.sample.id,
                "the image changed after validation (replaced or rewritten while the export ran)",
                "export again",
                location=item.sample.source,
                code=IMAGE_CHANGED_AFTER_VALIDATION,
            )
        suffix = suffix_for(item.image_format)
        if item.holds_private_metadata and not keep_image_metadata:
            data = without_private_metadata(data)
            suffix = identify(data, item.sample.id).suffix
        images.append({"bytes": data, "path": file_stem(item.sample.id) + suffix})
    columns = {
        "id": [sample.id for sample in samples],
        "image": images,
        "ground_truth": [sample.ground_truth for sample in samples],
        "ocr_text": [sample.ocr_text for sample in samples],
        "ocr_confidence": [sample.ocr_confidence for sample in samples],
        "metadata": [json.dumps(sample.metadata, ensure_ascii=False, sort_keys=True) for sample in samples],
    }
    return pa.Table.from_pydict(columns, schema=CANONICAL_FEATURES.arrow_schema)
