"""Sources: read labeled data where it already lives and yield TrainingSamples.

Every source yields ``TrainingSample`` objects (or, with ``errors="report"``, a ``SampleError``
in place of a record it cannot read), so validation, splits and every format work alike for all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from importlib import import_module
from pathlib import Path

from ..samples import SampleError, TrainingSample
from .crop import CropOptions, CroppedSample
from .page_images import checked_image_dir
from .manifest import STDIN_NAMES, read_manifest
from .notices import SourceNotice, counted, listed
from .sniff import LINE_TEXT_SUFFIX, MANIFEST_SUFFIXES, ROOT_KINDS, folder_kinds, json_kind
from .xml_common import xml_start

# Source kind -> (module, function) where function(path, *, image_dir, crop, errors) yields
# the samples of one input path.
SOURCE_READERS = {
    "jsonl": ("manifest", "read_jsonl"),
    "csv": ("manifest", "read_csv"),
    "page": ("page", "read"),
    "alto": ("alto", "read"),
    "gt-folder": ("gt_folder", "read"),
    "label-studio": ("label_studio", "read"),
}
SOURCE_KINDS = tuple(SOURCE_READERS)
# What a folder holds, as its kinds are named when it holds several.
_KIND_UNITS = {
    "gt-folder": f"{LINE_TEXT_SUFFIX} line",
    "page": "PAGE file",
    "alto": "ALTO file",
    "label-studio": "Label Studio export",
    "jsonl": "JSONL manifest",
    "csv": "CSV manifest",
}
_MANIFEST_KINDS = {"jsonl", "csv"}


def read_samples(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    source: str | None = None,
    *,
    image_dir: str | os.PathLike[str] | None = None,
    crop: CropOptions = CropOptions(),
    errors: str = "raise",
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
    if errors not in ("raise", "report"):
        raise ValueError(f"errors must be 'raise' or 'report', not {errors!r}")
    if source is not None and source not in SOURCE_READERS:
        raise ValueError(f"unknown source {source!r}: choose one of {', '.join(SOURCE_KINDS)}")
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(path) for path in inputs]
    if sum(str(path) in STDIN_NAMES for path in paths) > 1:
        raise ValueError("standard input (- or /dev/stdin) can be read only once: name it as one input")
    image_dir = checked_image_dir(image_dir)
    for path in paths:
        standard_input = str(path) in STDIN_NAMES
        if not standard_input and not path.exists():
            raise FileNotFoundError(f"input not found: {path}")
        kind = source or ("jsonl" if standard_input else guess_source(path))
        if standard_input and kind not in ("jsonl", "csv"):
            raise ValueError(f"standard input (-) can hold a JSONL or CSV manifest, not {kind}")
        module_name, function_name = SOURCE_READERS[kind]
        read = getattr(import_module(f".{module_name}", __name__), function_name)
        for item in read(path, image_dir=image_dir, crop=crop, errors=errors):
            if isinstance(item, SampleError) and errors == "raise":
                raise item
            yield item


def guess_source(path: Path) -> str:
    """The source kind an input looks like: a file by its suffix and content (``.jsonl``, ``.csv``;
    ``.json`` holding JSONL or a Label Studio export; PAGE or ALTO by the root element, whatever
    the suffix); a folder by the files it holds, which must all be of one kind."""
    if path.is_dir():
        return _folder_kind(path)
    suffix = path.suffix.lower()
    if suffix in MANIFEST_SUFFIXES:
        return suffix[1:]
    if suffix == ".json":
        return json_kind(path)
    start = xml_start(path)
    if start.root in ROOT_KINDS:
        return ROOT_KINDS[start.root]
    what = f"its root element is <{start.root}>, not PAGE <PcGts> or ALTO <alto>" if start.root else "not a manifest, PAGE, ALTO or Label Studio file"
    raise ValueError(f"cannot tell what {path.name} holds ({what}): name the source with --from ({', '.join(SOURCE_KINDS)})")


def _folder_kind(folder: Path) -> str:
    kinds = folder_kinds(folder)
    if not kinds:
        raise ValueError(f"cannot tell what {folder} holds: no {LINE_TEXT_SUFFIX}, PAGE, ALTO or Label Studio files; name the source with --from")
    if kinds.keys() <= _MANIFEST_KINDS:
        manifests = [file.relative_to(folder).as_posix() for files in kinds.values() for file in files]
        raise ValueError(
            f"{folder} holds {counted(len(manifests), 'manifest')} ({listed(manifests)}); a manifest is given as a file, "
            f"not as the folder holding it: --input {folder / manifests[0]}"
        )
    if len(kinds) == 1:
        return next(iter(kinds))
    found = ", ".join(counted(len(files), _KIND_UNITS[kind]) for kind, files in sorted(kinds.items()))
    raise ValueError(f"cannot tell what {folder} holds: {found}; name the one to read with --from ({', '.join(sorted(kinds))})")


__all__ = ["SOURCE_KINDS", "CropOptions", "CroppedSample", "SourceNotice", "guess_source", "read_manifest", "read_samples"]
