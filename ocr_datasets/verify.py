"""Checking a finished batch against its manifest, and reading its figures back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from .adapters import FORMAT_NAMES, get_adapter
from .errors import InputError, InputNotFoundError
from .manifest import MANIFEST_NAME
from .options import NORMALIZATION_FORMS
from .sources.gt_folder import LINE_TEXT_SUFFIX
from .writer import DUPLICATES_NAME, REJECTED_NAME

_FIX = "ocr-datasets verify names what else differs; export the batch again"


def read_batch_manifest(batch: str | Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The manifest of ``batch``, which must hold the keys ``required``, each key as an export
    writes it."""
    manifest = _manifest_object(batch)
    problem = _key_problem(manifest, required)
    if problem:
        raise InputError(f"{Path(batch) / MANIFEST_NAME}: {problem}: {_FIX}")
    return manifest


def _manifest_object(batch: str | Path) -> dict[str, Any]:
    path = Path(batch) / MANIFEST_NAME
    if not path.is_file():
        raise InputNotFoundError(f"{batch} is not a batch folder: it has no {MANIFEST_NAME}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path} is not JSON ({error}): {_FIX}") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{path} is not a JSON object: {_FIX}")
    return manifest


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# What each key the tools read holds in a manifest an export wrote, checked before it is read,
# so that a manifest edited by hand is named instead of failing with a traceback.
_KEY_SHAPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "format": (f"one of the formats {', '.join(FORMAT_NAMES)}", lambda value: value in FORMAT_NAMES),
    "sample_count": ("a count", _is_count),
    "counts": (
        "an object of the counts input, exported, rejected and duplicates",
        lambda value: (
            isinstance(value, dict)
            and all(_is_count(value.get(name)) for name in ("input", "exported", "rejected", "duplicates"))
        ),
    ),
    "splits": (
        "an object of split names and their counts",
        lambda value: isinstance(value, dict) and all(_is_count(count) for count in value.values()),
    ),
    "checksums": (
        "an object of file names, each with its sha256 and bytes",
        lambda value: (
            isinstance(value, dict)
            and all(
                isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and _is_count(entry.get("bytes"))
                for entry in value.values()
            )
        ),
    ),
    "config_name": ("a configuration name", lambda value: isinstance(value, str)),
    "options": (
        f"an object of the export's options (normalize {', '.join(NORMALIZATION_FORMS[:-1])} or "
        f"{NORMALIZATION_FORMS[-1]})",
        lambda value: isinstance(value, dict) and value.get("normalize", "NFC") in NORMALIZATION_FORMS,
    ),
    "statistics": (
        "an object of split names, each an object of figures",
        lambda value: isinstance(value, dict) and all(isinstance(figures, dict) for figures in value.values()),
    ),
}


def _key_problem(manifest: dict[str, Any], required: tuple[str, ...]) -> str | None:
    """Which of the keys ``required`` the manifest lacks, else which key holds what no export
    writes; None if neither."""
    missing = [key for key in required if key not in manifest]
    if missing:
        return f"the key(s) {', '.join(missing)} are missing"
    misshapen = [
        f"{key} is not {description}"
        for key, (description, holds_what_an_export_writes) in _KEY_SHAPES.items()
        if key in manifest and not holds_what_an_export_writes(manifest[key])
    ]
    return "; ".join(misshapen) or None


def verify_batch(batch: str | Path) -> list[str]:
    """Every way the batch differs from its manifest; an empty list means it is whole.

    Recomputes the sha256 and size of every file, looks for files missing from or added to the
    listing, reads every parquet file in full and counts its rows per split, counts the lines of
    the JSONL views and reports, and checks that the counts add up and the card points at the data.
    """
    batch = Path(batch)
    manifest = _manifest_object(batch)
    problem = _key_problem(manifest, ("format", "sample_count", "counts", "splits", "checksums", "config_name"))
    if problem:
        return [f"{MANIFEST_NAME}: {problem}"]
    return (
        _checksum_problems(batch, manifest["checksums"])
        + _count_problems(batch, manifest)
        + _card_problems(batch, manifest)
    )


def inspect_batch(batch: str | Path) -> dict[str, Any]:
    """The batch's figures, as its card shows them: counts, splits, and per split the alphabet,
    text lengths, image sizes and OCR baseline."""
    manifest = read_batch_manifest(batch, required=("format", "counts", "splits"))
    return {key: manifest.get(key) for key in ("format", "batch_id", "created_at", "counts", "splits")} | {
        "statistics": manifest.get("statistics", {})
    }


