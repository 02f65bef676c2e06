"""Opening input files: only regular files are read, anything else is refused before it is opened."""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

# Opening a named pipe for reading waits for a writer, and a terminal could become the
# process's controlling one: opened these ways, neither can happen (where the system has them).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotARegularFile(OSError):
    """A path names something other than a regular file; ``kind`` says what ("a named pipe", ...)."""

    def __init__(self, kind: str):
        super().__init__(f"{kind}, not a regular file")
        self.kind = kind


def open_regular_file(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for binary reading if it is a regular file (symbolic links followed).

    Anything else raises ``NotARegularFile`` before it is opened: reading a named pipe waits for
    a writer forever, a device such as ``/dev/zero`` never ends, and opening some devices has
    effects of its own. The open file is checked again, in case the path was replaced in between.
    Other problems raise ``OSError`` as ``open`` does (``FileNotFoundError``, ...).
    """
    _refuse_non_regular(os.stat(path).st_mode)
    descriptor = os.open(path, _OPEN_FLAGS)
    try:
        _refuse_non_regular(os.fstat(descriptor).st_mode)
        if _OPEN_FLAGS & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path`` if it is a regular file (see ``open_regular_file``)."""
    with open_regular_file(path) as file:
        return file.read()


def _refuse_non_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise NotARegularFile(next((kind for test, kind in _KINDS if test(mode)), "a special file"))
