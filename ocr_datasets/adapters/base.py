"""What every format adapter is: a pure projection of canonical rows, and of one row to its JSONL view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from datasets import Features

DEFAULT_INSTRUCTION = (
    "Du bist ein OCR-Experte für deutsche Handschrift. "
    "Lies den handgeschriebenen Text im Bild und gib ihn wortgetreu wieder."
)


@dataclass(frozen=True)
class ExportOptions:
    """Options of one export, recorded in its manifest.

    Args:
        copy_images: write the JSONL views and the ``images/`` folder they point into. Without
            it the batch holds only the parquet files (images embedded), card and manifest.
        include_base64: JSONL views carry each image inline as a ``data:`` URL (for llama_vision
            in the OpenAI ``image_url`` style the original service wrote).
        instruction: the user-turn instruction of llama_vision rows.
    """

    copy_images: bool = True
    include_base64: bool = False
    instruction: str = DEFAULT_INSTRUCTION


@dataclass(frozen=True)
class ViewImage:
    """An image as a JSONL view refers to it: a path relative to the batch folder (with
    ``copy_images``) and/or an inline ``data:`` URL (with ``include_base64``)."""

    path: str | None
    data_url: str | None


class FormatAdapter:
    """One export format. Subclasses set the class attributes and the two projections; they know
    nothing about files, so the writer treats every format alike."""

    name: ClassVar[str]
    folder: ClassVar[str]
    features: ClassVar[Features]
    image_column: ClassVar[str]
    json_array_view: ClassVar[bool] = False
    model_config: ClassVar[dict[str, Any]] = {}

    def project(self, batch: dict[str, list], options: ExportOptions) -> dict[str, list]:
        """Canonical columns (a ``datasets`` batch) to this format's columns."""
        raise NotImplementedError

    def view_record(self, row: dict[str, Any], images: list[ViewImage], options: ExportOptions) -> dict[str, Any]:
        """One projected row to its JSONL line, given where the writer put the row's images."""
        raise NotImplementedError

    def view_name(self, split: str) -> str:
        return f"{split}.jsonl"
