"""What an input holds, told from the start of its files rather than from their names alone.

A PAGE file is one whose root element is ``PcGts``, an ALTO file one whose root is ``alto``,
whatever its suffix (``.xml``, ``.page``, ``.alto``). A ``.json`` file is a JSONL manifest when
its first non-blank line is a whole JSON object (a Label Studio export is one JSON list). Only
the start of a file is read, so sniffing a folder of large files costs little.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from .gt_folder import LINE_METADATA_SUFFIXES, LINE_TEXT_SUFFIX
from .xml_common import xml_start

# Root element -> source kind.
ROOT_KINDS = {"PcGts": "page", "alto": "alto"}
# Suffixes a page file may have in a folder; other files are not opened while scanning one.
XML_SUFFIXES = (".xml", ".page", ".alto")
# A file named so promises its kind: one that turns out to be something else is worth a mention.
PROMISING_SUFFIXES = {".page": "page", ".alto": "alto"}
MANIFEST_SUFFIXES = (".jsonl", ".csv")
_CHUNK = 8 * 1024


def json_kind(path: Path) -> str:
    """``jsonl`` when the first non-blank line is a whole JSON object, else ``label-studio``
    (a list of tasks; anything else is left to that reader to explain)."""
    return "jsonl" if json_start(path) == "object line" else "label-studio"


def json_start(path: Path) -> str:
    """How a JSON file starts: ``list`` (``[``), ``object line`` (its first non-blank line is a
    whole JSON object, as in JSONL) or ``other`` (an object over several lines, not JSON, unreadable)."""
    try:
        with open(path, encoding="utf-8-sig") as file:
            start = ""
            while not start:
                chunk = file.read(_CHUNK)
                if not chunk:
                    return "other"
                start = chunk.lstrip()
            if start[0] == "[":
                return "list"
            if start[0] != "{":
                return "other"
            line = start if "\n" in start else start + file.readline()
    except (OSError, UnicodeDecodeError):
        return "other"  # its reader names the problem
    try:
        return "object line" if isinstance(json.loads(line.split("\n", 1)[0]), dict) else "other"
    except ValueError:
        return "other"


def visible_files(folder: Path) -> Iterator[Path]:
    """Every file below ``folder``, hidden files and folders left out (macOS writes ``._name``
    beside every file, and those are no sources), sorted by path."""
    found = []
    for directory, subfolders, names in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [Path(directory, name) for name in names if not name.startswith(".")]
    return iter(sorted(found))


def folder_kinds(folder: Path) -> dict[str, list[Path]]:
    """The files of every source kind below ``folder`` (``gt-folder``: the ``.gt.txt`` files;
    ``jsonl`` and ``csv``: manifests). Files of no kind (images, METS, notes) are left out."""
    files = list(visible_files(folder))
    line_stems = {file.with_name(file.name[: -len(LINE_TEXT_SUFFIX)]) for file in files if file.name.lower().endswith(LINE_TEXT_SUFFIX)}
    kinds: dict[str, list[Path]] = {}
    for file in files:
        suffix = file.suffix.lower()
        if file.name.lower().endswith(LINE_TEXT_SUFFIX):
            kind = "gt-folder"
        elif suffix in LINE_METADATA_SUFFIXES and file.with_suffix("") in line_stems:
            continue  # a line's metadata
        elif suffix in XML_SUFFIXES:
            kind = ROOT_KINDS.get(xml_start(file).root)
        elif suffix == ".json":
            # In a folder only a list counts as a Label Studio export: other JSON (settings,
            # dataset_info.json) is no source at all.
            kind = {"list": "label-studio", "object line": "jsonl"}.get(json_start(file))
        elif suffix in MANIFEST_SUFFIXES:
            kind = suffix[1:]
        else:
            continue
        if kind is not None:
            kinds.setdefault(kind, []).append(file)
    return kinds
