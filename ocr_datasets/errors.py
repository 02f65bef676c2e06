"""The errors this project raises for what a user can fix: a bad option, an input that cannot be
read as a whole, a batch in the way, a folder that cannot be written.

Each is also the built-in error it is a kind of (``ValueError``, ``FileNotFoundError``, ...), so
callers' ``except ValueError`` keeps working, and all share ``OcrDatasetsError``, which the CLI
prints as one line with exit status 2. Anything else is a bug, and the CLI lets its traceback show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .manifest import ExportResult


class OcrDatasetsError(Exception):
    """A problem the user can fix, said with its fix."""


class OptionError(OcrDatasetsError, ValueError):
    """An option or argument of a call that cannot be used as given."""


class InputError(OcrDatasetsError, ValueError):
    """An input that cannot be read as a whole (its kind cannot be told, its encoding is not UTF-8, ...)."""


class InputNotFoundError(OcrDatasetsError, FileNotFoundError):
    """An input, folder or batch that is not there."""


class NotAFolderError(OcrDatasetsError, NotADirectoryError):
    """A file where a folder is asked for."""


class BatchExistsError(OcrDatasetsError, FileExistsError):
    """A batch (or a folder that is not one) where an export would write."""


class ExportWriteError(OcrDatasetsError, OSError):
    """The export folder could not be written (full disk, no permission): nothing was published."""


class EngineError(OcrDatasetsError, RuntimeError):
    """The engine running an export's tasks failed (a Ray worker or node was lost): nothing was published."""


class InterruptedAfterPublishing(KeyboardInterrupt):
    """Ctrl-C once the export had published its batches: they are in place (``results``, one
    ``ExportResult`` a format), and only the tidying up after was cut short, which the next
    export finishes."""

    def __init__(self, results: list[ExportResult]):
        super().__init__(", ".join(result.export_path for result in results))
        self.results = results


def first_line(error: BaseException) -> str:
    """The first line of what ``error`` says (its type's name if it says nothing), for a message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
