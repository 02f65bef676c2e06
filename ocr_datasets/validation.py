"""Validation before anything is written: every sample is exported, or rejected with its reason."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.abc
import io
import itertools
import math
import multiprocessing
import multiprocessing.pool
import re
import signal
import sys
import unicodedata
import warnings
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar, cast

import PIL
from PIL import Image, UnidentifiedImageError

from .errors import OcrDatasetsError, OptionError
from .images import expected_format, frame_count, identify, opened_format, reading_problem
from .ledger import Ledger
from .packed import BLOCK_SIZE, PackedSamples
from .privacy import bytes_to_export, holds_private_metadata
from .problems import (
    CONFIDENCE_NOT_NUMBER,
    CONFIDENCE_OUT_OF_RANGE,
    DUPLICATE_CONFLICT,
    ID_EMPTY,
    ID_LONE_SURROGATE,
    ID_NOT_STRING,
    ID_REPEATED,
    IMAGE_BYTES_NOT_BYTES,
    IMAGE_DAMAGED,
    IMAGE_DECOMPRESSION_BOMB,
    IMAGE_EMPTY,
    IMAGE_MISNAMED,
    IMAGE_MULTI_FRAME,
    IMAGE_NOT_AN_IMAGE,
    IMAGE_TOO_SMALL,
    METADATA_GROUP_KEY_MISSING,
    METADATA_KEY_NOT_STRING,
    METADATA_LONE_SURROGATE,
    METADATA_NOT_JSON,
    METADATA_NOT_OBJECT,
    METADATA_TOO_DEEP,
    TEXT_CONTROL_CHARACTER,
    TEXT_EMPTY,
    TEXT_LONE_SURROGATE,
    TEXT_MISSING,
    TEXT_NOT_STRING,
    Problem,
)
from .progress import progress_bar
from .samples import SampleError, TrainingSample, pickled_as_its_fields, printable
from .verdicts import Verdict, VerdictCache
from .workers import worker_count

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

# What validation remembers of every sample, in its scratch folder.
LEDGER_NAME = "seen.sqlite"
# Smaller than this, an image holds no legible text: a mis-crop or a placeholder.
MIN_IMAGE_SIDE = 4


# The version of the rules that decide whether an image passes: verdicts cached under another
# version are not used. Raise it whenever an image check is added or changed.
IMAGE_RULES_VERSION = 1


@dataclass(frozen=True, slots=True)
class CheckedSample:
    """A sample that passed validation, its texts normalised, with what validation learnt of its
    image, and ``row``: its place among the samples validation checked, which is where
    ``keep_image`` received its image's bytes."""

    sample: TrainingSample
    image_sha256: str
    image: Verdict
    row: int

    def __reduce__(self):
        return pickled_as_its_fields(self)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


# Where a checked image's bytes went: (chunk, row) of the rows ``ImageKeeper.spool`` wrote.
SpooledRow = tuple[int, int]


class Pending(Protocol[T_co]):
    """A task's result to come (``multiprocessing``'s ``AsyncResult``, or one computed already)."""

    def ready(self) -> bool: ...

    def get(self) -> T_co: ...


class Tasks(Protocol):
    """Somewhere tasks run besides this process: a pool's processes, a Ray cluster."""

    # How many tasks run at once there; how many images a task checks; whether a chunk's
    # parquet is written where its files are (a cluster's tasks: its rows need not travel back
    # to this process), else this process writes it from the projected rows.
    parallelism: int
    chunk_size: int
    writes_parquet: bool

    def submit(self, function: Callable[[Any], T], argument: Any, *, retriable: bool = False) -> Pending[T]:
        """Run a module-level ``function`` on a picklable ``argument`` in a worker process;
        ``retriable``: it may run again if that process dies (it does nothing twice that
        another run would not redo the same way)."""
        ...


class TaskEngine(Protocol):
    """An engine other than this machine's process pool (see ``ray_engine.RayEngine``)."""

    def tasks(self, folder: Path | None) -> AbstractContextManager[Tasks]:
        """The engine started for as long as the block runs (its own files, if it keeps any, in
        ``folder``); already started, used as it is."""
        ...


class Workers(Tasks, Protocol):
    """Validation's worker processes, as an ``ImageKeeper`` may use them besides; or none
    (``in_this_process``: what is submitted runs here, at once)."""

    in_this_process: bool


