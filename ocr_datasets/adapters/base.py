"""What every format adapter is: a pure projection of canonical rows, and of one row to its JSONL view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..features import Features
from ..options import ViewOptions


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

    def project(self, batch: dict[str, list], options: ViewOptions) -> dict[str, list]:
        """Canonical columns (a ``datasets`` batch) to this format's columns."""
        raise NotImplementedError

    def view_record(self, row: dict[str, Any], images: list[ViewImage], options: ViewOptions) -> dict[str, Any]:
        """One projected row to its JSONL line, given where the writer put the row's images."""
        raise NotImplementedError

    def transcription(self, row: dict[str, Any]) -> str:
        """The ground truth a projected row holds (what checks and tools read back from any format)."""
        raise NotImplementedError

    def images(self, row: dict[str, Any]) -> list:
        """The images a projected row holds."""
        cell = row[self.image_column]
        return cell if isinstance(cell, list) else [cell]

    def view_name(self, split: str) -> str:
        return f"{split}.jsonl"
