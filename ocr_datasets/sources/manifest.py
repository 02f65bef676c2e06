"""JSONL and CSV manifests: one record per sample, the layout `ocr-datasets export --input` reads
by default (the fields: ``ocr_datasets.sources.read_manifest``)."""

from __future__ import annotations

import base64
import codecs
import csv
import difflib
import itertools
import json
import os
import sys
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import InputError, InputNotFoundError, OptionError
from ..problems import (
    ID_MISSING,
    ID_NOT_STRING,
    IMAGE_MISSING,
    IMAGE_NOT_DATA_URL,
    IMAGE_NOT_FOUND,
    MANIFEST_CELL_COUNT,
    MANIFEST_JSON_INVALID,
    MANIFEST_KEY_REPEATED,
    MANIFEST_NOT_OBJECT,
    MANIFEST_NUMBER_TOO_LONG,
    MANIFEST_UNKNOWN_FIELD,
    METADATA_TOO_DEEP,
)
from ..samples import SampleError, TrainingSample
from .base import Source
from .crop import CropOptions
from .sniff import json_start

# The paths that mean standard input: "-" as in most command-line tools, and /dev/stdin, which
# must not be opened as a file (a redirected one would have its image paths taken from /dev).
STDIN_NAMES = ("-", "/dev/stdin")
# image_base64 is what a generic batch's view adds with --include-base64 (the same image as its
# image_path), so that such a view reads back as an input too.
FIELDS = ("id", "image_path", "ground_truth", "ocr_text", "ocr_confidence", "metadata", "image_base64")
REQUIRED_FIELDS = ("id", "image_path", "ground_truth")
# Python refuses to turn longer digit strings into numbers (a guard against slow conversions).
_MAX_DIGITS = 4300


class ManifestSource(Source):
    """A manifest names every sample's image itself, so ``image_dir`` and ``crop`` do not apply.
    It is read from a file or standard input, never from a folder."""

    def read(self, path: Path, *, image_dir: Path | None, crop: CropOptions) -> Iterator[TrainingSample | SampleError]:
        return manifest_samples(path, self.kind)


class JsonlSource(ManifestSource):
    kind = "jsonl"
    unit = "JSONL manifest"
    suffixes = (".jsonl", ".json")

    def sniff(self, path: Path, *, in_folder: bool) -> bool:
        # A .json file is JSONL when its first line is a whole object (a Label Studio export is a list).
        return path.name.lower().endswith(".jsonl") or json_start(path) == "object line"


class CsvSource(ManifestSource):
    kind = "csv"
    unit = "CSV manifest"
    suffixes = (".csv",)

    def sniff(self, path: Path, *, in_folder: bool) -> bool:
        return True  # the suffix says so


def manifest_samples(
    path: str | os.PathLike[str], kind: str | None = None
) -> Generator[TrainingSample | SampleError, None, None]:
    """The samples of a JSONL or CSV manifest (``kind``, by default chosen by the file's suffix;
    ``"-"`` or ``/dev/stdin`` reads standard input, JSONL unless ``kind="csv"``), with a
    ``SampleError`` in place of each record that cannot be read."""
    if kind not in (None, JsonlSource.kind, CsvSource.kind):
        raise OptionError(f"kind must be 'jsonl' or 'csv', not {kind!r}")
    stdin = str(path) in STDIN_NAMES
    path = Path(path)
    if not stdin and (not path.exists() or path.is_dir()):
        raise InputNotFoundError(f"input manifest not found: {path}")
    kind = kind or (CsvSource.kind if path.suffix.lower() == ".csv" else JsonlSource.kind)
    name = "stdin" if stdin else path.name
    base = Path.cwd() if stdin or not path.is_file() else path.parent
    with _opened(path, stdin) as file:
        lines = utf8_lines(file, name)
        records = _csv_records(lines, name) if kind == CsvSource.kind else _jsonl_records(lines, name)
        for location, record in records:
            yield record if isinstance(record, SampleError) else _sample_from_record(record, location, base)


def _opened(path: Path, stdin: bool) -> BinaryIO:
    if stdin:
        # Not closed afterwards: standard input belongs to the process.
        return open(sys.stdin.buffer.fileno(), "rb", closefd=False)
    return path.open("rb")