class ImageKeeper(Protocol):
    """What takes the images of the samples that pass (an export's writer): ``spool`` runs in
    the worker process that checked a chunk of images, and receives the chunk's number and the
    passing samples with the bytes an export writes (so the bytes never travel back to this
    process); ``keep`` receives each sample that passed, in order, with where its bytes went;
    ``using`` is entered once the workers run, and left (with its work done) before they stop."""

    @property
    def spool(self) -> Callable[[int, list[tuple[CheckedSample, bytes]]], None]: ...

    def keep(self, checked: CheckedSample, spooled: SpooledRow, decoded: bool, first_of_image: bool) -> None: ...

    def using(self, workers: Workers) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class ImageCheck:
    """How images are checked, sent to the worker processes with their samples: whether private
    metadata is kept, where the bytes an export writes go (``spool``: see ``ImageKeeper``), and
    the verdict cache to consult."""

    keep_image_metadata: bool = False
    spool: Callable[[int, list[tuple[CheckedSample, bytes]]], None] | None = None
    verdicts: VerdictCache | None = None

    def context(self) -> str:
        """What a verdict depends on besides the image's bytes."""
        return f"rules {IMAGE_RULES_VERSION}; Pillow {PIL.__version__}; keep_image_metadata {self.keep_image_metadata}"


class _ImageResult(NamedTuple):
    """A checked image: its verdict or problem, its sha256, where the bytes an export writes were
    spooled (if they were), and whether it was decoded (or its verdict came from the cache)."""

    outcome: Verdict | Problem
    sha256: str | None = None
    spooled: SpooledRow | None = None
    decoded: bool = False


@dataclass
class ValidationReport:
    """What validation made of the input: ``input_count = exported + rejected + duplicates`` of
    ``counts``, where a rejection of a whole page file counts the lines it holds."""

    accepted: PackedSamples[CheckedSample] = field(default_factory=PackedSamples)
    rejected: list[SampleError] = field(default_factory=list)
    # (id of the dropped sample, id of the identical sample that is exported)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    input_count: int = 0
    # Images decoded, and images whose verdict the cache gave instead.
    images_decoded: int = 0
    verdicts_reused: int = 0

    @property
    def counts(self) -> dict[str, int]:
        # In samples: a rejected page file counts the lines it holds.
        rejected = sum(error.sample_count for error in self.rejected)
        return {
            "input": self.input_count,
            "exported": len(self.accepted),
            "rejected": rejected,
            "duplicates": len(self.duplicates),
        }


class ValidationError(OcrDatasetsError, ValueError):
    """Raised in strict mode: one report naming every problem by sample, with its fix."""

    def __init__(self, report: ValidationReport):
        self.report = report
        if not report.input_count:
            super().__init__(
                "the input holds no samples (an empty manifest, only blank lines, or a CSV header without rows): "
                "nothing was written"
            )
            return
        lines = [f"{report.counts['rejected']} of {report.input_count} samples are not valid; nothing was written:"]
        lines += [f"  - {problem}" for problem in report.rejected]
        if report.accepted:
            lines.append(
                "Fix them, or export the valid samples and list these in rejected.jsonl with skip_invalid=True "
                "(--skip-invalid)."
            )
        super().__init__("\n".join(lines))


# Runs of these collapse to one space. Other spaces (no-break U+00A0, narrow no-break U+202F,
# ideographic U+3000, thin U+2009, ...) are typography the transcriber chose, and are kept.
_COLLAPSED_WHITESPACE = re.compile(r"[ \t\n\r]+")
# Control characters other than tab, line feed and carriage return, the line and paragraph
# separators, and lone surrogates (half of a broken escape such as "\ud800", not a character).
_REFUSED_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Deeper metadata is a mistake, and hundreds of levels cannot even be pickled for a worker.
MAX_METADATA_DEPTH = 32


# The forms unicodedata.normalize takes.
_UnicodeForm = Literal["NFC", "NFD", "NFKC", "NFKD"]


def normalize_text(text: str, form: str) -> str:
    """Unicode normalisation (``form``: NFC, NFD, NFKC or none), then runs of spaces, tabs and
    line breaks collapsed to one space and trimmed; other spaces are kept as they are."""
    if form != "none":
        # check_normalization has let only NFC, NFD and NFKC (and none) through.
        text = unicodedata.normalize(cast(_UnicodeForm, form), text)
    return _COLLAPSED_WHITESPACE.sub(" ", text).strip(" ")


