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
from .manifest import STDIN, read_manifest

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
    resolve (PAGE ``imageFilename``, Label Studio uploads); ``crop`` says how lines are cut.
    ``errors="report"`` yields a ``SampleError`` in place of what cannot be read instead of raising.
    The input ``"-"`` is standard input (a JSONL manifest, or CSV with ``source="csv"``).
    """
    if errors not in ("raise", "report"):
        raise ValueError(f"errors must be 'raise' or 'report', not {errors!r}")
    if source is not None and source not in SOURCE_READERS:
        raise ValueError(f"unknown source {source!r}: choose one of {', '.join(SOURCE_KINDS)}")
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(path) for path in inputs]
    for path in paths:
        standard_input = str(path) == STDIN
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
    """The source kind an input looks like, by suffix, XML root element or folder content."""
    if path.is_dir():
        if any(path.rglob("*.gt.txt")):
            return "gt-folder"
        xml_files = sorted(path.rglob("*.xml"))
        kinds = {xml_kind(xml) for xml in xml_files} - {None}
        if len(kinds) == 1:
            return kinds.pop()
        if not kinds and any(path.glob("*.json")):
            return "label-studio"
        found = f"both PAGE and ALTO files ({', '.join(sorted(kinds))})" if kinds else "no .gt.txt, PAGE, ALTO or Label Studio files"
        raise ValueError(f"cannot tell what {path} holds: {found}; name the source with --from")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".csv"):
        return suffix[1:]
    if suffix == ".json":
        return "label-studio"
    if suffix == ".xml" and xml_kind(path):
        return xml_kind(path)
    raise ValueError(f"cannot tell what {path.name} holds: name the source with --from ({', '.join(SOURCE_KINDS)})")


def xml_kind(path: Path) -> str | None:
    """``page`` or ``alto`` from the root element of an XML file (reads only its start)."""
    from xml.etree.ElementTree import iterparse

    try:
        for _, element in iterparse(path, events=("start",)):
            local = element.tag.rsplit("}", 1)[-1]
            return {"PcGts": "page", "alto": "alto"}.get(local)
    except Exception:  # not XML at all: not a source we read
        return None
    return None


__all__ = ["SOURCE_KINDS", "CropOptions", "CroppedSample", "guess_source", "read_manifest", "read_samples"]