def _checksum_problems(batch: Path, checksums: dict[str, dict]) -> list[str]:
    problems = []
    present = {path.relative_to(batch).as_posix() for path in batch.rglob("*") if path.is_file()} - {MANIFEST_NAME}
    for name in sorted(set(checksums) - present):
        problems.append(f"{name}: listed in the manifest but missing")
    for name in sorted(present - set(checksums)):
        problems.append(f"{name}: present but not listed in the manifest")
    for name in sorted(set(checksums) & present):
        path = batch / name
        with path.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        if digest != checksums[name]["sha256"] or path.stat().st_size != checksums[name]["bytes"]:
            problems.append(f"{name}: content differs from the manifest (sha256 or size)")
    return problems


def _count_problems(batch: Path, manifest: dict[str, Any]) -> list[str]:
    problems = []
    counts, splits = manifest["counts"], manifest["splits"]
    if counts["input"] != counts["exported"] + counts["rejected"] + counts["duplicates"]:
        problems.append(f"counts do not add up: input {counts['input']} != exported + rejected + duplicates {counts}")
    if sum(splits.values()) != counts["exported"] or manifest["sample_count"] != counts["exported"]:
        problems.append(f"split sizes {splits} do not add up to the {counts['exported']} exported samples")
    for split, expected in splits.items():
        shards = sorted(batch.glob(f"data/{split}-*.parquet"))
        rows = 0
        for shard in shards:
            try:
                rows += _readable_rows(shard)
            except Exception as error:  # any failure to read is the finding
                problems.append(f"{shard.relative_to(batch)}: parquet cannot be read ({error})")
        if rows != expected:
            problems.append(f"split {split!r}: {rows} rows in data/, manifest says {expected}")
    adapter = get_adapter(manifest["format"])
    for split, expected in splits.items():
        view = batch / adapter.view_name(split)
        array_view = view.with_suffix(".json") if adapter.json_array_view else None
        text_chat_view = batch / adapter.text_chat_view_name(split) if adapter.is_chat else None
        for path in (view, array_view, text_chat_view):
            # The JSON array view holds one element per line between its brackets.
            if path is not None and path.exists() and _line_count(path) != expected:
                problems.append(f"{path.name}: {_line_count(path)} records, manifest says {expected}")
        lines = batch / split
        if adapter.line_folder and lines.is_dir():
            found = sum(1 for _ in lines.glob(f"*{LINE_TEXT_SUFFIX}"))
            if found != expected:
                problems.append(f"{split}/: {found} {LINE_TEXT_SUFFIX} lines, manifest says {expected}")
    for name, expected in ((REJECTED_NAME, counts["rejected"]), (DUPLICATES_NAME, counts["duplicates"])):
        found = _listed_samples(batch / name)
        if found != expected:
            problems.append(f"{name}: {found} samples listed, manifest counts {expected}")
    return problems


def _listed_samples(path: Path) -> int:
    """How many input samples a rejected.jsonl or duplicates.jsonl lists: one a line, unless a
    record says it stands for more (a rejected page file, its lines)."""
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as lines:
        return sum(json.loads(line).get("samples", 1) for line in lines if line.strip())


def _card_problems(batch: Path, manifest: dict[str, Any]) -> list[str]:
    card = (batch / "README.md").read_text(encoding="utf-8") if (batch / "README.md").exists() else ""
    parts = card.split("---\n", 2)
    if not card.startswith("---\n") or len(parts) < 3:
        return ["README.md: no YAML front matter, so load_dataset cannot find the data"]
    try:
        front_matter = yaml.safe_load(parts[1])
    except yaml.YAMLError as error:
        return [f"README.md: the front matter is not valid YAML ({error.__class__.__name__})"]
    configs = front_matter.get("configs") if isinstance(front_matter, dict) else None
    defaults = [config for config in configs or [] if isinstance(config, dict) and config.get("default")]
    if len(defaults) != 1 or defaults[0].get("config_name") != manifest["config_name"]:
        return [f"README.md: expected one default config named {manifest['config_name']!r}"]
    listed = {}
    for entry in defaults[0].get("data_files") or []:
        paths = [entry.get("path")] if isinstance(entry.get("path"), str) else entry.get("path") or []
        listed[entry.get("split")] = paths
    problems = [
        f"README.md: split {split!r} has {count} samples but no data files in the card"
        for split, count in manifest["splits"].items()
        if count and split not in listed
    ]
    for split, patterns in listed.items():
        for pattern in patterns:
            if not list(batch.glob(pattern)):
                problems.append(f"README.md: data file {pattern} of split {split!r} does not exist")
    return problems


def _readable_rows(shard: Path) -> int:
    """Rows of a parquet file, read one row group at a time so memory stays at a row group's size."""
    parquet = pq.ParquetFile(shard, pre_buffer=False)
    return sum(parquet.read_row_group(index).num_rows for index in range(parquet.num_row_groups))


def _line_count(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for line in file if line.strip() not in (b"", b"[", b"]", b"[]"))