def validate(
    items: Iterable[TrainingSample | SampleError],
    *,
    normalize: str = "NFC",
    keep_duplicates: bool = False,
    group_by: str | None = None,
    num_proc: int | None = None,
    keep_image_metadata: bool = False,
    verdicts: VerdictCache | None = None,
    keep_image: ImageKeeper | None = None,
    scratch: Path | None = None,
    engine: TaskEngine | None = None,
) -> ValidationReport:
    """Check every sample (see the README's validation table) and de-duplicate.

    ``items`` may hold ``SampleError`` objects for records a source could not read; they are
    rejected like any other problem. Identical image bytes with identical text are exported once
    (unless ``keep_duplicates``); the same image with different texts is a conflict, and every
    sample of it is rejected, since picking one would be a silent guess. Images are decoded in
    ``num_proc`` processes (``None``: one per core), at most one per 500 images, since decoding
    is most of validation's time. An image whose verdict ``verdicts`` holds is not decoded again
    (``images_decoded`` and ``verdicts_reused`` of the report count both).

    Each image is read once. ``keep_image`` (see ``ImageKeeper``) has the bytes an export writes
    (the very bytes that were checked, cleaned of private metadata unless
    ``keep_image_metadata``) spooled where they were checked, and receives every sample that
    passed its checks, in order, with where its bytes went, whether they were decoded now (so
    that their verdict, ``CheckedSample.image``, is new to the cache), and whether the sample is
    the first of its image (a later one is a duplicate, or in conflict, unless
    ``keep_duplicates``).

    ``items`` is read as it is checked and the accepted samples are held packed
    (``PackedSamples``), so a source of a million samples is never in memory at once. With a
    ``scratch`` folder (an export's staging folder), what validation remembers of every sample
    (its id, its image, the packed samples) is kept in files there, and memory stays flat
    however many samples there are.

    With an ``engine`` (``ray_engine.RayEngine``), the images are checked in its tasks however
    few they are, and ``keep_image`` uses them: the report is the one the local pool gives.
    """
    report = ValidationReport()
    # Each id with where its first sample was read from (named when another sample repeats the
    # id), and each image with its first sample: on disk in ``scratch`` if given.
    checked: PackedSamples[CheckedSample] = PackedSamples(spill_to=scratch)
    images = _SharedImages()
    group_key = _GroupKeyWatch(group_by)
    total = len(items) if isinstance(items, Sized) else None
    pending = iter(items)
    first_items = list(itertools.islice(pending, _WINDOW))
    # The pool is sized by the first items, and started before the progress bar's thread.
    first_count = sum(not isinstance(item, SampleError) for item in first_items)
    check = ImageCheck(keep_image_metadata, None if keep_image is None else keep_image.spool, verdicts)
    with (
        closing(Ledger(None if scratch is None else scratch / LEDGER_NAME)) as seen,
        _image_checker(num_proc, first_count, check, engine, scratch) as (check_images, workers),
        keep_image.using(workers) if keep_image is not None else nullcontext(),
        progress_bar(total=total, desc="Validating samples", unit=" samples") as progress,
    ):
        checked_items = _checked_items(itertools.chain(first_items, pending), check_images, normalize, group_by, seen)
        for item, fields, image in checked_items:
            progress.update(1)
            if isinstance(item, SampleError):
                report.input_count += item.sample_count
                report.rejected.append(item)
                continue
            assert fields is not None
            report.input_count += 1
            group_key.see(item)
            if image is not None and image.sha256 is not None:
                report.images_decoded += image.decoded
                report.verdicts_reused += not image.decoded
            result = _checked_sample(item, fields, image, len(checked))
            if isinstance(result, SampleError):
                report.rejected.append(result)
                continue
            first_of_image = images.add(len(checked), result, seen)
            if keep_image is not None:
                assert image is not None and image.spooled is not None
                keep_image.keep(result, image.spooled, image.decoded, first_of_image)
            checked.append(result)
    group_key.check()
    images.sort_out(checked, report, keep_duplicates, scratch)
    return report


# Samples read before the pool is started, to size it.
_WINDOW = 4 * BLOCK_SIZE
# Images are sent to the pool in chunks, a bounded number of chunks ahead of the one whose
# results are being used: enough that no worker waits while the main process writes, few
# enough that the images waiting to be written stay a few megabytes.
_CHUNK = 128
_CHUNKS_AHEAD = 6


def _checked_items(
    items: Iterable[TrainingSample | SampleError],
    check_images: Callable[[Iterator[_ToCheck]], Iterable[_ImageResult]],
    form: str,
    group_by: str | None,
    seen: Ledger,
) -> Iterator[tuple[TrainingSample | SampleError, _Fields | None, _ImageResult | None]]:
    """Each item in order with its fields checked (None for a source's ``SampleError``) and its
    image's result (None if it was not checked). Fields are checked here, in order (ids are
    compared with those before them); images by ``check_images``, which reads the samples whose
    image can be checked as it needs them."""
    waiting: deque[tuple[TrainingSample | SampleError, _Fields | None, bool]] = deque()

    def checkable() -> Iterator[_ToCheck]:
        for read in items:
            fields = None if isinstance(read, SampleError) else _checked_fields(read, form, group_by, seen)
            # A sample whose metadata cannot be stored may not even pickle for a worker process
            # (nested hundreds deep, or holding objects), and image_bytes that are not bytes
            # cannot be opened: such samples are rejected for that without their image decoded.
            image_checkable = fields is not None and fields.image_checkable
            # The worker spools a passing sample's row as it is exported: its texts normalised.
            item = _with_fields(read, fields) if fields is not None and not fields.problems else read
            waiting.append((item, fields, image_checkable))
            if image_checkable:
                assert isinstance(item, TrainingSample) and fields is not None
                yield item, not fields.problems

    for image in check_images(checkable()):
        while True:
            item, fields, image_checkable = waiting.popleft()
            if image_checkable:
                yield item, fields, image
                break
            yield item, fields, None
    while waiting:
        item, fields, _ = waiting.popleft()
        yield item, fields, None


