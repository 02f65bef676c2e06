"""Sources: read labeled data where it already lives and yield TrainingSamples.

Each kind of input is one ``Source`` (see ``base.py``) in ``SOURCES``. This module is the
dispatcher: it chooses the source of each input (named, or guessed from what the input holds)
and alone decides what becomes of a ``SampleError`` that a source yields in a record's place,
so validation, splits and every format work alike for all sources.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Literal, get_args

from ..errors import InputError, InputNotFoundError, NotAFolderError, OptionError
from ..samples import SampleError, TrainingSample
from .alto import AltoSource
from .base import Source
from .crop import CropOptions, CroppedSample
from .gt_folder import LINE_METADATA_SUFFIXES, LINE_TEXT_SUFFIX, GtFolderSource
from .label_studio import LabelStudioSource
from .manifest import STDIN_NAMES, CsvSource, JsonlSource, ManifestSource, manifest_samples
from .notices import SourceNotice, counted, listed
from .page import PageSource
from .sniff import visible_files
from .xml_common import xml_start
from .xml_pages import PageFileSource

# Every source by its kind, in the order messages and --from list them; a file given on its own
# goes to the first that claims it and says yes to it.
SOURCES: dict[str, type[Source]] = {
    source.kind: source
    for source in (JsonlSource, CsvSource, PageSource, AltoSource, GtFolderSource, LabelStudioSource)
}
SOURCE_KINDS = tuple(SOURCES)
# What becomes of a SampleError a source yields: raised, or passed on in its record's place
# (the export then lists it as rejected).
Errors = Literal["raise", "report"]


def read_samples(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    source: str | None = None,
    *,
    image_dir: str | os.PathLike[str] | None = None,
    crop: CropOptions = CropOptions(),
    errors: Errors = "raise",
) -> Iterator[TrainingSample | SampleError]:
    """The samples of every input (files or folders), read by ``source`` (one of
    ``SOURCE_KINDS``) or, when it is None, by the kind each input looks like.

    ``image_dir`` is where page images are looked for when a file's own reference does not
    resolve (PAGE ``imageFilename``, Label Studio uploads); a path that is no folder is refused
    before anything is read. ``crop`` says how lines are cut. Sources that cut lines from pages
    say what each input held as a ``SourceNotice`` warning once it has been read.
    ``errors="report"`` yields a ``SampleError`` in place of what cannot be read instead of raising.
    The input ``"-"`` (or ``/dev/stdin``) is standard input (a JSONL manifest, or CSV with ``source="csv"``).
    """
    return _raised_or_reported(_samples(inputs, source, image_dir, crop), errors)


def read_manifest(
    path: str | os.PathLike[str], errors: Errors = "raise", kind: str | None = None
) -> Iterator[TrainingSample | SampleError]:
    """Yield the samples of a JSONL or CSV manifest (``kind``, by default chosen by the file's
    suffix; ``"-"`` or ``/dev/stdin`` reads standard input, JSONL unless ``kind="csv"``).

    Each record has ``id`` (a string; a JSON integer is taken as its digits), ``image_path``
    (relative to the manifest's folder, or absolute; for standard input, to the current folder),
    ``ground_truth`` and optionally ``ocr_text``, ``ocr_confidence`` and ``metadata`` (a JSON
    object; in CSV, a JSON object in one cell). Blank lines are skipped. Values are passed on
    as they are: validation judges them. A record that cannot be read as written (broken JSON,
    a key given twice, no id, a CSV row whose cells do not match the header) raises
    ``SampleError`` naming its line, or with ``errors="report"`` is yielded as that
    ``SampleError`` in its place, so that one bad line does not hide the others. A file that is
    not UTF-8, or a CSV header naming a column twice, raises ``ValueError``: no line of it can
    be trusted.
    """
    return _raised_or_reported(manifest_samples(path, kind), errors)


def _raised_or_reported(
    items: Generator[TrainingSample | SampleError, None, None], errors: Errors
) -> Iterator[TrainingSample | SampleError]:
    """``items``, each ``SampleError`` among them raised (``errors="raise"``) or passed on in its
    record's place (``errors="report"``)."""
    if errors not in get_args(Errors):
        raise OptionError(f"errors must be {' or '.join(map(repr, get_args(Errors)))}, not {errors!r}")
    # Closed when an error is raised, so that the source's open file is closed at once.
    with closing(items):
        for item in items:
            if isinstance(item, SampleError) and errors == "raise":
                raise item
            yield item


def _samples(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    source: str | None,
    image_dir: str | os.PathLike[str] | None,
    crop: CropOptions,
) -> Generator[TrainingSample | SampleError, None, None]:
    if source is not None and source not in SOURCES:
        raise OptionError(f"unknown source {source!r}: choose one of {', '.join(SOURCE_KINDS)}")
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(path) for path in inputs]
    if sum(str(path) in STDIN_NAMES for path in paths) > 1:
        raise OptionError("standard input (- or /dev/stdin) can be read only once: name it as one input")
    images = _checked_image_dir(image_dir)
    for path in paths:
        standard_input = str(path) in STDIN_NAMES
        if not standard_input and not path.exists():
            raise InputNotFoundError(f"input not found: {path}")
        kind = source or (JsonlSource.kind if standard_input else guess_source(path))
        if standard_input and not issubclass(SOURCES[kind], ManifestSource):
            raise OptionError(f"standard input (-) can hold a JSONL or CSV manifest, not {kind}")
        yield from SOURCES[kind]().read(path, image_dir=images, crop=crop)


