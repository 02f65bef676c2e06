"""Telling what an input holds without reading it whole: which files of a folder count, and how a
JSON file starts (an XML file's root element: ``xml_common.xml_start``).

A ``.json`` file is a JSONL manifest when its first non-blank line is a whole JSON object (a
Label Studio export is one JSON list). Only the start of a file is read, so sniffing a folder of
large files costs little.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 8 * 1024


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


def visible_files(folder: Path, *, recursive: bool = True) -> Iterator[Path]:
    """Every file below ``folder`` (in it alone unless ``recursive``), hidden files and folders
    left out (macOS writes ``._name`` beside every file, and those are no sources), sorted by path."""
    found = []
    for directory, subfolders, names in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")] if recursive else []
        found += [Path(directory, name) for name in names if not name.startswith(".")]
    return iter(sorted(found))