class _GroupKeyWatch:
    """Whether any sample's metadata has the ``group_by`` key. When none has it, the key is
    misspelt or the wrong one: one message naming the keys there are, rather than one per sample."""

    def __init__(self, group_by: str | None):
        self.group_by = group_by
        self.found = group_by is None
        self.samples_seen = False
        self.keys: set[str] = set()

    def see(self, sample: TrainingSample) -> None:
        if self.found or not isinstance(sample.metadata, dict):
            return
        self.samples_seen = True
        self.found = self.group_by in sample.metadata
        self.keys.update(sample.metadata)

    def check(self) -> None:
        if not self.found and self.samples_seen:
            raise OptionError(
                f"no sample's metadata has {self.group_by!r} to group the split by (group_by, --group-by): "
                f"the metadata keys are {', '.join(sorted(self.keys)) or 'none'}; group by one of them"
            )


# Below this many images a pool costs more than it saves.
_MIN_IMAGES_PER_PROCESS = 500


# A sample whose image is to be checked, and whether its other fields passed (so that its row
# may be spooled).
_ToCheck = tuple[TrainingSample, bool]


@contextmanager
def _image_checker(
    num_proc: int | None, sample_count: int, check: ImageCheck, engine: TaskEngine | None, scratch: Path | None
) -> Iterator[tuple[Callable[[Iterator[_ToCheck]], Iterable[_ImageResult]], Workers]]:
    """A function giving the results of ``_checked_image`` for samples, in order, checked a
    chunk at a time (the chunks numbered from 0) in the ``engine``'s tasks, or in a pool of
    processes if ``sample_count`` samples pay for one, and those as ``Workers`` (or this process)."""
    checked_chunk = functools.partial(_checked_chunk, check=check)
    if engine is not None:
        with engine.tasks(scratch) as tasks:
            workers = TaskWorkers(tasks)
            yield workers.checker(checked_chunk), workers
        return
    processes = worker_count(num_proc, sample_count // _MIN_IMAGES_PER_PROCESS)
    if processes < 2:

        def serial(samples: Iterator[_ToCheck]) -> Iterator[_ImageResult]:
            for numbered in _numbered_chunks(samples, _CHUNK):
                yield from checked_chunk(numbered)

        yield serial, _NoWorkers()
        return
    # The platform's start method, or the one the program chose: fork on Linux (before Python
    # 3.14), spawn on macOS (where a forked process may crash in system frameworks) and on
    # Windows (which has no fork). datasets' own pool starts its workers the same way. A spawned
    # worker imports this module afresh and is sent each sample pickled (a CroppedSample with
    # its CropOptions too), so neither may depend on what the parent process holds.
    with _Pool(
        processes, initializer=_start_worker, initargs=(check.spool is not None,), context=multiprocessing.get_context()
    ) as pool:
        workers = TaskWorkers(_PoolTasks(pool, processes))
        yield workers.checker(checked_chunk), workers


def _numbered_chunks(samples: Iterator[_ToCheck], size: int) -> Iterator[tuple[int, list[_ToCheck]]]:
    """``samples`` ``size`` at a time, the chunks numbered from 0 (their rows' spool files)."""
    return enumerate(iter(lambda: list(itertools.islice(samples, size)), []))


class _Pool(multiprocessing.pool.Pool):
    """multiprocessing's pool, whose thread that keeps the workers going wakes when a worker
    exits or the pool changes state, not also whenever a result waits to be read: until the
    pool's result thread had read it, that thread went round its loop without pause, taking
    0.15 s of CPU, and the GIL, from this process in a re-export of 10,000 lines."""

    def _get_sentinels(self):
        # The pool's own list (its result queue and its change notifier) less the result
        # queue: the notifier also tells the thread when the last task is done.
        return [self._change_notifier._reader]  # type: ignore[attr-defined]


class _PoolTasks:
    """A process pool's processes as ``Tasks`` (a process that dies takes its task with it)."""

    chunk_size = _CHUNK
    writes_parquet = False

    def __init__(self, pool: multiprocessing.pool.Pool, processes: int):
        self._pool = pool
        self.parallelism = processes

    def submit(self, function: Callable[[Any], T], argument: Any, *, retriable: bool = False) -> Pending[T]:
        return self._pool.apply_async(function, (argument,))


class TaskWorkers:
    """``Tasks`` as ``Workers``, and the chunks of images sent to them whose results this
    process has not taken yet (``ahead``), in order."""

    in_this_process = False

    def __init__(self, tasks: Tasks):
        self._tasks = tasks
        self.parallelism = tasks.parallelism
        self.chunk_size = tasks.chunk_size
        self.writes_parquet = tasks.writes_parquet
        self.ahead: deque[Pending[list[_ImageResult]]] = deque()
        # Enough chunks out that no worker waits while this process writes (one queued for each
        # besides the one it runs), few enough that the images waiting to be written stay a few
        # megabytes a worker.
        self._chunks_ahead = max(2 * tasks.parallelism, _CHUNKS_AHEAD * _CHUNK // tasks.chunk_size)

    def submit(self, function: Callable[[Any], T], argument: Any, *, retriable: bool = False) -> Pending[T]:
        return self._tasks.submit(function, argument, retriable=retriable)

    def checker(
        self, checked_chunk: Callable[[tuple[int, list[_ToCheck]]], list[_ImageResult]]
    ) -> Callable[[Iterator[_ToCheck]], Iterator[_ImageResult]]:
        """The results of ``checked_chunk`` for samples, in order, a chunk a task."""

        def checked(samples: Iterator[_ToCheck]) -> Iterator[_ImageResult]:
            for numbered in _numbered_chunks(samples, self._tasks.chunk_size):
                # Checking a chunk again rewrites its spool file the same way.
                self.ahead.append(self._tasks.submit(checked_chunk, numbered, retriable=True))
                if len(self.ahead) > self._chunks_ahead:
                    yield from self.ahead.popleft().get()
            while self.ahead:
                yield from self.ahead.popleft().get()

        return checked


class _NoWorkers:
    """``Workers`` when validation runs in this process alone."""

    parallelism = 1
    chunk_size = _CHUNK
    writes_parquet = False
    in_this_process = True

    def submit(self, function: Callable[[Any], T], argument: Any, *, retriable: bool = False) -> Pending[T]:
        return run_here(function, argument)


def run_here(function: Callable[[Any], T], argument: Any) -> Pending[T]:
    """``function`` run at once, in this process, as ``Workers.submit`` would run it."""
    return _Done(function(argument))


class _Done(Generic[T_co]):
    """A result computed already (see ``run_here``)."""

    def __init__(self, value: T_co):
        self._value = value

    def ready(self) -> bool:
        return True

    def get(self) -> T_co:
        return self._value


def _checked_chunk(numbered: tuple[int, list[_ToCheck]], check: ImageCheck) -> list[_ImageResult]:
    """``_checked_image`` of each sample of a chunk; with a ``spool``, the rows of the samples
    that passed (and whose other fields passed) are handed to it with the bytes an export
    writes, and each result says where its row went."""
    number, chunk = numbered
    results: list[_ImageResult] = []
    spooled: list[tuple[CheckedSample, bytes]] = []
    for sample, fields_passed in chunk:
        result, exported = _checked_image(sample, check)
        if check.spool is not None and fields_passed and exported is not None:
            assert isinstance(result.outcome, Verdict) and result.sha256 is not None
            spooled.append((CheckedSample(sample, result.sha256, result.outcome, -1), exported))
            result = result._replace(spooled=(number, len(spooled) - 1))
        results.append(result)
    if spooled:
        assert check.spool is not None
        check.spool(number, spooled)
    return results


def _start_worker(builds_arrow_rows: bool) -> None:
    _leave_interrupts_to_the_main_process()
    if builds_arrow_rows:
        _spare_pyarrow_the_pandas_import()


def _spare_pyarrow_the_pandas_import() -> None:
    # pyarrow imports pandas (0.3 s) the first time it builds an array from Python objects, only
    # to ask whether they are pandas objects, which a worker's rows never are. Asked once with
    # pandas out of reach, pyarrow answers no from then on, and still imports pandas where it
    # needs it (to_pandas). Not in the main process: a caller's own arrays may be pandas objects.
    if "pandas" in sys.modules:
        return
    import pyarrow

    sys.meta_path.insert(0, _NO_PANDAS)
    try:
        # pyarrow takes the ImportError as "no pandas"; should a version not, it asks again later.
        with suppress(ImportError):
            pyarrow.array([0])
    finally:
        sys.meta_path.remove(_NO_PANDAS)


class _NoPandasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] == "pandas":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


_NO_PANDAS = _NoPandasFinder()


def _leave_interrupts_to_the_main_process() -> None:
    # Ctrl-C reaches every process of the terminal's group. A worker that raised
    # KeyboardInterrupt would print its traceback and lose its share of the images, and the
    # pool would wait for them forever; the main process alone stops, and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _SharedImages:
    """Which checked samples share an image, remembered compactly while validation streams: per
    sample the first sample of its image and a digest of its text. The samples of an image
    either all have the text of its first sample, or the image is in conflict."""

    def __init__(self):
        self._first: array = array("q")
        self._text_digests: array = array("Q")
        self._conflicted: set[int] = set()

    def add(self, index: int, item: CheckedSample, seen: Ledger) -> bool:
        """Remember the sample ``index``, its image (the first 16 bytes of its sha256) with its
        first sample in ``seen``; whether it is the first of its image."""
        _, first = seen.remember("images", bytes.fromhex(item.image_sha256[:32]), index)
        self._first.append(first)
        self._text_digests.append(_text_digest(item.sample.ground_truth))
        if self._text_digests[index] != self._text_digests[first]:
            self._conflicted.add(first)
        return first == index

    def sort_out(
        self,
        checked: PackedSamples[CheckedSample],
        report: ValidationReport,
        keep_duplicates: bool,
        scratch: Path | None,
    ) -> None:
        """Fill ``report.accepted`` in input order, rejecting conflicts and dropping duplicates
        (held in ``scratch`` if given, as ``checked`` is)."""
        # The first samples of images that other samples share.
        shared = {first for index, first in enumerate(self._first) if first != index}
        if not self._conflicted and (keep_duplicates or not shared):
            report.accepted = checked
            return
        in_conflict: dict[int, list[CheckedSample]] = {}
        if self._conflicted:
            for index, item in enumerate(checked):
                if self._first[index] in self._conflicted:
                    in_conflict.setdefault(self._first[index], []).append(item)
        kept_ids: dict[int, str] = {}
        report.accepted = PackedSamples(spill_to=scratch)
        for index, item in enumerate(checked):
            first = self._first[index]
            if first in in_conflict:
                others = [other for other in in_conflict[first] if other.sample.id != item.sample.id]
                described = ", ".join(f"{other.sample.id!r} ({other.sample.ground_truth!r})" for other in others)
                report.rejected.append(
                    SampleError(
                        item.sample.id,
                        f"conflict: the same image as {described} with another text ({item.sample.ground_truth!r})",
                        "decide which transcription is right and correct or remove the others",
                        code=DUPLICATE_CONFLICT,
                        location=item.sample.source,
                    )
                )
            elif first != index and not keep_duplicates:
                report.duplicates.append((item.sample.id, kept_ids[first]))
            else:
                if index in shared:
                    kept_ids[index] = item.sample.id
                report.accepted.append(item)


def _text_digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


@dataclass(slots=True)
class _Fields:
    """What validation made of a sample's fields other than its image."""

    values: dict
    problems: list[Problem]
    image_checkable: bool


def _checked_fields(sample: TrainingSample, form: str, group_by: str | None, seen: Ledger) -> _Fields:
    problems: list[Problem] = []
    if not isinstance(sample.id, str):
        problems.append(
            Problem(
                ID_NOT_STRING,
                f"id is not a string ({type(sample.id).__name__} {_shown(sample.id)})",
                "give every sample's id as a string",
            )
        )
    elif not sample.id.strip():
        problems.append(Problem(ID_EMPTY, "id is empty", "give every sample a non-empty id"))
    elif LONE_SURROGATE.search(sample.id):
        problems.append(surrogate_problem(ID_LONE_SURROGATE, sample.id, "id"))
    else:
        # Where it was read, as the ledger can store it past its first keys (sqlite takes no lone
        # surrogate, which a file name that is not UTF-8 holds).
        source = None if sample.source is None else printable(str(sample.source))
        new, first = seen.remember("ids", sample.id, source)
        if not new:
            problems.append(
                Problem(
                    ID_REPEATED,
                    f"id is used by an earlier sample{f' ({first})' if first else ''}",
                    "give every sample its own id",
                )
            )

    ground_truth, problem = _checked_text(sample.ground_truth, form, "ground_truth")
    if problem:
        problems.append(problem)
    elif not ground_truth:
        problems.append(
            Problem(
                TEXT_EMPTY, "ground_truth is empty (or only whitespace)", "transcribe the line, or leave the sample out"
            )
        )
    ocr_text, problem = (
        _checked_text(sample.ocr_text, form, "ocr_text") if sample.ocr_text is not None else (None, None)
    )
    if problem:
        problems.append(problem)
    confidence, problem = _checked_confidence(sample.ocr_confidence)
    if problem:
        problems.append(problem)
    metadata_problem = _metadata_problem(sample.metadata)
    if metadata_problem:
        problems.append(metadata_problem)
    elif group_by is not None and sample.metadata.get(group_by) is None:
        problems.append(
            Problem(
                METADATA_GROUP_KEY_MISSING,
                f"metadata has no {group_by!r} to group the split by",
                f"add {group_by!r} to its metadata, or group by another key",
            )
        )
    image_readable = sample.image_bytes is None or isinstance(sample.image_bytes, bytes)
    if not image_readable:
        problems.append(
            Problem(
                IMAGE_BYTES_NOT_BYTES,
                f"image_bytes is not bytes ({type(sample.image_bytes).__name__})",
                "give image_bytes as the image file's bytes, or give image_path",
            )
        )
    values = {"id": sample.id, "ground_truth": ground_truth, "ocr_text": ocr_text, "ocr_confidence": confidence}
    return _Fields(values, problems, image_readable and metadata_problem is None)


def _checked_sample(
    sample: TrainingSample, fields: _Fields, image: _ImageResult | None, row: int
) -> CheckedSample | SampleError:
    """The sample checked, from its fields and its image (None: not checked, for the fields' problems)."""
    problems = fields.problems
    if image is not None and isinstance(image.outcome, Problem):
        problems = [*problems, image.outcome]
    if problems:
        sample_id = sample.id if isinstance(sample.id, str) else _shown(sample.id)
        return SampleError.from_problems(sample_id, problems, location=sample.source)
    # Only a sample whose fields have problems goes unchecked (None): this one's image was checked.
    assert image is not None and isinstance(image.outcome, Verdict) and image.sha256 is not None
    return CheckedSample(sample, image.sha256, image.outcome, row)


def _with_fields(sample: TrainingSample | SampleError, fields: _Fields) -> TrainingSample:
    """``sample`` with its fields as validation made them (copied only where it changed
    something: most samples pass unchanged)."""
    assert isinstance(sample, TrainingSample)
    changed = {
        name: value
        for name, value in fields.values.items()
        if type(value) is not type(getattr(sample, name)) or value != getattr(sample, name)
    }
    return dataclasses.replace(sample, **changed) if changed else sample


def _checked_text(text, form: str, name: str) -> tuple[str | None, Problem | None]:
    if text is None:
        return None, Problem(TEXT_MISSING, f"{name} is missing", f"add {name} to the record")
    if not isinstance(text, str):
        return None, Problem(TEXT_NOT_STRING, f"{name} is not text ({type(text).__name__})", f"give {name} as a string")
    if _REFUSED_CHARACTERS.search(text):
        if LONE_SURROGATE.search(text):
            return None, surrogate_problem(TEXT_LONE_SURROGATE, text, name)
        controls = sorted({f"U+{ord(char):04X}" for char in _REFUSED_CHARACTERS.findall(text)})
        return None, Problem(
            TEXT_CONTROL_CHARACTER,
            f"{name} contains control characters ({', '.join(controls)})",
            f"remove them from {name}",
        )
    return normalize_text(text, form), None


def surrogate_problem(code: str, text: str, name: str) -> Problem:
    halves = sorted({f"U+{ord(char):04X}" for char in LONE_SURROGATE.findall(text)})
    return Problem(
        code,
        f"{name} holds a lone surrogate ({', '.join(halves)}), half of a character's escape and no character itself",
        f"correct the \\u escape in {name}: "
        "a character beyond U+FFFF needs both halves of its pair, or write the character itself",
    )


def _shown(value) -> str:
    """``repr`` of a value, short even for a number of thousands of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"(a number of about {int(value.bit_length() * math.log10(2)) + 1:,} digits)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _checked_confidence(value) -> tuple[float | None, Problem | None]:
    if value is None:
        return None, None
    fix = "give a number between 0 and 1, or leave ocr_confidence out"
    if isinstance(value, bool):
        return None, Problem(CONFIDENCE_NOT_NUMBER, f"ocr_confidence {value!r} is not a number", fix)
    try:
        confidence = float(value)
    except OverflowError:
        return None, Problem(CONFIDENCE_OUT_OF_RANGE, f"ocr_confidence {_shown(value)} is outside [0, 1]", fix)
    except (TypeError, ValueError):
        return None, Problem(CONFIDENCE_NOT_NUMBER, f"ocr_confidence {_shown(value)} is not a number", fix)
    if math.isnan(confidence) or not 0.0 <= confidence <= 1.0:
        return None, Problem(CONFIDENCE_OUT_OF_RANGE, f"ocr_confidence {_shown(value)} is outside [0, 1]", fix)
    return confidence, None


def _metadata_problem(metadata) -> Problem | None:
    if not isinstance(metadata, dict):
        return Problem(
            METADATA_NOT_OBJECT,
            f"metadata is not a JSON object ({type(metadata).__name__})",
            'give metadata as an object such as {"page": 3}',
        )
    return _json_value_problem(metadata, "metadata", 0)


def _json_value_problem(value, where: str, depth: int) -> Problem | None:
    """Why ``value`` (found at ``where``) cannot be stored as JSON text, or None."""
    if depth > MAX_METADATA_DEPTH:
        return Problem(
            METADATA_TOO_DEEP,
            f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels (at {where})",
            "flatten the metadata",
        )
    fix = "use only strings, numbers, booleans, null, lists and objects with string keys"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return Problem(
                    METADATA_KEY_NOT_STRING,
                    f"metadata key {_shown(key)} at {where} is not a string",
                    "use strings as metadata keys",
                )
            problem = _json_value_problem(key, where, depth) or _json_value_problem(item, f"{where}.{key}", depth + 1)
            if problem:
                return problem
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = _json_value_problem(item, f"{where}[{index}]", depth + 1)
            if problem:
                return problem
    elif isinstance(value, str):
        if LONE_SURROGATE.search(value):
            return surrogate_problem(METADATA_LONE_SURROGATE, value, where)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return Problem(METADATA_NOT_JSON, f"{where} is {value}, which JSON cannot store", fix)
    elif isinstance(value, int) or value is None:
        if isinstance(value, int) and value.bit_length() > 10_000:
            return Problem(METADATA_NOT_JSON, f"{where} is {_shown(value)}", "store such a number as a string")
    else:
        return Problem(METADATA_NOT_JSON, f"{where} is a {type(value).__name__}, which JSON cannot store", fix)
    return None


def _open_image(data: bytes, named: str | None) -> Image.Image:
    # Pillow tries its formats in turn, and three that accept any bytes (IM, IMT, IPTC) come
    # before TIFF: trying the format the file's name promises first saves ~10 % of a TIFF
    # line's validation. Any other content still opens, and is then reported as misnamed.
    if named:
        try:
            return Image.open(io.BytesIO(data), formats=[named])
        except UnidentifiedImageError:
            pass
    return Image.open(io.BytesIO(data))


def _checked_image(sample: TrainingSample, check: ImageCheck) -> tuple[_ImageResult, bytes | None]:
    """The image of ``sample`` read once, and its verdict: from the cache if it knows these bytes,
    else from decoding them in full; or its problem. With the verdict, the bytes an export writes."""
    try:
        data = sample.read_image_bytes()
    except SampleError as error:
        # Reading an image fails for one reason: its error has one code.
        return _ImageResult(Problem(error.codes[0], error.problem, error.fix)), None
    if not data:
        return _ImageResult(Problem(IMAGE_EMPTY, "image file is empty (0 bytes)", _REPLACE_IMAGE)), None
    sha256 = hashlib.sha256(data).hexdigest()
    named = expected_format(sample.image_path)
    verdict = check.verdicts.lookup(sha256) if check.verdicts is not None else None
    exported = None
    if verdict is not None:
        exported = bytes_to_export(data, verdict.holds_private_metadata, check.keep_image_metadata)
        if _sha256_of(exported, data, sha256) != verdict.exported_sha256:
            # Cleaned otherwise than when the verdict was made: decided afresh.
            verdict = None
    decoded = verdict is None
    if verdict is None:
        outcome = _image_verdict(data, sha256, named, check.keep_image_metadata)
        if isinstance(outcome, Problem):
            return _ImageResult(outcome, sha256, decoded=True), None
        verdict, exported = outcome
    if named and named != verdict.format:
        problem = Problem(
            IMAGE_MISNAMED,
            f"image file is named as {named} but holds {verdict.format}",
            "rename the file to its real format, or convert it",
        )
        return _ImageResult(problem, sha256, decoded=decoded), None
    return _ImageResult(verdict, sha256, decoded=decoded), exported


_REPLACE_IMAGE = "replace the image with a valid one"


def _image_verdict(
    data: bytes, sha256: str, named: str | None, keep_image_metadata: bool
) -> tuple[Verdict, bytes] | Problem:
    """The verdict on a fully decodable image of a sane size and the bytes an export writes of
    it, else its problem: what depends on the bytes alone, and so can be cached by their hash."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open_image(data, named) as image:
                image_format, (width, height), mode = opened_format(image), image.size, image.mode
                frames = frame_count(image)
                if frames > 1:
                    # Only the first frame would be decoded and exported: a broken or private
                    # second page would pass unseen, and which frame holds the line is a guess.
                    return Problem(
                        IMAGE_MULTI_FRAME,
                        f"image file holds {frames} frames (pages of a TIFF, frames of an animation); "
                        "a line image must be a single frame",
                        "save the frame that shows the line as an image file of its own",
                    )
                private = holds_private_metadata(data, image)
                image.load()
            exported = bytes_to_export(data, private, keep_image_metadata)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        return Problem(
            IMAGE_DECOMPRESSION_BOMB, f"image is a decompression bomb: {error}", "crop or downscale the image"
        )
    except UnidentifiedImageError:
        return Problem(IMAGE_NOT_AN_IMAGE, "image file is not an image Pillow can read", _REPLACE_IMAGE)
    except (OSError, SyntaxError, ValueError) as error:
        return Problem(IMAGE_DAMAGED, f"image is damaged or truncated ({reading_problem(error)})", _REPLACE_IMAGE)
    if image_format == "MPO":
        image_format = "JPEG"  # a JPEG with pictures appended, which the export drops (see frame_count)
    if min(width, height) < MIN_IMAGE_SIDE:
        return Problem(
            IMAGE_TOO_SMALL,
            f"image is {width}x{height} pixels, too small to hold a line of text",
            f"crop at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels",
        )
    exported_format = image_format if exported is data else identify(exported, "").format
    verdict = Verdict(width, height, mode, image_format, private, _sha256_of(exported, data, sha256), exported_format)
    return verdict, exported


def _sha256_of(exported: bytes, data: bytes, sha256: str) -> str:
    """The sha256 of the bytes an export writes of ``data`` (whose sha256 is known): the same
    unless they were cleaned."""
    return sha256 if exported is data else hashlib.sha256(exported).hexdigest()
