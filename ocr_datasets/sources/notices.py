"""What a source says about an input besides its samples: how much it read, and what held nothing.

Samples and ``SampleError``s are what the rest of the flow counts. A file or task that holds no
line, a file skipped in a folder, an image found under a name that differs in case: none of them
is a sample, and none may pass unmentioned. They are said once per input, when it has been read,
as a ``SourceNotice`` (a ``UserWarning``: shown on the terminal by default, like the library's other
warnings; ``warnings.simplefilter("ignore", SourceNotice)`` silences them). The notice is
attributed to the input it is about (its ``filename``), not to a line of this library:

    samples/OCR-D-GT-PAGE:0: SourceNotice: read 2 PAGE files holding 55 lines; nothing from PAGE_0001.xml (no TextLine)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..notices import Notice

# Beyond this many, a list of names ends in "and N more".
LISTED_NAMES = 10


class SourceNotice(Notice):
    """What a source read from one input, and what in it held nothing or was skipped."""


@dataclass
class ReadSummary:
    """Tallied while an input is read (``unit`` names what it consists of: "PAGE file", "task")."""

    input_path: Path
    unit: str
    units: int = 0
    lines: int = 0
    # "name (why)" of each file or task that gave no line.
    empty: list[str] = field(default_factory=list)
    # "name (why)" of each file of a folder left out although its name promised a source.
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        parts = [f"read {counted(self.units, self.unit)} holding {counted(self.lines, 'line')}"]
        if self.empty:
            parts.append(f"nothing from {listed(self.empty)}")
        if self.skipped:
            parts.append(f"skipped {listed(self.skipped)}")
        return "; ".join(parts + self.notes)

    def warn(self) -> None:
        # Shown every time (no registry): reading the same input twice says so twice.
        warnings.warn_explicit(self.text(), SourceNotice, os.fspath(self.input_path), 0)


def counted(count: int, noun: str) -> str:
    """``1 line``, ``2 lines``, ``3 PAGE files``."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def listed(names: Sequence[str], limit: int = LISTED_NAMES) -> str:
    """``a, b and c``; past ``limit`` names, ``a, b, ... and 7 more``."""
    if len(names) <= 1:
        return "".join(names)
    if len(names) > limit:
        return f"{', '.join(names[:limit])} and {len(names) - limit} more"
    return f"{', '.join(names[:-1])} and {names[-1]}"
