"""Warnings that point at the user's line, not at the library's inner call that noticed the problem."""

from __future__ import annotations

import sys
import warnings
from types import FrameType

_PACKAGE = __name__.partition(".")[0]


class Notice(UserWarning):
    """Something said for the user to know, not a problem (the command line shows it as a note)."""


def note(message: str) -> None:
    """``message`` said as a ``Notice``, attributed as ``warn`` attributes a warning."""
    warn(message, Notice)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message)`` attributed to the first caller outside this package, so Python
    shows the user's own call (``export(...)`` in their script) and its filter can match it."""
    # stacklevel 1 is this function, 2 its caller, and so on. Frames are told by their module's
    # name, not their file: a dataclass's generated __init__ has the file "<string>". The
    # package's context managers are entered through contextlib's frames.
    level = 2
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _inside(frame.f_globals.get("__name__", "")):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)


def _inside(module: str) -> bool:
    return module.partition(".")[0] == _PACKAGE or module == "contextlib"
