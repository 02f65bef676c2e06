"""What every format adapter is: a pure projection of canonical rows, and of one row to its JSONL view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..options import IMAGE_PLACEHOLDER, ViewOptions

if TYPE_CHECKING:
    # The features import pyarrow (0.2 s): the CLI reads the format names from this package
    # before any adapter is asked for, and --help should not wait for it.
    from ..features import Features

# LLaMA-Factory's list of the datasets in its dataset_dir (here, the batch folder).
LLAMAFACTORY_DATASET_INFO = "dataset_info.json"


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
    # The format's view is a folder per split of line files (``line_files``), not a JSONL view.
    line_folder: ClassVar[bool] = False
    model_config: ClassVar[dict[str, Any]] = {}

    def project(self, batch: dict[str, list], options: ViewOptions) -> dict[str, list]:
        """Canonical columns (a ``datasets`` batch) to this format's columns. A column passed on
        as it is must be the very list given, whatever the rows: the writer then takes it from
        the canonical Arrow rows, and where every column is passed on (as the writer finds by
        projecting no rows at all), it writes the canonical rows themselves without projecting
        any. Any other column is a new list. A projection never changes the lists it is given."""
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

    def image_file_name(self, sample_id: str, canonical_name: str) -> str:
        """The file name of a row's image, given its canonical row's (``image.path``)."""
        return canonical_name

    def view_name(self, split: str) -> str:
        return f"{split}.jsonl"

    def line_files(self, row: dict[str, Any]) -> dict[str, bytes]:
        """The files that stand for a projected row in its split's folder, by suffix (for
        ``line_folder`` formats); the writer names them after the row's image."""
        raise NotImplementedError

    @property
    def is_chat(self) -> bool:
        """Whether the rows are a vision chat in one of TRL's conversational forms: a ``messages``
        column, or a ``prompt`` and a ``completion``."""
        return "messages" in self.features or {"prompt", "completion"} <= set(self.features)

    def conversation(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """A chat row's turns, in order (``is_chat``): its messages, or its prompt then its completion."""
        return row["messages"] if "messages" in row else [*row["prompt"], *row["completion"]]

    def text_chat_view_name(self, split: str) -> str:
        """The chat view LLaMA-Factory and ms-swift read (``text_chat_record``), per split."""
        return f"{split}.llamafactory.jsonl"

    def text_chat_record(self, row: dict[str, Any], images: list[ViewImage]) -> dict[str, Any]:
        """A chat row as LLaMA-Factory (sharegpt formatting, OpenAI-style tags) and ms-swift
        (its standard ``messages``) read it: each turn's content one string, ``<image>`` where an
        image part stands, and the images' paths relative to the batch, in the same order."""
        messages = [
            {
                "role": turn["role"],
                "content": "".join(
                    IMAGE_PLACEHOLDER if part["type"] == "image" else part["text"] for part in turn["content"]
                ),
            }
            for turn in self.conversation(row)
        ]
        return {"id": row["id"], "messages": messages, "images": [image.path for image in images]}


def llamafactory_dataset_info(view_names: dict[str, str]) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json`` for a batch folder used as its ``dataset_dir``: one
    dataset per split (named as the split), each a ``text_chat_record`` view, described as its
    data/README.md documents multimodal sharegpt data with OpenAI-style role and content keys."""
    return {
        split: {
            "file_name": view_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        }
        for split, view_name in view_names.items()
    }
