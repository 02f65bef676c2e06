"""Did fine-tuning help? A model's transcriptions of one split of a batch, scored against the
batch's references with the card's definitions, beside the OCR baseline the batch recorded."""

from __future__ import annotations

import heapq
import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from .adapters import FormatAdapter, get_adapter
from .errors import InputError, InputNotFoundError, OptionError
from .problems import TEXT_LONE_SURROGATE
from .sources.manifest import JSON_LINE_DECODER, UnreadableValue, utf8_lines
from .statistics import ErrorRates
from .validation import LONE_SURROGATE, normalize_text, surrogate_problem
from .verify import read_batch_manifest

# How many of the worst lines an evaluation lists.
WORST_LINES = 20
# Splits compared by default, the first the batch has: the one held out for the final word first.
DEFAULT_SPLITS = ("test", "validation")
# Problems listed by name in one error; the rest are counted.
_LISTED = 10


def evaluate_predictions(
    batch: str | os.PathLike[str],
    predictions: str | os.PathLike[str],
    split: str | None = None,
    *,
    worst: int = WORST_LINES,
) -> dict[str, Any]:
    """Score ``predictions`` (a JSONL file of ``{"id": ..., "text": ...}``, what a model read
    on each line) against the references of ``split`` of ``batch`` (an export's batch folder,
    any format), and return the figures beside the batch's OCR baseline for that split.

    The definitions are the card's: texts NFC (the batch's ``normalize`` option) with spaces
    collapsed as validation does, the predictions normalised like the references; rates over the
    whole split, total edits / total reference length. ``cer`` counts code points (u + U+0364 is
    two characters), ``grapheme_cer`` extended grapheme clusters (one), ``wer`` whitespace
    separated words. ``split`` defaults to ``test``, else ``validation``.

    Every line of the split needs one prediction: a malformed line, an id given twice, an id the
    split does not hold and a line without a prediction raise one ``InputError`` naming each.

    Returns ``batch``, ``format``, ``batch_id``, ``split``, ``predictions`` (the file),
    ``model`` (the figures of ``statistics.ErrorRates`` for the predictions), ``ocr_baseline``
    (the same figures for the OCR text the batch was exported with, over the lines that had one,
    or None) and ``worst_lines``: up to ``worst`` lines with errors, highest CER first, each with
    ``id``, ``reference``, ``prediction``, ``cer``, ``grapheme_cer``, ``char_edits`` and
    ``reference_chars``.
    """
    batch_dir = Path(batch)
    manifest = read_batch_manifest(batch_dir, required=("format", "splits"))
    split = _chosen_split(batch_dir, manifest["splits"], split)
    adapter = get_adapter(manifest["format"])
    references = dict(_references(batch_dir, adapter, split))
    predicted = _read_predictions(Path(predictions), manifest.get("options", {}).get("normalize", "NFC"))
    _check_ids(Path(predictions), predicted, references, split, batch_dir)
    rates = ErrorRates()
    scored = (
        _scored_line(rates, line_id, reference, predicted[line_id][1]) for line_id, reference in references.items()
    )
    worst_lines = heapq.nlargest(worst, (line for line in scored if line["char_edits"]), key=_badness)
    return {
        "batch": str(batch_dir),
        "format": manifest["format"],
        "batch_id": manifest.get("batch_id"),
        "split": split,
        "predictions": str(predictions),
        "model": rates.figures(),
        "ocr_baseline": manifest.get("statistics", {}).get(split, {}).get("ocr_baseline"),
        "worst_lines": worst_lines,
    }


def write_predictions(path: str | os.PathLike[str], ids: Iterable[str], texts: Iterable[str]) -> Path:
    """Write what a model read on each line as the JSONL ``evaluate_predictions`` reads, one
    ``{"id": ..., "text": ...}`` a line in the order given; returns the path."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as file:
        for line_id, text in zip(ids, texts, strict=True):
            file.write(json.dumps({"id": line_id, "text": text}, ensure_ascii=False) + "\n")
    return path


def _chosen_split(batch: Path, splits: dict[str, int], split: str | None) -> str:
    held = ", ".join(f"{name} ({count} lines)" for name, count in splits.items())
    if split is None:
        for name in DEFAULT_SPLITS:
            if splits.get(name):
                return name
        raise OptionError(
            f"{batch} has neither a test nor a validation split (its splits: {held}): name the split the "
            "predictions are for with split (--split NAME)"
        )
    if split not in splits:
        raise OptionError(f"{batch} has no split {split!r} (its splits: {held}): choose one with split (--split NAME)")
    if not splits[split]:
        raise OptionError(f"split {split!r} of {batch} is empty (its splits: {held}): choose another (--split NAME)")
    return split


def _references(batch: Path, adapter: FormatAdapter, split: str) -> Iterator[tuple[str, str]]:
    """Each line of ``split`` as (id, ground truth), in the batch's order, read through the
    format's adapter without its images."""
    shards = sorted(batch.glob(f"data/{split}-*.parquet"))
    if not shards:
        raise InputError(f"{batch}: split {split!r} has no parquet files in data/; check it with ocr-datasets verify")
    for shard in shards:
        parquet = pq.ParquetFile(shard)
        columns = [name for name in parquet.schema_arrow.names if name != adapter.image_column]
        for rows in parquet.iter_batches(columns=columns):
            for row in rows.to_pylist():
                yield row["id"], adapter.transcription(row)