def utf8_lines(file: BinaryIO, name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line. UTF-8 never puts a line break inside a character, so
    decoding line by line is exact, and a file in another encoding is named at its first
    non-UTF-8 line rather than failing somewhere inside a reader."""
    for number, line in enumerate(file, start=1):
        raw = line.removeprefix(codecs.BOM_UTF8) if number == 1 else line
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as error:
            column = len(raw[: error.start].decode("utf-8", "replace")) + 1
            raise InputError(
                f"{name}:{number} is not UTF-8 text (byte 0x{raw[error.start]:02X} at column {column}): "
                "save the file as UTF-8 (it was probably written as Windows-1252 or Latin-1; "
                "in Excel choose 'CSV UTF-8', in an editor the encoding UTF-8)"
            ) from None


def _jsonl_records(lines: Iterable[tuple[int, str]], name: str) -> Iterator[tuple[str, dict[str, Any] | SampleError]]:
    for number, line in lines:
        if not line.strip():
            continue
        location = f"{name}:{number}"
        fix = "write one JSON object per line"
        try:
            record = JSON_LINE_DECODER.decode(line)
        except json.JSONDecodeError as error:
            yield (
                location,
                SampleError(
                    None,
                    f"not valid JSON ({error.msg} at column {error.colno})",
                    fix,
                    code=MANIFEST_JSON_INVALID,
                    location=location,
                ),
            )
            continue
        except UnreadableValue as error:
            yield location, SampleError(None, error.problem, error.fix, code=error.code, location=location)
            continue
        except RecursionError:
            yield (
                location,
                SampleError(
                    None,
                    "the record is nested too deeply to read",
                    "flatten its metadata",
                    code=METADATA_TOO_DEEP,
                    location=location,
                ),
            )
            continue
        if not isinstance(record, dict):
            yield (
                location,
                SampleError(
                    None, "a JSONL line must be a JSON object", fix, code=MANIFEST_NOT_OBJECT, location=location
                ),
            )
            continue
        yield location, record


class UnreadableValue(ValueError):
    """A JSON value this project refuses to read (a repeated key, a number too long), with its fix."""

    def __init__(self, problem: str, fix: str, *, code: str):
        super().__init__(problem)
        self.problem, self.fix, self.code = problem, fix, code


def _object_with_unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        keys = [key for key, _ in pairs]
        twice = next(key for key in keys if keys.count(key) > 1)
        raise UnreadableValue(
            f"the key {twice!r} twice in one object: only one of its values could be kept",
            f"keep one {twice!r} in the record",
            code=MANIFEST_KEY_REPEATED,
        )
    return record


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_DIGITS:
        raise UnreadableValue(
            f"a number of {len(digits):,} digits",
            "write such a value as a string, or correct it",
            code=MANIFEST_NUMBER_TOO_LONG,
        )
    return int(digits)


# One decoder for every JSON line this project reads (manifests, predictions): json.loads with
# options builds a new one each call.
JSON_LINE_DECODER = json.JSONDecoder(object_pairs_hook=_object_with_unique_keys, parse_int=_bounded_int)


def _csv_records(lines: Iterable[tuple[int, str]], name: str) -> Iterator[tuple[str, dict[str, Any] | SampleError]]:
    # Every physical line goes to the reader (blank ones too), so its line_num is the file's
    # line number where a row ends.
    texts = (text for _, text in lines)
    first = next(texts, None)
    if first is None:
        return
    delimiter = _delimiter(first)
    reader = csv.reader(itertools.chain([first], texts), delimiter=delimiter)
    header = next(reader)
    _check_header(header, name)
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        location = f"{name}:{reader.line_num}"
        if len(row) != len(header):
            yield (
                location,
                SampleError(
                    row[0] or None,
                    f"the row has {len(row)} cells but the header {len(header)} columns ({', '.join(header)})",
                    'quote a cell that holds a comma ("Hallo, Welt"), and give every column a cell, empty if need be',
                    code=MANIFEST_CELL_COUNT,
                    location=location,
                ),
            )
            continue
        record: dict[str, Any] = {column: cell for column, cell in zip(header, row, strict=True) if cell != ""}
        if "metadata" in record:
            try:
                record["metadata"] = JSON_LINE_DECODER.decode(record["metadata"])
            except (ValueError, RecursionError):
                yield (
                    location,
                    SampleError(
                        record.get("id"),
                        "the metadata cell is not valid JSON",
                        'write a JSON object such as {"page": 3}',
                        code=MANIFEST_JSON_INVALID,
                        location=location,
                    ),
                )
                continue
        if "ocr_confidence" in record:
            record["ocr_confidence"] = _number_or_text(record["ocr_confidence"], decimal_comma=delimiter == ";")
        yield location, record


def _delimiter(header_line: str) -> str:
    """``;`` for the CSV that Excel writes where the decimal mark is a comma (German, French, ...),
    told by its header (which holds no quoted cells), else ``,``."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def _check_header(header: list[str], name: str) -> None:
    """One error for a header that would make every row fail the same way."""
    twice = sorted({column for column in header if header.count(column) > 1})
    if twice:
        raise InputError(
            f"{name}:1 names the column {twice[0]!r} twice: give each column once (only one of its cells could be kept)"
        )
    unknown = [column for column in header if column not in FIELDS]
    missing = [field for field in REQUIRED_FIELDS if field not in header]
    if unknown or missing:
        problems = [f"unknown column {column!r}{_did_you_mean(column)}" for column in unknown]
        problems += [
            f"no column {field!r}" for field in missing if not any(_closest(column) == field for column in unknown)
        ]
        raise InputError(
            f"{name}:1: {'; '.join(problems)}. The header has {', '.join(header)}; the columns are {', '.join(FIELDS)} "
            f"({', '.join(REQUIRED_FIELDS)} required): "
            "rename the columns, and put other values into the metadata column as JSON"
        )


def _closest(key: str) -> str | None:
    matches = difflib.get_close_matches(key.lower(), FIELDS, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _did_you_mean(key: str) -> str:
    closest = _closest(key)
    return f" (did you mean {closest!r}?)" if closest else ""


def _number_or_text(cell: str, decimal_comma: bool) -> float | str:
    try:
        return float(cell.replace(",", ".") if decimal_comma else cell)
    except ValueError:
        return cell


def _sample_from_record(record: dict[str, Any], location: str, base: Path) -> TrainingSample | SampleError:
    unknown = [key for key in record if key not in FIELDS]
    if unknown:
        key = unknown[0]
        closest = _closest(key)
        fix = f"rename it to {closest!r}" if closest else f"use only the fields {', '.join(FIELDS)}"
        return SampleError(
            None,
            f"unknown field {key!r}: it would be lost",
            f"{fix}, or move it into metadata",
            code=MANIFEST_UNKNOWN_FIELD,
            location=location,
        )
    record_id = record.get("id")
    if record_id in (None, ""):
        return SampleError(None, "the record has no id", "give every record an id", code=ID_MISSING, location=location)
    if isinstance(record_id, bool) or not isinstance(record_id, (str, int)):
        return SampleError(
            None,
            f"the id is {json.dumps(record_id)[:40]}, not a string",
            'write the id as a JSON string ("id": "...")',
            code=ID_NOT_STRING,
            location=location,
        )
    image_path = record.get("image_path")
    if isinstance(image_path, str) and image_path:
        # An absolute path replaces base (pathlib's join), so no second Path is parsed to ask.
        written, image_path = image_path, base / image_path
        if not image_path.exists():
            return _image_not_found(str(record_id), written, base, location)
    image_bytes = None
    if not image_path and record.get("image_base64") is not None:
        image_bytes = _data_url_bytes(record["image_base64"])
        if image_bytes is None:
            return SampleError(
                str(record_id),
                "image_base64 is not a base64 data: URL",
                "give image_path, or a data:image/...;base64,... URL",
                code=IMAGE_NOT_DATA_URL,
                location=location,
            )
    elif not image_path:
        return SampleError(
            str(record_id),
            "the record has no image_path",
            "give the path of its image file, relative to the manifest's folder",
            code=IMAGE_MISSING,
            location=location,
        )
    # Whatever the record holds, validation judges it (a missing one is None).
    ground_truth: Any = record.get("ground_truth")
    return TrainingSample(
        id=str(record_id),
        image_path=image_path or None,
        ground_truth=ground_truth,
        ocr_text=record.get("ocr_text"),
        ocr_confidence=record.get("ocr_confidence"),
        metadata={} if record.get("metadata") is None else record["metadata"],
        image_bytes=image_bytes,
        source=location,
    )


def _image_not_found(sample_id: str, written: str, base: Path, location: str) -> SampleError:
    # The message may travel in rejected.jsonl: it names the path as the manifest wrote it (and
    # of an absolute path only the file name), never the folders above it.
    if Path(written).is_absolute():
        return SampleError(
            sample_id,
            f"image file not found: {Path(written).name} (an absolute path)",
            "fix image_path or restore the file",
            code=IMAGE_NOT_FOUND,
            location=location,
        )
    fix = f"write image_path relative to the folder that holds the manifest ({base.name or '.'}), or restore the file"
    if Path(written).exists():
        fix = (
            f"{written} exists relative to the current folder, "
            f"but image paths are relative to the manifest's folder: {fix}"
        )
    return SampleError(
        sample_id,
        f"image file not found: {written}, resolved from the manifest's folder ({base.name or '.'})",
        fix,
        code=IMAGE_NOT_FOUND,
        location=location,
    )


def _data_url_bytes(url) -> bytes | None:
    header, comma, payload = url.partition(",") if isinstance(url, str) else ("", "", "")
    if not (comma and header.startswith("data:") and header.endswith(";base64")):
        return None
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        return None
