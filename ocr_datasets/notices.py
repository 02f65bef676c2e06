"""Warnings that point at the user's line, not at the library's inner call that noticed the problem."""

from __future__ import annotations

import sys
import warnings
from types import FrameType

_PACKAGE = __name__.partition(".")[0]


def warn(message: str) -> None:
    """``warnings.warn(message)`` attributed to the first caller outside this package, so Python
    shows the user's own call (``export(...)`` in their script) and its filter can match it."""
    # stacklevel 1 is this function, 2 its caller, and so on. Frames are told by their module's
    # name, not their file: a dataclass's generated __init__ has the file "<string>".
    level = 2
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == _PACKAGE:
        level, frame = level + 1, frame.f_back
    warnings.warn(message, UserWarning, stacklevel=level)