def _read_predictions(path: Path, form: str) -> dict[str, tuple[int, str]]:
    """Each id of the file with its line number and its text normalised as the batch's texts
    were; every malformed line and repeated id raise one error together."""
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such predictions file")
    predicted: dict[str, tuple[int, str]] = {}
    problems = []
    with path.open("rb") as file:
        for number, line in utf8_lines(file, str(path)):
            if not line.strip():
                continue
            record = _prediction(line)
            if isinstance(record, str):
                problems.append(f"line {number}: {record}")
            elif record[0] in predicted:
                problems.append(
                    f"line {number}: id {record[0]!r} was predicted on line {predicted[record[0]][0]} already: "
                    "keep one prediction per line"
                )
            else:
                predicted[record[0]] = (number, normalize_text(record[1], form))
    if problems:
        raise InputError(_listing(f"{path}: {len(problems)} line(s) are not predictions", problems))
    return predicted


_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", dict: "object"}
_EXPECTED = 'one JSON object a line, {"id": "<the line\'s id in the batch>", "text": "<what the model read>"}'


def _prediction(line: str) -> tuple[str, str] | str:
    """A line's (id, text), or what is wrong with it."""
    # Read as the input manifest's lines are: a repeated key or a number too long is refused.
    try:
        record = JSON_LINE_DECODER.decode(line)
    except json.JSONDecodeError as error:
        return f"not JSON ({error.msg}): write {_EXPECTED}"
    except UnreadableValue as error:
        return f"{error.problem}: {error.fix}"
    except RecursionError:
        return f"nested too deeply to read: write {_EXPECTED}"
    if not isinstance(record, dict):
        return f"a JSON {_JSON_TYPES.get(type(record), 'value')}, not an object: write {_EXPECTED}"
    line_id, text = record.get("id"), record.get("text")
    if not isinstance(line_id, str):
        what = "no id" if line_id is None else f"the id {line_id!r} is not a string"
        return f"{what}: give the line's id in the batch as a string"
    if not isinstance(text, str):
        what = "no text" if text is None else f"the text is a JSON {_JSON_TYPES.get(type(text), 'value')}"
        return f'{what} for id {line_id!r}: give what the model read as a string ("" if nothing)'
    if LONE_SURROGATE.search(text):
        problem = surrogate_problem(TEXT_LONE_SURROGATE, text, "the text")
        return f"{problem.text} (id {line_id!r}): {problem.fix}"
    return line_id, text


def _check_ids(
    path: Path, predicted: dict[str, tuple[int, str]], references: dict[str, str], split: str, batch: Path
) -> None:
    unknown = [line_id for line_id in predicted if line_id not in references]
    missing = [line_id for line_id in references if line_id not in predicted]
    if not unknown and not missing:
        return
    problems = []
    if unknown:
        elsewhere = _split_of_ids(batch, set(unknown), split)
        problems.append(
            _listing(
                f"{len(unknown)} id(s) are not lines of split {split!r} (predict that split's lines only, or name "
                "the split the predictions are for with split (--split NAME))",
                [
                    f"{line_id!r} (line {predicted[line_id][0]}"
                    + (f", a line of split {elsewhere[line_id]!r})" if line_id in elsewhere else ", not in the batch)")
                    for line_id in unknown
                ],
            )
        )
    if missing:
        problems.append(
            _listing(
                f"{len(missing)} of the {len(references)} lines of split {split!r} have no prediction "
                "(transcribe every line of the split)",
                [repr(line_id) for line_id in missing],
            )
        )
    raise InputError(f"{path} does not match split {split!r} of {batch}:\n" + "\n".join(problems))


def _split_of_ids(batch: Path, ids: set[str], skipped: str) -> dict[str, str]:
    """The other split each of ``ids`` is a line of, for those the batch holds."""
    found: dict[str, str] = {}
    for shard in sorted(batch.glob("data/*.parquet")):
        split = shard.name.rsplit("-", 3)[0]
        if split != skipped:
            found |= {line_id: split for line_id in pq.read_table(shard, columns=["id"])["id"].to_pylist()}
    return {line_id: found[line_id] for line_id in ids if line_id in found}


def _listing(heading: str, items: list[str]) -> str:
    more = len(items) - _LISTED
    return "\n".join(
        [heading + ":", *(f"  - {item}" for item in items[:_LISTED])] + ([f"  ... and {more} more"] * (more > 0))
    )


def _scored_line(rates: ErrorRates, line_id: str, reference: str, prediction: str) -> dict[str, Any]:
    """A line with its figures, its counts added to ``rates``."""
    figures = rates.add(reference, prediction).figures()
    return {
        "id": line_id,
        "reference": reference,
        "prediction": prediction,
        **{name: figures[name] for name in ("cer", "grapheme_cer", "char_edits", "reference_chars")},
    }


def _badness(line: dict[str, Any]) -> tuple[float, int]:
    # Edits against an empty reference have no rate: worse than any.
    return (math.inf if line["cer"] is None else line["cer"], line["char_edits"])
