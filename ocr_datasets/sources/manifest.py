"""JSONL and CSV manifests: one record per sample, the layout `ocr-datasets export --input` reads by default."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..samples import SampleError, TrainingSample


def read_manifest(path: str | Path, errors: str = "raise") -> Iterator[TrainingSample | SampleError]:
    """Yield the samples of a JSONL or CSV manifest (chosen by the file's suffix).

    Each record has ``id``, ``image_path`` (relative to the manifest's folder, or absolute),
    ``ground_truth`` and optionally ``ocr_text``, ``ocr_confidence`` and ``metadata`` (a JSON
    object; in CSV, a JSON object in one cell). Blank lines are skipped. Values are passed on as
    they are: validation judges them. A record that cannot be read at all (broken JSON, no id)
    raises ``SampleError`` naming its line, or with ``errors="report"`` is yielded as that
    ``SampleError`` in its place, so that one bad line does not hide the others.
    """
    if errors not in ("raise", "report"):
        raise ValueError(f"errors must be 'raise' or 'report', not {errors!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input manifest not found: {path}")
    records = _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)
    for location, record in records:
        item = record if isinstance(record, SampleError) else _sample_from_record(record, location, path.parent)
        if isinstance(item, SampleError) and errors == "raise":
            raise item
        yield item


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any] | SampleError]]:
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            location = f"{path.name}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield location, SampleError(None, f"not valid JSON ({error.msg})", "write one JSON object per line", location=location)
                continue
            if not isinstance(record, dict):
                yield location, SampleError(None, "a JSONL line must be a JSON object", "write one JSON object per line", location=location)
                continue
            yield location, record


def _read_csv(path: Path) -> Iterator[tuple[str, dict[str, Any] | SampleError]]:
    with path.open(encoding="utf-8-sig", newline="") as rows:
        reader = csv.DictReader(rows)
        for record in reader:
            if not any((value or "").strip() for value in record.values() if isinstance(value, str)):
                continue
            location = f"{path.name}:{reader.line_num}"
            record = {key: value for key, value in record.items() if value not in ("", None)}
            if "metadata" in record:
                try:
                    record["metadata"] = json.loads(record["metadata"])
                except json.JSONDecodeError:
                    yield location, SampleError(
                        record.get("id"), "the metadata cell is not valid JSON", 'write a JSON object such as {"page": 3}', location=location
                    )
                    continue
            if "ocr_confidence" in record:
                record["ocr_confidence"] = _number_or_text(record["ocr_confidence"])
            yield location, record


def _number_or_text(cell: str) -> float | str:
    try:
        return float(cell)
    except ValueError:
        return cell


def _sample_from_record(record: dict[str, Any], location: str, base: Path) -> TrainingSample | SampleError:
    if record.get("id") in (None, ""):
        return SampleError(None, "the record has no id", "give every record an id", location=location)
    image_path = record.get("image_path")
    if isinstance(image_path, str) and image_path:
        image_path = Path(image_path) if Path(image_path).is_absolute() else base / image_path
    return TrainingSample(
        id=str(record["id"]),
        image_path=image_path or None,
        ground_truth=record.get("ground_truth"),
        ocr_text=record.get("ocr_text"),
        ocr_confidence=record.get("ocr_confidence"),
        metadata={} if record.get("metadata") is None else record["metadata"],
        source=location,
    )


def read(path: Path, *, image_dir=None, crop=None, errors: str = "raise") -> Iterator[TrainingSample | SampleError]:
    """The source protocol of ``read_samples``; a manifest's images are named in its records."""
    return read_manifest(path, errors=errors)
