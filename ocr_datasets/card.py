"""The batch's dataset card: YAML ``configs`` that make ``load_dataset(folder)`` work offline."""

from __future__ import annotations

from .adapters import FormatAdapter


def dataset_card(
    *, adapter: FormatAdapter, batch_id: str, config_name: str, splits: dict[str, int], data_files: dict[str, list[str]], created_at: str
) -> str:
    """The README.md of a batch.

    ``datasets`` caches a local folder by folder name and config name, so the config name carries
    the format, batch id and content fingerprint: another batch, or this batch re-exported with
    other rows, never reads a stale cache entry.
    """
    config_lines = [f"- config_name: {config_name}", "  default: true", "  data_files:"]
    for split in splits:
        config_lines += [f"  - split: {split}", "    path:"] + [f"    - {path}" for path in data_files[split]]
    split_rows = "\n".join(f"| {split} | {count} |" for split, count in splits.items())
    columns = ", ".join(f"`{name}`" for name in adapter.features)
    return f"""---
configs:
{chr(10).join(config_lines)}
---

# OCR training batch `{batch_id}` ({adapter.name})

Exported by ocr-datasets on {created_at}. Columns: {columns}. Images are embedded in the parquet files.

| split | samples |
|---|---|
{split_rows}

Load it offline, keeping the `datasets` cache where you choose:

```python
from datasets import load_dataset
dataset = load_dataset("path/to/this/folder", cache_dir="path/to/a/cache")
```

`manifest.json` lists every file with its sha256, the counts and the options used.
"""

