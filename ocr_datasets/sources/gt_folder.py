"""Line folders of tesstrain, kraken and Calamari: every line image beside its ``.gt.txt``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import first_line
from ..problems import (
    LINE_FILE_NAME_NOT_UTF8,
    LINE_METADATA_INVALID,
    LINE_NO_IMAGE,
    LINE_NO_TEXT,
    LINE_SEVERAL_LINES,
    LINE_TEXT_UNREADABLE,
)
from ..samples import SampleError, TrainingSample
from .base import Source
from .crop import CropOptions
from .sniff import visible_files

LINE_TEXT_SUFFIX = ".gt.txt"
# Line images as tesstrain, kraken and Calamari name them, in order of preference: when a line
# has several images (ocropus keeps name.bin.png and name.nrm.png side by side), the scan as it
# is wins over its binarised and normalised versions.
LINE_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bin.png", ".nrm.png")
# Files beside a line's .gt.txt that hold its metadata (not a source of their own), merged in this order.
LINE_METADATA_SUFFIXES = (".yml", ".yaml", ".json")


class GtFolderSource(Source):
    """One sample per ``<name>.gt.txt`` and its image ``<name>.png`` (or ``.tif``, ``.tiff``,
    ``.jpg``, ``.jpeg``, ``.bin.png``, ``.nrm.png``) in a folder and its subfolders, in id order.

    The id is the line's path relative to the folder without suffixes (``sub/name``); the text is
    the file's content without trailing line breaks; the metadata is ``<name>.yml`` / ``.yaml`` /
    ``.json`` when present (a mapping; several are merged in that order). A text without an
    image, an image without a text and unreadable text or metadata are ``SampleError``s in the
    line's place. The input may also be one file of a line. Hidden files and folders are skipped
    (macOS leaves ``._name.png`` beside every image).
    """

    kind = "gt-folder"
    unit = f"{LINE_TEXT_SUFFIX} line"
    suffixes = (LINE_TEXT_SUFFIX,)

    def sniff(self, path: Path, *, in_folder: bool) -> bool:
        # A folder of lines is told by its .gt.txt files; one line's file given on its own is
        # read only when named (--from gt-folder).
        return in_folder

    def read(self, path: Path, *, image_dir: Path | None, crop: CropOptions) -> Iterator[TrainingSample | SampleError]:
        root = path if path.is_dir() else path.parent
        files = list(visible_files(root, recursive=path.is_dir()))
        lines = _group_lines(files, root)
        if not path.is_dir():
            lines = [line for line in lines if line.text == path or any(image == path for _, image in line.images)]
        for line in lines:
            yield _sample(line)


@dataclass
class _Line:
    id: str
    root: Path
    text: Path | None = None
    images: list[tuple[str, Path]] = field(default_factory=list)

    def location(self) -> str:
        """Where the line stands, relative to the input folder (error messages travel with the
        batch), with any byte that is not UTF-8 shown as its escape (``\\xdf``)."""
        return _shown_name((self.text or self.images[0][1]).relative_to(self.root).as_posix())


def _group_lines(files: list[Path], root: Path) -> list[_Line]:
    lines: dict[str, _Line] = {}
    for file in files:
        if file.name.lower().endswith(LINE_TEXT_SUFFIX):
            line_id = _line_id(file, root, LINE_TEXT_SUFFIX)
            lines[line_id] = _Line(line_id, root, text=file)
    for file in files:
        # Longest suffix first, so name.bin.png belongs to name; unless only name.bin.gt.txt exists.
        suffixes = sorted(
            (suffix for suffix in LINE_IMAGE_SUFFIXES if file.name.lower().endswith(suffix)), key=len, reverse=True
        )
        if not suffixes:
            continue
        candidates = [(suffix, _line_id(file, root, suffix)) for suffix in suffixes]
        suffix, line_id = next(((suffix, line_id) for suffix, line_id in candidates if line_id in lines), candidates[0])
        lines.setdefault(line_id, _Line(line_id, root)).images.append((suffix, file))
    return [lines[line_id] for line_id in sorted(lines)]


def _line_id(file: Path, root: Path, suffix: str) -> str:
    return file.relative_to(root).as_posix()[: -len(suffix)]


def _sample(line: _Line) -> TrainingSample | SampleError:
    location = line.location()
    if location != (line.text or line.images[0][1]).relative_to(line.root).as_posix():
        return SampleError(
            None,
            "the file name is not UTF-8 text, so the line's id could not be written into a batch",
            "rename the line's files in UTF-8 (as a current system names them)",
            code=LINE_FILE_NAME_NOT_UTF8,
            location=location,
        )
    if line.text is None:
        names = ", ".join(image.name for _, image in line.images)
        return SampleError(
            line.id,
            f"image {names} has no transcription",
            f"add {Path(line.id).name}{LINE_TEXT_SUFFIX} beside it, or move the image away",
            code=LINE_NO_TEXT,
            location=location,
        )
    if not line.images:
        return SampleError(
            line.id,
            f"no line image beside {line.text.name}",
            f"add {Path(line.id).name} with one of the suffixes {', '.join(LINE_IMAGE_SUFFIXES)}, "
            f"or remove {line.text.name}",
            code=LINE_NO_IMAGE,
            location=location,
        )
    try:
        text = line.text.read_text(encoding="utf-8-sig").rstrip("\n")
        if "\n" in text:
            return SampleError(
                line.id,
                f"{line.text.name} holds {text.count(chr(10)) + 1} lines, but a line image has one line of text",
                f"put the line's text on one line in {line.text.name} (or cut the image into one image per line)",
                code=LINE_SEVERAL_LINES,
                location=location,
            )
    except UnicodeDecodeError:
        return SampleError(
            line.id,
            f"{line.text.name} is not UTF-8 text",
            "save it as UTF-8",
            code=LINE_TEXT_UNREADABLE,
            location=location,
        )
    except OSError as error:
        return SampleError(
            line.id,
            f"cannot read {line.text.name}: {error.strerror}",
            "check the file's permissions",
            code=LINE_TEXT_UNREADABLE,
            location=location,
        )
    metadata = _metadata(line.text.with_name(line.text.name[: -len(LINE_TEXT_SUFFIX)]), line.id, location)
    if isinstance(metadata, SampleError):
        return metadata
    image = min(line.images, key=lambda pair: LINE_IMAGE_SUFFIXES.index(pair[0]))[1]
    return TrainingSample(id=line.id, image_path=image, ground_truth=text, metadata=metadata, source=location)


def _metadata(base: Path, line_id: str, location: str) -> dict[str, Any] | SampleError:
    # Imported here, not with the module: every source is imported when the command starts, and
    # `ocr-datasets --help` should not wait for YAML.
    import yaml

    metadata: dict[str, Any] = {}
    for suffix in LINE_METADATA_SUFFIXES:
        file = base.with_name(base.name + suffix)
        if not file.is_file():
            continue
        fix = f"correct {file.name} (key: value pairs), or remove it"
        try:
            content = file.read_text(encoding="utf-8-sig")
            parsed = json.loads(content) if suffix == ".json" else yaml.safe_load(content)
            # Dates and other YAML types become the text JSON will store them as anyway.
            parsed = json.loads(json.dumps(parsed, ensure_ascii=False, default=str))
        except UnicodeDecodeError:
            return SampleError(
                line_id,
                f"metadata file {file.name} is not UTF-8 text",
                "save it as UTF-8",
                code=LINE_METADATA_INVALID,
                location=location,
            )
        except OSError as error:
            return SampleError(
                line_id,
                f"cannot read metadata file {file.name}: {error.strerror}",
                "check the file's permissions",
                code=LINE_METADATA_INVALID,
                location=location,
            )
        except (yaml.YAMLError, ValueError, TypeError) as error:
            return SampleError(
                line_id,
                f"metadata file {file.name} cannot be read ({_parse_problem(error)})",
                fix,
                code=LINE_METADATA_INVALID,
                location=location,
            )
        if parsed is None:  # an empty file says nothing
            continue
        if not isinstance(parsed, dict):
            return SampleError(
                line_id,
                f"metadata file {file.name} holds a {type(parsed).__name__}, not a mapping",
                fix,
                code=LINE_METADATA_INVALID,
                location=location,
            )
        metadata.update(parsed)
    return metadata


def _parse_problem(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno}"
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}"
    return first_line(error)


def _shown_name(name: str) -> str:
    # os.walk hands over a file name that is not UTF-8 with its bytes as lone surrogates.
    return os.fsencode(name).decode("utf-8", "backslashreplace")
