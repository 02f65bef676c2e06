"""Sources: read labeled data where it lives and yield TrainingSamples."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .samples import SampleError, TrainingSample

REQUIRED_FIELDS = ("id", "image_path", "ground_truth")


def read_manifest(path: str | Path) -> Iterator[TrainingSample]:
    """Yield the samples of a JSONL or CSV manifest (chosen by the file's suffix).

    Each record has ``id``, ``image_path`` (relative to the manifest's folder, or absolute),
    ``ground_truth`` and optionally ``ocr_text``, ``ocr_confidence`` and ``metadata`` (a JSON
    object; in CSV, a JSON object in one cell). Blank lines are skipped; a malformed record
    raises ``SampleError`` naming its line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input manifest not found: {path}")
    records = _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)
    for location, record in records:
        yield _sample_from_record(record, location, path.parent)


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            location = f"{path.name}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise SampleError(None, f"not valid JSON ({error.msg})", "write one JSON object per line", location=location) from None
            if not isinstance(record, dict):
                raise SampleError(None, "a JSONL line must be a JSON object", "write one JSON object per line", location=location)
            yield location, record


def _read_csv(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as rows:
        reader = csv.DictReader(rows)
        for record in reader:
            if not any((value or "").strip() for value in record.values() if isinstance(value, str)):
                continue
            location = f"{path.name}:{reader.line_num}"
            metadata = record.get("metadata")
            if metadata:
                try:
                    record["metadata"] = json.loads(metadata)
                except json.JSONDecodeError:
                    raise SampleError(
                        record.get("id") or None, "the metadata cell is not valid JSON", 'write a JSON object such as {"page": 3}', location=location
                    ) from None
            yield location, {key: value for key, value in record.items() if value not in ("", None)}


def _sample_from_record(record: dict[str, Any], location: str, base: Path) -> TrainingSample:
    missing = [name for name in REQUIRED_FIELDS if record.get(name) in (None, "")]
    if missing:
        sample_id = None if record.get("id") in (None, "") else str(record["id"])
        raise SampleError(sample_id, f"missing field(s) {', '.join(missing)}", "add them to the record", location=location)
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise SampleError(str(record["id"]), "metadata is not a JSON object", 'write metadata as {"key": "value"}', location=location)
    image_path = Path(record["image_path"])
    return TrainingSample(
        id=str(record["id"]),
        image_path=image_path if image_path.is_absolute() else base / image_path,
        ground_truth=str(record["ground_truth"]),
        ocr_text=None if record.get("ocr_text") is None else str(record["ocr_text"]),
        ocr_confidence=_confidence(record.get("ocr_confidence"), str(record["id"]), location),
        metadata=metadata,
    )


def _confidence(value: Any, sample_id: str, location: str) -> float | None:
    if value is None:
        return None
    try:
        confidence = float(value)
    except (TypeError, ValueError):
        raise SampleError(sample_id, f"ocr_confidence {value!r} is not a number", "give a number between 0 and 1", location=location) from None
    if math.isnan(confidence) or not 0.0 <= confidence <= 1.0:
        raise SampleError(sample_id, f"ocr_confidence {value!r} is outside [0, 1]", "give a number between 0 and 1", location=location)
    return confidence