def _checked_image_dir(image_dir: str | os.PathLike[str] | None) -> Path | None:
    """``image_dir`` as a path, refused at once when it is no folder: else every page would
    later say "pass --images DIR" with the folder passed."""
    if image_dir is None:
        return None
    folder = Path(image_dir)
    if not folder.exists():
        raise InputNotFoundError(f"the images folder image_dir (--images) does not exist: {folder}")
    if not folder.is_dir():
        raise NotAFolderError(f"the images folder image_dir (--images) is a file, not a folder: {folder}")
    return folder


def guess_source(path: Path) -> str:
    """The source kind an input looks like: a file by its suffix and content (``.jsonl``, ``.csv``;
    ``.json`` holding JSONL or a Label Studio export; PAGE or ALTO by the root element, whatever
    the suffix); a folder by the files it holds, which must all be of one kind."""
    if path.is_dir():
        return _folder_kind(path)
    kind = _file_kind(path, in_folder=False)
    if kind is not None:
        return kind
    start = xml_start(path)
    page_files = " or ".join(
        f"{source.label} <{root}>"
        for source in SOURCES.values()
        if issubclass(source, PageFileSource)
        for root in source.xml_roots
    )
    what = (
        f"its root element is <{start.root}>, not {page_files}"
        if start.root
        else "not a manifest, PAGE, ALTO or Label Studio file"
    )
    raise InputError(
        f"cannot tell what {path.name} holds ({what}): name the source with --from ({', '.join(SOURCE_KINDS)})"
    )


def _file_kind(path: Path, *, in_folder: bool) -> str | None:
    """The kind of the first source that claims ``path`` and says yes to it: sources claim a file
    by its name, and XML sources any file given on its own (in a folder no other file is opened)."""
    name = path.name.lower()
    claiming = [source for source in SOURCES.values() if name.endswith(source.suffixes)]
    if not in_folder:
        claiming += [source for source in SOURCES.values() if source.xml_roots and source not in claiming]
    return next((source.kind for source in claiming if source().sniff(path, in_folder=in_folder)), None)


def _folder_kind(folder: Path) -> str:
    kinds = _kinds_in_folder(folder)
    if not kinds:
        raise InputError(
            f"cannot tell what {folder} holds: no {LINE_TEXT_SUFFIX}, PAGE, ALTO or Label Studio files; "
            "name the source with --from"
        )
    if all(issubclass(SOURCES[kind], ManifestSource) for kind in kinds):
        manifests = [file.relative_to(folder).as_posix() for files in kinds.values() for file in files]
        raise InputError(
            f"{folder} holds {counted(len(manifests), 'manifest')} ({listed(manifests)}); "
            f"a manifest is given as a file, not as the folder holding it: --input {folder / manifests[0]}"
        )
    if len(kinds) == 1:
        return next(iter(kinds))
    found = ", ".join(counted(len(files), SOURCES[kind].unit) for kind, files in sorted(kinds.items()))
    raise InputError(
        f"cannot tell what {folder} holds: {found}; name the one to read with --from ({', '.join(sorted(kinds))})"
    )


def _kinds_in_folder(folder: Path) -> dict[str, list[Path]]:
    """The files of every source kind below ``folder`` (``gt-folder``: the ``.gt.txt`` files;
    ``jsonl`` and ``csv``: manifests). Files of no kind (images, METS, notes) are left out."""
    files = list(visible_files(folder))
    line_stems = {
        file.with_name(file.name[: -len(LINE_TEXT_SUFFIX)])
        for file in files
        if file.name.lower().endswith(LINE_TEXT_SUFFIX)
    }
    kinds: dict[str, list[Path]] = {}
    for file in files:
        if file.suffix.lower() in LINE_METADATA_SUFFIXES and file.with_suffix("") in line_stems:
            continue  # a line's metadata, no source of its own (a one-line .json would pass for JSONL)
        kind = _file_kind(file, in_folder=True)
        if kind is not None:
            kinds.setdefault(kind, []).append(file)
    return kinds


__all__ = [
    "SOURCE_KINDS",
    "CropOptions",
    "CroppedSample",
    "SourceNotice",
    "guess_source",
    "read_manifest",
    "read_samples",
]
