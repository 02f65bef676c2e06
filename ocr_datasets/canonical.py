"""The canonical dataset: one row per sample, every field kept, the image embedded as bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence

import pyarrow as pa

from .features import Features, Image, Value
from .images import suffix_for
from .names import file_stem
from .privacy import bytes_to_export
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
CANONICAL_SCHEMA = CANONICAL_FEATURES.arrow_schema


def canonical_batch(items: Sequence[tuple[CheckedSample, bytes]]) -> pa.RecordBatch:
    """Checked samples, each with the bytes of its image an export writes, as canonical rows.

    The image's ``path`` is only a safe file name derived from the id, never the source path,
    so no folder name of the source machine travels with the data.
    """
    samples = [item.sample for item, _ in items]
    columns = {
        "id": [sample.id for sample in samples],
        "image": [
            {"bytes": data, "path": file_stem(item.sample.id) + suffix_for(item.image.exported_format)}
            for item, data in items
        ],
        "ground_truth": [sample.ground_truth for sample in samples],
        "ocr_text": [sample.ocr_text for sample in samples],
        "ocr_confidence": [sample.ocr_confidence for sample in samples],
        "metadata": [json.dumps(sample.metadata, ensure_ascii=False, sort_keys=True) for sample in samples],
    }
    return pa.RecordBatch.from_pydict(columns, schema=CANONICAL_SCHEMA)


def exported_image_bytes(item: CheckedSample, keep_image_metadata: bool) -> bytes:
    """The image of a checked sample read again, as an export writes it (cleaned of private
    metadata unless ``keep_image_metadata``, only where validation found any).

    It must be the image validation checked (the same sha256): a file replaced or cut short in
    between would otherwise be exported unchecked.
    """
    data = item.sample.read_image_bytes()
    if hashlib.sha256(data).hexdigest() != item.image_sha256:
        raise SampleError(
            item.sample.id,
            "the image changed after validation (replaced or rewritten while the export ran)",
            "export again",
            location=item.sample.source,
            code=IMAGE_CHANGED_AFTER_VALIDATION,
        )
    return bytes_to_export(data, item.image.holds_private_metadata, keep_image_metadata)


def canonical_table(checked: Sequence[CheckedSample], keep_image_metadata: bool = False) -> pa.Table:
    """Each sample's image read again (``exported_image_bytes``) and the samples laid out as one
    Arrow table: what ``build_dataset``'s builder writes."""
    items = [(item, exported_image_bytes(item, keep_image_metadata)) for item in checked]
    return pa.Table.from_batches([canonical_batch(items)], schema=CANONICAL_SCHEMA)


class RowsFingerprint:
    """A digest of everything that determines the canonical rows of a batch's splits: per split
    its name, and per sample the validated texts and fields and the sha256 of the image bytes
    written. It does not depend on how rows are sharded, and it is taken from what validation
    knows, without reading any image again."""

    def __init__(self):
        self._digest = hashlib.sha256()

    def add_split(self, name: str) -> None:
        self._digest.update(json.dumps(name).encode())

    def add(self, item: CheckedSample) -> None:
        sample = item.sample
        fields = [
            sample.id,
            sample.ground_truth,
            sample.ocr_text,
            sample.ocr_confidence,
            sample.metadata,
            item.image.exported_sha256,
            item.image.exported_format,
        ]
        self._digest.update(json.dumps(fields, ensure_ascii=False, sort_keys=True).encode("utf-8", "surrogatepass"))

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def rows_fingerprint(splits: Mapping[str, Iterable[CheckedSample]]) -> str:
    """``RowsFingerprint`` of ``splits``."""
    fingerprint = RowsFingerprint()
    for name, checked in splits.items():
        fingerprint.add_split(name)
        for item in checked:
            fingerprint.add(item)
    return fingerprint.hexdigest()
