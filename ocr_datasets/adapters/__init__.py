"""The export formats, by the names the API and the CLI use.

Each format's module is imported when its adapter is first asked for: they build ``datasets``
features, and importing ``datasets`` takes half a second that ``ocr-datasets --help`` should not.
"""

from __future__ import annotations

from importlib import import_module

from ..errors import OptionError
from .base import FormatAdapter, ViewImage

# Format name -> (module, adapter class): the one list of formats.
_ADAPTER_CLASSES = {
    "trocr": ("trocr", "TrOCRAdapter"),
    "llama_vision": ("llama_vision", "LlamaVisionAdapter"),
    "generic": ("generic", "GenericAdapter"),
    "vlm": ("vlm", "VlmAdapter"),
    "line_gt": ("line_gt", "LineGtAdapter"),
}
FORMAT_NAMES = tuple(_ADAPTER_CLASSES)
# The format argument that means every format.
ALL_FORMATS = "all"
_adapters: dict[str, FormatAdapter] = {}


def get_adapter(export_format: str) -> FormatAdapter:
    """The adapter for a format name; ``llama-vision`` (the folder name) is accepted too."""
    name = export_format.replace("-", "_") if isinstance(export_format, str) else export_format
    if name not in _ADAPTER_CLASSES:
        raise OptionError(
            f"unknown export format {export_format!r}: choose one of {', '.join(FORMAT_NAMES)} (or '{ALL_FORMATS}')"
        )
    if name not in _adapters:
        module, adapter_class = _ADAPTER_CLASSES[name]
        _adapters[name] = getattr(import_module(f".{module}", __name__), adapter_class)()
    return _adapters[name]


def __getattr__(name: str):
    # ADAPTERS, every format's adapter by name, is made on first use (see the module's docstring).
    if name == "ADAPTERS":
        return {format_name: get_adapter(format_name) for format_name in FORMAT_NAMES}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ADAPTERS", "ALL_FORMATS", "FORMAT_NAMES", "FormatAdapter", "ViewImage", "get_adapter"]
