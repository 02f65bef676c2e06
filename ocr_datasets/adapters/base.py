"""What every format adapter is: a pure projection of canonical rows, and of one row to its JSONL view."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from datasets import Features

DEFAULT_INSTRUCTION = (
    "Du bist ein OCR-Experte für deutsche Handschrift. "
    "Lies den handgeschriebenen Text im Bild und gib ihn wortgetreu wieder."
)


@dataclass(frozen=True)
class ExportOptions:
    """The options of one export, recorded in its manifest (see ``export`` for their meaning).

    Args:
        copy_images: write the JSONL views and the ``images/`` folder they point into. Without
            it the batch holds only the parquet files (images embedded), card and manifest.
        include_base64: JSONL views carry each image inline as a ``data:`` URL (for llama_vision
            in the OpenAI ``image_url`` style the original service wrote).
        instruction: the user-turn instruction of llama_vision rows.
        max_shard_size: the largest parquet file ``datasets`` writes before starting the next
            (``"500MB"``: small enough to stream and to spread over machines).
        keep_image_metadata: keep images byte for byte; by default EXIF orientation is applied
            and EXIF, GPS, XMP, ICC profiles, comments and PNG text chunks are dropped.
        normalize, split, group_by, seed, split_strategy, allow_empty_splits, skip_invalid, keep_duplicates: how
            the samples were validated and split; adapters do not read them.
    """

    copy_images: bool = True
    include_base64: bool = False
    instruction: str = DEFAULT_INSTRUCTION
    keep_image_metadata: bool = False
    max_shard_size: str | int = "500MB"
    normalize: str = "NFC"
    split: dict[str, float] = field(default_factory=lambda: {"train": 1.0})
    group_by: str | None = None
    seed: int = 0
    split_strategy: str = "hash"
    allow_empty_splits: bool = False
    skip_invalid: bool = False
    keep_duplicates: bool = False

    def __post_init__(self):
        if not isinstance(self.instruction, str):
            raise TypeError(f"instruction (--instruction) must be text, not {type(self.instruction).__name__}")
        try:
            self.instruction.encode("utf-8")
        except UnicodeEncodeError:
            # What a command line argument holding bytes in another encoding (Latin-1 "ä") becomes.
            raise ValueError(
                "instruction (--instruction) holds bytes that are not UTF-8 text: write it in UTF-8 "
                "(set the terminal to UTF-8, or pass it from Python as a str)"
            ) from None


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
