"""The batch's dataset card: YAML ``configs`` that make ``load_dataset(folder)`` work offline, and
the batch's figures."""

from __future__ import annotations

import unicodedata

from .adapters import FormatAdapter
from .options import ExportOptions


def dataset_card(
    *,
    adapter: FormatAdapter,
    batch_id: str,
    config_name: str,
    data_files: dict[str, list[str]],
    created_at: str,
    counts: dict[str, int],
    statistics: dict[str, dict],
    options: ExportOptions,
) -> str:
    """The README.md of a batch (``options``: those it was exported with).

    ``datasets`` caches a local folder by folder name and config name, so the config name carries
    the format, batch id and content fingerprint: another batch, or this batch re-exported with
    other rows, never reads a stale cache entry. Splits without samples have no data files.
    """
    config_lines = [f"- config_name: {config_name}", "  default: true", "  data_files:"]
    for split, paths in data_files.items():
        config_lines += [f"  - split: {split}", "    path:"] + [f"    - {path}" for path in paths]
    columns = ", ".join(f"`{name}`" for name in adapter.features)
    sections = "\n".join(_split_section(split, figures) for split, figures in statistics.items())
    return f"""---
configs:
{chr(10).join(config_lines)}
---

# OCR training batch `{batch_id}` ({adapter.name})

Exported by ocr-datasets on {created_at}. Columns: {columns}. Images are embedded in the parquet files.

{_counts_line(counts)}

| split | samples | characters | OCR CER | OCR WER |
|---|---|---|---|---|
{chr(10).join(_split_row(split, figures) for split, figures in statistics.items())}

The OCR columns compare the OCR engine's text with the ground truth where a sample has both:
the baseline a fine-tuned model has to beat.

Load it offline, keeping the `datasets` cache where you choose:

```python
from datasets import load_dataset
dataset = load_dataset("path/to/this/folder", cache_dir="path/to/a/cache")
```

`manifest.json` holds the same figures, every file with its sha256, the counts and the options used.
{sections}"""


def _counts_line(counts: dict[str, int]) -> str:
    rejected = f"rejected: {counts['rejected']}" + (" (listed in `rejected.jsonl`)" if counts["rejected"] else "")
    duplicates = f"duplicates left out: {counts['duplicates']}" + (
        " (listed in `duplicates.jsonl`)" if counts["duplicates"] else ""
    )
    return f"Input samples: {counts['input']}; exported: {counts['exported']}; {rejected}; {duplicates}."


def _split_row(split: str, figures: dict) -> str:
    baseline = figures.get("ocr_baseline")
    cer, wer = (f"{baseline['cer']:.2%}", f"{baseline['wer']:.2%}") if baseline else ("–", "–")
    return f"| {split} | {figures['samples']} | {figures.get('characters', 0)} | {cer} | {wer} |"


def _split_section(split: str, figures: dict) -> str:
    if not figures["samples"]:
        return f"\n## Split `{split}`\n\nNo samples.\n"
    rows = "\n".join(
        f"| {name} | {figure['min']:g} | {figure['median']:g} | {figure['mean']:g} | {figure['max']:g} |"
        for name, figure in (
            ("text length (characters)", figures["text_length"]),
            ("image width (px)", figures["image_width"]),
            ("image height (px)", figures["image_height"]),
        )
    )
    alphabet = "\n".join(
        f"| {_shown(char)} | U+{ord(char):04X} | {unicodedata.name(char, '?')} | {count} |"
        for char, count in figures["alphabet"].items()
    )
    baseline = figures["ocr_baseline"]
    ocr = (
        f"OCR baseline over {baseline['lines']} lines: CER {baseline['cer']:.2%} ({baseline['char_edits']} edits in "
        f"{baseline['reference_chars']} characters), "
        f"WER {baseline['wer']:.2%} ({baseline['word_edits']} of {baseline['reference_words']} words)."
        if baseline
        else "No OCR text in this split."
    )
    return f"""
## Split `{split}`

{_plural(figures["samples"], "sample")}, {_plural(figures["characters"], "character")}. {ocr}

| measure | min | median | mean | max |
|---|---|---|---|---|
{rows}

Alphabet ({len(figures["alphabet"])} distinct characters, most frequent first):

| character | code point | name | count |
|---|---|---|---|
{alphabet}
"""


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _shown(char: str) -> str:
    """A character as a table cell: combining marks on a dotted circle, blanks and pipes named."""
    if char == " ":
        return "(space)"
    if char == "|":
        return "\\|"
    if unicodedata.combining(char):
        return f"◌{char}"
    if unicodedata.category(char)[0] in "CZ":
        return "(blank)"
    return f"`{char}`" if char in "`*_<>[]#\\" else char
