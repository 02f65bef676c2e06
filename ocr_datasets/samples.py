"""The labeled sample: what every source yields and every later stage consumes."""

from __future__ import annotations

import copyreg
import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from .errors import OcrDatasetsError
from .files import NotARegularFile, read_regular_file
from .problems import (
    IMAGE_MISSING,
    IMAGE_NOT_FOUND,
    IMAGE_NOT_REGULAR_FILE,
    IMAGE_PATH_INVALID,
    IMAGE_UNREADABLE,
    INPUT_UNREADABLE,
    Problem,
)


def pickled_as_its_fields(item: Any) -> tuple:
    """The ``__reduce__`` of a slotted dataclass: its class called with its fields in order.
    Pickle's own way makes an empty object and sets its slots one by one, and for a frozen
    class calls ``dataclasses.fields`` for every object: most of the time a pass over packed
    samples took, twice what this takes. Only the package's own classes are: a caller's subclass
    may hold more than its fields or take other arguments, and is pickled pickle's own way."""
    cls = type(item)
    if cls not in _FIELD_VALUES:
        fields = dataclasses.fields(cls)
        whole = cls.__module__.partition(".")[0] == __name__.partition(".")[0] and not hasattr(item, "__dict__")
        whole = whole and all(each.init for each in fields)
        _FIELD_VALUES[cls] = attrgetter(*(each.name for each in fields)) if whole else None
    values = _FIELD_VALUES[cls]
    if values is None:
        return copyreg.__newobj__, (cls,), item.__getstate__()  # type: ignore[attr-defined]
    return cls, values(item)


_FIELD_VALUES: dict[type, attrgetter | None] = {}


@dataclass(slots=True)
class TrainingSample:
    """One labeled line or region.

    The fields are those of the original export service, so its callers keep working.
    ``image_bytes`` lets sources that crop or generate images in memory hand them over without
    touching the disk; when it is set, ``image_path`` only names the image (its suffix hints the
    format) and is never read.
    """

    id: str
    image_path: str | os.PathLike[str] | None
    ground_truth: str
    ocr_text: str | None = None
    ocr_confidence: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    image_bytes: bytes | None = None
    # Where the sample was read from ("samples.jsonl:3"), named in error messages, never exported.
    source: str | None = None

    def __reduce__(self):
        return pickled_as_its_fields(self)

    def __post_init__(self):
        # Taken as the bytes they hold: a memoryview cannot be pickled for a worker process.
        if isinstance(self.image_bytes, (bytearray, memoryview)):
            self.image_bytes = bytes(self.image_bytes)

    def read_image_bytes(self) -> bytes:
        if self.image_bytes is not None:
            return self.image_bytes
        if self.image_path is None:
            raise SampleError(
                self.id,
                "has no image (neither image_path nor image_bytes)",
                "give the path of its image file",
                code=IMAGE_MISSING,
            )
        # Problems name the file, not its folder: they end up in rejected.jsonl, which travels.
        try:
            path = os.fspath(self.image_path)
            if not isinstance(path, str):
                raise TypeError(path)
            name = os.path.basename(path)
            # Only a regular file is read: a named pipe would wait forever, /dev/zero never end.
            return read_regular_file(path)
        except TypeError:
            raise SampleError(
                self.id,
                f"image_path {self.image_path!r} is not a path",
                "give image_path as a string",
                code=IMAGE_PATH_INVALID,
            ) from None
        except FileNotFoundError:
            raise SampleError(
                self.id, f"image file not found: {name}", "fix image_path or restore the file", code=IMAGE_NOT_FOUND
            ) from None
        except NotARegularFile as error:
            raise SampleError(
                self.id,
                f"image_path is {error.kind}, not an image file: {name}",
                "point image_path at an image file",
                code=IMAGE_NOT_REGULAR_FILE,
            ) from None
        except OSError as error:
            raise SampleError(
                self.id,
                f"cannot read image {name}: {error.strerror}",
                "check the file's permissions",
                code=IMAGE_UNREADABLE,
            ) from None


class SampleError(OcrDatasetsError, ValueError):
    """A sample that cannot be exported: which one (its id, or where it stands in the input when
    it has no usable id), what is wrong, and what the user can do about it. ``codes`` says what
    is wrong as stable codes (``ocr_datasets.problems``), one per problem: a sample rejected by
    validation may have several, whose texts and fixes ``problem`` and ``fix`` join."""

    def __init__(
        self,
        sample_id: str | None,
        problem: str,
        fix: str,
        *,
        code: str = INPUT_UNREADABLE,
        location: str | None = None,
        sample_count: int = 1,
    ):
        self.codes: tuple[str, ...] = (code,)
        # How many input samples this stands for: a problem of a whole page file, the lines it holds.
        self.sample_count = sample_count
        # The message is written to rejected.jsonl and the terminal, which take only real
        # characters: a lone surrogate from the input (a broken JSON escape, a file name that is
        # not UTF-8) is shown as its escape instead.
        self.sample_id = None if sample_id is None else printable(sample_id)
        self.location = None if location is None else printable(location)
        self.problem = printable(problem)
        self.fix = printable(fix)
        if self.sample_id is None:
            subject = self.location
        else:
            subject = f"sample {self.sample_id!r}" + (f" ({self.location})" if self.location else "")
        super().__init__(f"{subject}: {self.problem} (fix: {self.fix})")

    def __reduce__(self):
        # Raised in a worker process (a datasets builder's), an error is pickled to the parent;
        # the default rebuilds it from its message alone, which __init__ refuses, and the pool
        # then waits forever for a result it can no longer receive.
        return _rebuilt_sample_error, (
            self.sample_id,
            self.problem,
            self.fix,
            self.codes,
            self.location,
            self.sample_count,
        )

    @classmethod
    def from_problems(
        cls, sample_id: str | None, problems: Sequence[Problem], *, location: str | None = None
    ) -> SampleError:
        """One error for every problem of one sample: their texts and fixes joined, every code kept."""
        error = cls(
            sample_id,
            "; ".join(problem.text for problem in problems),
            "; ".join(problem.fix for problem in problems),
            location=location,
        )
        error.codes = tuple(problem.code for problem in problems)
        return error

    @property
    def reason(self) -> str:
        """The problem without its particulars (the file, the value): what rejections have in
        common, for counting them. Several problems of one sample give the first one's."""
        return _PARTICULARS.split(self.problem, maxsplit=1)[0].strip()


# Where a problem's particulars start: "image file not found: a.png", "conflict: the same image
# as ...", "ocr_confidence 'x' is not a number" (a quoted value), "...; id is empty" (the next one).
_PARTICULARS = re.compile(r"[:;(']| \d")


def _rebuilt_sample_error(sample_id, problem, fix, codes, location, sample_count) -> SampleError:
    error = SampleError(sample_id, problem, fix, location=location, sample_count=sample_count)
    error.codes = codes
    return error


def printable(text: str) -> str:
    """``text`` with any lone surrogate written as its backslash escape (``\\udcdf``), so it can be encoded."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
