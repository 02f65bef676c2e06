"""The batch's dataset card: YAML metadata that make ``load_dataset(folder)`` work offline and
that the Hub and its dataset viewer read, and the batch's figures."""

from __future__ import annotations

import unicodedata
from typing import Any

from huggingface_hub.repocard_data import DatasetCardData

from .adapters import FormatAdapter
from .options import ExportOptions

# The Hub's size_categories, smallest first (the vocabulary huggingface_hub's DatasetCardData
# documents): the first for fewer than 1,000 samples, each next one for ten times as many.
SIZE_CATEGORIES = (
    "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M",
    "100M<n<1B", "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T",
)  # fmt: skip


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

    The metadata is written by huggingface_hub's ``DatasetCardData``, framed as its
    ``DatasetCard`` frames it (the tests read the card back with ``DatasetCard.load``); not
    through ``DatasetCard`` itself, whose module imports the Hub client (0.14 s more for every
    export, against 0.04 s for ``repocard_data``).
    """
    metadata = card_metadata(
        adapter=adapter,
        batch_id=batch_id,
        config_name=config_name,
        data_files=data_files,
        sample_count=counts["exported"],
        options=options,
    )
    front_matter = DatasetCardData(**metadata).to_yaml()
    columns = ", ".join(f"`{name}`" for name in adapter.features)
    sections = "\n".join(_split_section(split, figures) for split, figures in statistics.items())
    return f"""---
{front_matter}
---

# OCR training batch `{batch_id}` ({adapter.name})

Exported by ocr-datasets on {created_at}. Columns: {columns}. Images are embedded in the parquet files.
{_license_note(options.license)}
{_counts_line(counts)}

| split | samples | characters | OCR CER | OCR grapheme CER | OCR WER |
|---|---|---|---|---|---|
{chr(10).join(_split_row(split, figures) for split, figures in statistics.items())}

The OCR columns compare the OCR engine's text with the ground truth where a sample has both:
the baseline a fine-tuned model has to beat. CER counts code points of the normalised text, so
u with a combining e above (u + U+0364) is two characters; grapheme CER counts what a reader
sees as one character (Unicode grapheme clusters), so that u is one.

Load it offline, keeping the `datasets` cache where you choose:

```python
from datasets import load_dataset
dataset = load_dataset("path/to/this/folder", cache_dir="path/to/a/cache")
```

`manifest.json` holds the same figures, every file with its sha256, the counts and the options used.
{sections}"""


def card_metadata(
    *,
    adapter: FormatAdapter,
    batch_id: str,
    config_name: str,
    data_files: dict[str, list[str]],
    sample_count: int,
    options: ExportOptions,
) -> dict[str, Any]:
    """The card's YAML metadata, keyed and ordered as huggingface_hub's ``DatasetCardData`` keeps
    them: ``configs`` (the splits' parquet files, the default config ``load_dataset`` reads),
    ``dataset_info`` (the columns' features, in the form ``datasets`` writes into a card) and
    what the Hub shows and filters by."""
    return {
        # Left out when not given: the Hub would show a language nobody chose.
        **({"language": list(options.language)} if options.language else {}),
        "license": options.license or "other",
        "size_categories": [size_category(sample_count)],
        "task_categories": ["image-to-text"],
        "pretty_name": f"OCR training batch {batch_id} ({adapter.name})",
        "tags": ["ocr", "htr"],
        "configs": [
            {
                "config_name": config_name,
                "default": True,
                "data_files": [{"split": split, "path": paths} for split, paths in data_files.items()],
            }
        ],
        "dataset_info": {
            "config_name": config_name,
            "features": _card_feature(adapter.features.to_dict())["struct"],
        },
    }


def size_category(count: int) -> str:
    """The Hub's size category of a dataset of ``count`` samples."""
    for exponent, category in enumerate(SIZE_CATEGORIES[:-1], start=3):
        if count < 10**exponent:
            return category
    return SIZE_CATEGORIES[-1]


def _card_feature(feature: dict[str, Any]) -> dict[str, Any]:
    """A feature of ``Features.to_dict()`` as ``datasets`` writes it into a card's ``dataset_info``
    (``Features._to_yaml_list``): a value its ``dtype``, an image ``dtype: image``, a struct its
    fields by name, a list its item; a list of one dtype or one struct names it directly."""
    kind = feature.get("_type")
    if kind is None:
        return {"struct": [{"name": name, **_card_feature(inner)} for name, inner in feature.items()]}
    if kind == "List":
        item = _card_feature(feature["feature"])
        return {"list": next(iter(item.values())) if list(item) in (["dtype"], ["struct"]) else item}
    if kind == "Value":
        return {"dtype": feature["dtype"]}
    return {"dtype": kind.lower()}


def _license_note(license: str | None) -> str:
    """What the card says when its license is ``other``: what to set before sharing the batch."""
    own_terms = "add `license_name` and `license_link` naming your own terms"
    if license is None:
        return (
            "\n**License: not set.** This batch was exported without `--license`, so its card says "
            "`license: other`. Before sharing it, set `license:` in this README's YAML header to the terms "
            "the images and transcriptions may be used under (an identifier from "
            f"https://huggingface.co/docs/hub/repositories-licenses), or keep `other` and {own_terms}.\n"
        )
    if license == "other":
        return f"\n**License: other.** Before sharing this batch, {own_terms} to this README's YAML header.\n"
    return ""


def _counts_line(counts: dict[str, int]) -> str:
    rejected = f"rejected: {counts['rejected']}" + (" (listed in `rejected.jsonl`)" if counts["rejected"] else "")
    duplicates = f"duplicates left out: {counts['duplicates']}" + (
        " (listed in `duplicates.jsonl`)" if counts["duplicates"] else ""
    )
    return f"Input samples: {counts['input']}; exported: {counts['exported']}; {rejected}; {duplicates}."


def _split_row(split: str, figures: dict) -> str:
    baseline = figures.get("ocr_baseline")
    rates = [f"{baseline[rate]:.2%}" if baseline else "–" for rate in ("cer", "grapheme_cer", "wer")]
    return f"| {split} | {figures['samples']} | {figures.get('characters', 0)} | {' | '.join(rates)} |"


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
        f"{baseline['reference_chars']} characters), grapheme CER {baseline['grapheme_cer']:.2%} "
        f"({baseline['grapheme_edits']} edits in {baseline['reference_graphemes']} graphemes), "
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
