"""The export formats, by the names the API and the CLI use."""

from __future__ import annotations

from .base import DEFAULT_INSTRUCTION, ExportOptions, FormatAdapter, ViewImage
from .generic import GenericAdapter
from .llama_vision import LlamaVisionAdapter
from .trocr import TrOCRAdapter

ADAPTERS: dict[str, FormatAdapter] = {adapter.name: adapter for adapter in (TrOCRAdapter(), LlamaVisionAdapter(), GenericAdapter())}
FORMAT_NAMES = tuple(ADAPTERS)


def get_adapter(export_format: str) -> FormatAdapter:
    """The adapter for a format name; ``llama-vision`` (the folder name) is accepted too."""
    name = export_format.replace("-", "_") if isinstance(export_format, str) else export_format
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(f"unknown export format {export_format!r}: choose one of {', '.join(FORMAT_NAMES)} (or 'all')") from None


__all__ = ["ADAPTERS", "DEFAULT_INSTRUCTION", "FORMAT_NAMES", "ExportOptions", "FormatAdapter", "ViewImage", "get_adapter"]
