"""The only module that writes batches into the export folder: a batch per format, each built
aside, all renamed into place together. (Beside them, the verdict cache keeps its own file,
stored through ``verdicts.py`` when a batch is complete.)"""

from __future__ import annotations

import errno
import hashlib
import heapq
import io
import itertools
import json
import os
import re
import secrets
import shutil
import sqlite3
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from filelock import BaseFileLock, FileLock, Timeout

from .adapters import ADAPTERS, FormatAdapter, ViewImage, get_adapter
from .adapters.base import LLAMAFACTORY_DATASET_INFO, llamafactory_dataset_info
from .canonical import CANONICAL_SCHEMA, RowsFingerprint, canonical_batch, exported_image_bytes
from .card import dataset_card
from .errors import BatchExistsError, ExportWriteError, OptionError
from .features import Features
from .images import data_url
from .ledger import Ledger
from .manifest import MANIFEST_NAME, ExportResult, build_manifest, result_from_manifest, write_manifest
from .names import check_batch_id
from .options import ExportOptions, ViewOptions
from .packed import PackedSamples
from .progress import progress_bar
from .samples import SampleError
from .splits import split_of_sample
from .validation import CheckedSample, Pending, SpooledRow, Tasks, TaskWorkers, Workers, run_here
from .verdicts import Verdict, VerdictCache

# Rows written together (a batch of the spool, a projection): small enough that memory stays
# flat, large enough that Arrow works in bulk.
ROWS_PER_WRITE = 256
# Rows of a parquet row group: as datasets writes image datasets (its
# ARROW_RECORD_BATCH_SIZE_FOR_IMAGE_DATASETS), so a reader holds ~100 images at a time.
ROWS_PER_ROW_GROUP = 100
# What the export remembers of every sample while it runs, in the first format's staging folder.
SCRATCH_NAME = ".scratch"
# Verdicts stored in one transaction, once the batch is complete.
VERDICTS_PER_STORE = 10_000
_SPOOLED_SHA256 = "image_sha256"
_SPOOL_SCHEMA = CANONICAL_SCHEMA.append(pa.field(_SPOOLED_SHA256, pa.string()))
# Everything one export leaves in the export folder while it runs carries the export's random
# token, and is live exactly while the export's lock is held (by a process that is running):
# - in each format folder, its staging folder ".<batch>.<token>.partial", and the old batch that
#   --overwrite sets aside until its replacement is published, ".<batch>.<token>.replaced";
# - in the export root, its lock ".export-<token>.lock", and the journal of its publish,
#   ".publish-<token>.<state>". While the journal says "swapping", the batches are being moved
#   into place and a crash is undone; once it says "committed", every new batch is in place and
#   only the old ones remain to be removed.
TOKEN_BYTES = 6
STAGING_SUFFIX = ".partial"
ASIDE_SUFFIX = ".replaced"
_SET_APART = re.compile(
    rf"\..+\.(?P<token>[0-9a-f]{{{2 * TOKEN_BYTES}}})({re.escape(STAGING_SUFFIX)}|{re.escape(ASIDE_SUFFIX)})"
)
_JOURNAL = re.compile(rf"\.publish-(?P<token>[0-9a-f]{{{2 * TOKEN_BYTES}}})\.(?P<state>swapping|committed)")
_LOCK_FILE = re.compile(rf"\.export-(?P<token>[0-9a-f]{{{2 * TOKEN_BYTES}}})\.lock")
IMAGES_FOLDER = "images"
REJECTED_NAME = "rejected.jsonl"
DUPLICATES_NAME = "duplicates.jsonl"


@dataclass(frozen=True)
class BatchContents:
    """What goes into a batch, whatever its format: the valid samples per split (empty splits
    included), their figures, and what became of the other input samples."""

    splits: dict[str, PackedSamples[CheckedSample]]
    statistics: dict[str, dict]
    counts: dict[str, int]
    rejected: list[SampleError]
    duplicates: list[tuple[str, str]]
    # How the images were checked: decoded, or their verdicts from the cache.
    image_checks: dict[str, int] = field(default_factory=dict)


@dataclass
class _Staged:
    """One format's batch, written into its staging folder to be renamed to ``final``, and its
    manifest once complete."""

    staging: Path
    final: Path


@dataclass(frozen=True)
class _Move:
    """What the journal notes of one format's swap, by names inside ``export_root/folder``: the
    staging folder, the batch, where the old batch is set aside (if there is one), and the
    sha256 of the new batch's manifest, which tells the new batch from any other."""

    folder: str
    staging: str
    batch: str
    aside: str | None
    manifest_sha256: str | None


def prepare_batches(export_root: Path, adapters: list[FormatAdapter], batch_id: str, overwrite: bool) -> None:
    """Ready ``export_root`` for a batch ``batch_id`` of each format, before anything is
    validated or built: put right what killed exports left (so that an interrupted command can
    simply be run again), then refuse a batch that exists unless ``overwrite``, and a folder
    that is not a batch even then."""
    try:
        clean_leftovers(export_root)
    except OSError as error:
        raise _write_error(error, batch_id, export_root) from error
    _check_batch_folders([export_root / adapter.folder / batch_id for adapter in adapters], overwrite)


def _check_batch_folders(batch_folders: list[Path], overwrite: bool) -> None:
    for folder in batch_folders:
        if not folder.exists():
            continue
        if not overwrite:
            raise batch_exists_error(folder)
        if not (folder / MANIFEST_NAME).is_file():
            raise BatchExistsError(
                f"{folder} is not a batch (it has no {MANIFEST_NAME}): "
                "overwrite=True (--overwrite) replaces batches only, "
                "so it is left as it is; move it away or choose another batch id"
            )


class BatchWriter:
    """Writes one batch folder per format, ``export_root/<format folder>/batch_id``, all published
    together or none.

    Entered before validation: it claims the export (its token and lock) and its staging
    folders. It is validation's ``ImageKeeper``: the worker processes that check the images
    spool the canonical rows of the samples that pass, with the very bytes they checked (so
    each image is read once), to a file per chunk in the scratch folder (``RowSpool``), and
    ``keep`` receives each sample that passed. When the split follows from the sample alone
    (one split, or the ``hash`` strategy) each chunk is written to its splits in every format
    while validation runs, by the same workers (``_ChunkWriting``); otherwise (``balanced``)
    ``write`` writes the chunks once the splits are decided. Only when every format's batch is
    complete are they renamed into place (``_publish``). Whatever goes wrong before, every
    staging folder is removed and nothing was written.
    """

    def __init__(
        self,
        export_root: Path,
        adapters: list[FormatAdapter],
        batch_id: str,
        options: ExportOptions,
        verdicts: VerdictCache | None = None,
    ):
        self.export_root = export_root
        self.adapters = adapters
        self.batch_id = check_batch_id(batch_id)
        self.options = options
        self.verdicts = verdicts
        # Verdicts on the images this export decoded, for the cache once the batch is complete.
        self._new_verdicts: PackedSamples[tuple[str, Verdict]] | None = None
        self._staged: list[_Staged] = []
        self._lock: BaseFileLock | None = None
        self._made_folders: list[Path] = []
        self._token = ""
        self._outputs: list[_FormatOutput] = []
        # What write is publishing, and the sha256 of each batch's manifest as staged: whether
        # it is in place is read from the folders (see published), not from how far code got.
        self._results: list[ExportResult] = []
        self._staged_manifests: list[str | None] = []
        # The chunks spooled (their numbers, and how many rows each holds), and the split each
        # row was written to while validation ran (see _destinations): a few bytes a row.
        self._chunk_numbers = array("q")
        self._chunk_rows = array("q")
        self._written = bytearray()
        self._writing: _ChunkWriting | None = None
        # With the split of every sample known as it arrives (one split, or the hash strategy),
        # rows are written while validation runs, overlapping the decoding in worker processes.
        # ExportOptions reads split into its ratios (parse_split_spec) when it is made.
        assert isinstance(options.split, Mapping)
        self._split_of = split_of_sample(options.split, options.group_by, options.seed, options.split_strategy)
        self._split_names = list(options.split)
        _check_line_folder_names(adapters, self._split_names)

    def __enter__(self) -> BatchWriter:
        first = self.export_root / self.adapters[0].folder
        # Made for this export: removed again if it fails, so that a failed export leaves nothing.
        folders = [self.export_root, *(self.export_root / adapter.folder for adapter in self.adapters)]
        self._made_folders = [folder for folder in folders if not folder.exists()]
        try:
            self._claim(first)
        except BaseException as error:
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def _claim(self, first: Path) -> None:
        with self._errors_named(first):
            self._token, self._lock, staging = _claim(self.export_root, first, self.batch_id)
            self._staged.append(_Staged(staging, first / self.batch_id))
            self.scratch.mkdir()
            for adapter in self.adapters[1:]:
                where = self.export_root / adapter.folder
                self._staged.append(_Staged(_new_staging(where, self.batch_id, self._token), where / self.batch_id))
            self._outputs = self._new_outputs()
            if self.verdicts is not None:
                self._new_verdicts = PackedSamples(spill_to=self.scratch)

    @property
    def spool(self) -> RowSpool:
        """Where validation's workers put the rows that pass (``ImageKeeper.spool``)."""
        return RowSpool(self.scratch, self.batch_id, self._staged[0].staging.parent)

    @property
    def scratch(self) -> Path:
        """A folder for what the export remembers of every sample until its batches are written
        (validation's ``scratch``), so that memory does not grow with the corpus."""
        return self._staged[0].staging / SCRATCH_NAME

    def _new_outputs(self) -> list[_FormatOutput]:
        return [
            _FormatOutput(batch.staging, adapter, self.options, self.scratch)
            for batch, adapter in zip(self._staged, self.adapters, strict=True)
        ]

    def __exit__(self, error_type, error, traceback) -> None:
        # Closed before their folder is removed (Windows removes no open file); a disk that is
        # full fails their last write, which matters no more once the export has failed.
        for output in self._outputs:
            output.close_files()
        if error is not None:
            for batch in self._staged:
                shutil.rmtree(batch.staging, ignore_errors=True)
        if self._lock is not None:
            _release(self._lock)
        if error is not None:
            for folder in reversed(self._made_folders):
                with suppress(OSError):
                    folder.rmdir()  # only if still empty

    @contextmanager
    def using(self, workers: Workers) -> Iterator[None]:
        """While validation's workers run (``ImageKeeper.using``): with the split of each sample
        known as it arrives, its chunk is written as soon as it is complete."""
        if self._split_of is not None:
            self._writing = _ChunkWriting(self._outputs, self._split_names, self.scratch, workers)
        try:
            yield
            with self._errors_named(self._staged[0].staging.parent):
                self._chunk_complete()
                if self._writing is not None:
                    self._writing.finish()
        finally:
            self._writing = None

    def keep(self, checked: CheckedSample, spooled: SpooledRow, decoded: bool, first_of_image: bool) -> None:
        """Take a sample that passed its checks, whose row validation spooled (``ImageKeeper.keep``);
        note its image's verdict for the cache if it was ``decoded`` now."""
        with self._errors_named(self._staged[0].staging.parent):
            chunk, _ = spooled
            if not self._chunk_numbers or self._chunk_numbers[-1] != chunk:
                self._chunk_complete()
                self._chunk_numbers.append(chunk)
                self._chunk_rows.append(0)
            self._chunk_rows[-1] += 1
            split = 0
            if self._split_of is not None and (first_of_image or self.options.keep_duplicates):
                split = self._split_names.index(self._split_of(checked.sample)) + 1
            self._written.append(split)
            if decoded and self._new_verdicts is not None:
                self._new_verdicts.append((checked.image_sha256, checked.image))

    def _chunk_complete(self) -> None:
        """The last chunk received every sample it holds: written now, if the splits are known."""
        if self._writing is not None and self._chunk_numbers:
            rows = self._chunk_rows[-1]
            self._writing.add(self.spool.path(self._chunk_numbers[-1]), self._written[len(self._written) - rows :])

    def write(self, contents: BatchContents, tasks: Tasks | None = None) -> list[ExportResult]:
        """Complete every format's batch and publish them; their results. What was not written
        while validation ran is written by ``tasks`` (an engine's, still running), if given,
        else here."""
        with self._errors_named(self.export_root):
            destination, samples_digest = _destinations(contents.splits, self._split_names, len(self._written))
            workers = TaskWorkers(tasks) if tasks is not None else None
            exported = len(destination) - destination.count(0)
            if self._split_of is None:
                self._write_after_validation(self._spooled_chunks(destination), exported, workers)
            elif destination != self._written:
                # A conflict found after its first sample was written rejects rows written
                # already: the batch is written again, each image read once more from its source.
                for output in self._outputs:
                    output.discard()
                self._outputs = self._new_outputs()
                self._write_after_validation(self._spooled_again(contents.splits, workers), exported, workers)
            for output in self._outputs:
                output.close(self._split_names)
            self._store_new_verdicts()
            manifests = [
                _finish_staging(output, contents, self.batch_id, self.options, samples_digest)
                for output in self._outputs
            ]
            for output in self._outputs:
                output.close_files()
            shutil.rmtree(self.scratch)
            self._results = [
                result_from_manifest(batch.final / MANIFEST_NAME, manifest)
                for batch, manifest in zip(self._staged, manifests, strict=True)
            ]
            self._staged_manifests = [_file_sha256(batch.staging / MANIFEST_NAME) for batch in self._staged]
            _publish(
                self.export_root,
                self._token,
                self.batch_id,
                self._staged,
                self._staged_manifests,
                self.options.overwrite,
            )
        return self._results

    def published(self) -> list[ExportResult] | None:
        """The results of the batches ``write`` published, if every one is in place now (an
        interrupt may land at any moment of publishing, or after it); else None."""
        if not self._results:
            return None
        in_place = [_file_sha256(batch.final / MANIFEST_NAME) for batch in self._staged]
        return self._results if in_place == self._staged_manifests else None

    def _write_after_validation(
        self, chunks: Iterable[tuple[str, bytes | bytearray]], rows: int, workers: Workers | None
    ) -> None:
        """Write ``chunks`` of spooled rows (each file with its destinations, see
        ``_destinations``) by ``workers``, or in this process (validation's pool being gone);
        ``rows`` of them are written."""
        writing = _ChunkWriting(self._outputs, self._split_names, self.scratch, workers)
        formats = ", ".join(output.adapter.name for output in self._outputs)
        with progress_bar(total=rows, desc=f"Writing {formats}", unit=" samples") as progress:
            for path, codes in chunks:
                writing.add(path, codes)
                progress.update(writing.rows_written - progress.n)
            writing.finish()

    def _spooled_chunks(self, destination: bytearray) -> Iterator[tuple[str, bytearray]]:
        """The chunks validation's workers spooled, each with its rows' destinations."""
        start = 0
        for chunk, rows in zip(self._chunk_numbers, self._chunk_rows, strict=True):
            yield self.spool.path(chunk), destination[start : start + rows]
            start += rows

    def _spooled_again(
        self, splits: dict[str, PackedSamples[CheckedSample]], workers: Workers | None
    ) -> Iterator[tuple[str, bytes]]:
        """The rows of ``splits`` with each image read again (and refused if it is not what
        validation checked), spooled a chunk at a time by ``workers`` or here (the chunks
        validation's workers spooled are written and gone), each with its destinations."""
        size = ROWS_PER_WRITE if workers is None else workers.chunk_size
        in_flight = _chunks_writing(workers)
        spooling: deque[tuple[Pending[None], str, bytes]] = deque()
        number = 0
        for name, samples in splits.items():
            code = bytes([self._split_names.index(name) + 1])
            items = iter(samples)
            while chunk := list(itertools.islice(items, size)):
                plan = _Respooling(self.spool, number, chunk, self.options.keep_image_metadata)
                # Spooling a chunk again rewrites the same file.
                done = (
                    run_here(_spool_again, plan)
                    if workers is None
                    else workers.submit(_spool_again, plan, retriable=True)
                )
                spooling.append((done, self.spool.path(number), code * len(chunk)))
                number += 1
                if len(spooling) > in_flight:
                    yield _spooled(spooling.popleft())
        while spooling:
            yield _spooled(spooling.popleft())

    def _store_new_verdicts(self) -> None:
        """Add the verdicts on the images decoded by this export to the cache, a window at a time
        (so a million of them are never in memory together), once the batch is complete."""
        if self._new_verdicts is None or self.verdicts is None:
            return
        verdicts = iter(self._new_verdicts)
        while window := list(itertools.islice(verdicts, VERDICTS_PER_STORE)):
            self.verdicts.store(window)

    @contextmanager
    def _errors_named(self, where: Path) -> Iterator[None]:
        """A disk's ``OSError`` as an ``ExportWriteError`` naming the batch and ``where``."""
        try:
            yield
        except OSError as error:
            if isinstance(error, FileExistsError):
                raise
            raise _write_error(error, self.batch_id, where) from error


def _check_line_folder_names(adapters: list[FormatAdapter], split_names: list[str]) -> None:
    """Refuse a split whose line folder would be one of the batch's own folders (``data/``,
    ``images/``), as a disk that ignores case would see it."""
    line_formats = [adapter.name for adapter in adapters if adapter.line_folder]
    for split in split_names:
        if line_formats and split.casefold() in ("data", IMAGES_FOLDER):
            raise OptionError(
                f"split name {split!r} would put the {', '.join(line_formats)} batch's line folder {split}/ "
                f"into the batch's own {split.casefold()}/ folder: name the split otherwise (--split)"
            )


def _claim(export_root: Path, format_root: Path, batch_id: str) -> tuple[str, BaseFileLock, Path]:
    """A token for one export, its lock (held until the export is done), and its staging folder
    in ``format_root``."""
    while True:
        token = secrets.token_hex(TOKEN_BYTES)
        staging = _new_staging(format_root, batch_id, token)
        lock = FileLock(_lock_path(export_root, token))
        try:
            lock.acquire()
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        # The folder is made before the lock is taken, so a lock file never stands alone while
        # its export runs (a clean-up removes one that does). A clean-up that comes in between
        # takes the folder for a leftover and removes it while it holds the lock; so once this
        # export holds the lock, the folder is its own if it is still there.
        if staging.is_dir():
            return token, lock, staging
        _release(lock)


def _new_staging(format_root: Path, batch_id: str, token: str) -> Path:
    format_root.mkdir(parents=True, exist_ok=True)
    # Hidden, so list_exports skips it; made with mkdir so the batch gets the user's umask.
    staging = format_root / f".{batch_id}.{token}{STAGING_SUFFIX}"
    staging.mkdir()
    return staging


def _lock_path(export_root: Path, token: str) -> Path:
    return export_root / f".export-{token}.lock"


def _release(lock: BaseFileLock) -> None:
    """Release an export's lock once nothing of the export needs it, and remove its file."""
    lock.release()
    # Some lock kinds remove their file on release, and on Windows the file cannot be removed
    # while another process has it open: that process removes it when it is done with it.
    with suppress(OSError):
        Path(lock.lock_file).unlink(missing_ok=True)


def _finish_staging(
    output: _FormatOutput, contents: BatchContents, batch_id: str, options: ExportOptions, samples_digest: str
) -> dict:
    """Complete one format's batch, whose rows are written: the lists of rejected and dropped
    samples, the card and the manifest (the checksums of the files written so far are known
    from writing them); its manifest."""
    staging, adapter = output.staging, output.adapter
    created_at = datetime.now(UTC).isoformat(timespec="microseconds")
    _write_jsonl(staging / REJECTED_NAME, [_rejection_record(problem) for problem in contents.rejected])
    _write_jsonl(
        staging / DUPLICATES_NAME, [{"id": dropped, "duplicate_of": kept} for dropped, kept in contents.duplicates]
    )
    fingerprint = hashlib.sha256(
        json.dumps([adapter.name, asdict(options.view()), samples_digest], sort_keys=True).encode()
    ).hexdigest()
    config_name = f"{adapter.folder}-{batch_id}-{fingerprint[:12]}"
    split_counts = {split: len(samples) for split, samples in contents.splits.items()}
    (staging / "README.md").write_text(
        dataset_card(
            adapter=adapter,
            batch_id=batch_id,
            config_name=config_name,
            data_files=output.data_files,
            created_at=created_at,
            counts=contents.counts,
            statistics=contents.statistics,
            options=options,
        ),
        encoding="utf-8",
    )
    if output.text_chat_views:
        (staging / LLAMAFACTORY_DATASET_INFO).write_text(
            json.dumps(llamafactory_dataset_info(output.text_chat_views), indent=2) + "\n", encoding="utf-8"
        )
    files = _BatchFiles(staging, output.images, output.noted_folders)
    manifest = build_manifest(
        export_format=adapter.name,
        batch_id=batch_id,
        created_at=created_at,
        config_name=config_name,
        fingerprint=fingerprint,
        counts=contents.counts,
        image_checks=contents.image_checks,
        splits=split_counts,
        statistics=contents.statistics,
        options=options.recorded(),
        model_config=adapter.model_config,
        files=files,
        rejection_reasons=_rejection_reasons(contents.rejected),
    )
    write_manifest(
        staging / MANIFEST_NAME,
        manifest,
        _checksums(staging, files, output.checksums, output.images(), output.noted_folders),
    )
    return manifest


def clean_leftovers(export_root: Path) -> None:
    """Put right what exports whose process is gone left under ``export_root``: a publish cut
    short is undone (every format back to its old batch, or to none) or, if it had committed,
    finished (the old batches removed); then their staging folders are removed.

    An export is gone when nobody holds its lock: the lock is released by the system when its
    process ends, however it ends, on every platform (no process id is probed: on Windows
    ``os.kill(pid, 0)`` would terminate the process)."""
    if not export_root.is_dir():
        return
    for token in sorted(_tokens_left(export_root)):
        lock = FileLock(_lock_path(export_root, token))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # its export is running
        try:
            _finish_for(export_root, token)
        finally:
            _release(lock)


def _tokens_left(export_root: Path) -> set[str]:
    """The tokens of the exports that left something under ``export_root``."""
    found = {
        match["token"]
        for entry in export_root.iterdir()
        if (match := _JOURNAL.fullmatch(entry.name) or _LOCK_FILE.fullmatch(entry.name))
    }
    for format_root in _format_roots(export_root):
        found |= {match["token"] for entry in format_root.iterdir() if (match := _SET_APART.fullmatch(entry.name))}
    return found


def _format_roots(export_root: Path) -> list[Path]:
    return [export_root / adapter.folder for adapter in ADAPTERS.values() if (export_root / adapter.folder).is_dir()]


def _finish_for(export_root: Path, token: str) -> None:
    """Undo or finish the publish of the export ``token``, whose process is gone, then remove
    what it set apart: its staging folders, and old batches it had not removed yet."""
    for state in ("swapping", "committed"):
        journal = export_root / _journal_name(token, state)
        if journal.exists():
            _recover(export_root, journal, state)
    for format_root in _format_roots(export_root):
        for entry in format_root.iterdir():
            if (match := _SET_APART.fullmatch(entry.name)) and match["token"] == token:
                shutil.rmtree(entry, ignore_errors=True)


def _publish(
    export_root: Path,
    token: str,
    batch_id: str,
    staged: list[_Staged],
    manifest_sha256s: list[str | None],
    overwrite: bool,
) -> None:
    """Rename every finished batch into place, all or none (``manifest_sha256s``: the sha256 of
    each one's manifest, which tells it in place); an old batch is replaced only now that every
    new one is whole.

    A journal naming every move is written first. If anything fails before every batch is in
    place, the moves done so far are undone here; if the process dies, the next export's
    ``clean_leftovers`` undoes them from the journal. Once every batch is in place the journal
    is marked committed (one rename, the moment the new batches count as published), and the
    old batches are removed.
    """
    # Checked again: another export may have published this batch id while this one was building.
    _check_batch_folders([batch.final for batch in staged], overwrite)
    moves = [
        _Move(
            folder=batch.final.parent.name,
            staging=batch.staging.name,
            batch=batch_id,
            aside=f".{batch_id}.{token}{ASIDE_SUFFIX}" if batch.final.exists() else None,
            manifest_sha256=manifest_sha256,
        )
        for batch, manifest_sha256 in zip(staged, manifest_sha256s, strict=True)
    ]
    swapping = export_root / _journal_name(token, "swapping")
    committed = export_root / _journal_name(token, "committed")
    tidying = False
    try:
        with swapping.open("x", encoding="utf-8") as journal:
            json.dump([asdict(move) for move in moves], journal)
        for move in moves:
            folder = export_root / move.folder
            if move.aside is not None:
                (folder / move.batch).rename(folder / move.aside)
            try:
                (folder / move.staging).rename(folder / move.batch)
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                raise BatchExistsError(
                    f"batch {batch_id!r} appeared at {folder / move.batch} while this export ran: "
                    "export again with another batch id"
                ) from None
        swapping.rename(committed)
        tidying = True
        _remove_set_aside(export_root, moves)
        committed.unlink()
    except BaseException as error:
        # Told by the journal's name as well as by how far this code got: an interruption can
        # land just after the rename that commits, or just after the unlink that removes it.
        if not tidying and not committed.exists():
            # If undoing fails too, the journal stays for the next export to undo.
            _undo(export_root, moves)
            swapping.unlink(missing_ok=True)
            raise
        if not isinstance(error, OSError):
            raise
        # Published already, and only tidying up failed: what is left of the old batches, and
        # the journal, the next export removes.


def _recover(export_root: Path, journal: Path, state: str) -> None:
    """Undo or finish the publish that ``journal`` describes, whose process is gone."""
    try:
        moves = [_Move(**move) for move in json.loads(journal.read_text(encoding="utf-8"))]
    except ValueError:
        # Cut short while being written, which is before anything was moved.
        moves = []
    if state == "committed":
        _remove_set_aside(export_root, moves)
    else:
        _undo(export_root, moves)
    journal.unlink()


def _undo(export_root: Path, moves: list[_Move]) -> None:
    """Put every format back as it was before the swap. Each step is one rename or a removal
    of what is no longer needed, and each is skipped once done, so an undo cut short can be
    run again."""
    for move in reversed(moves):
        folder = export_root / move.folder
        batch, staging = folder / move.batch, folder / move.staging
        if _file_sha256(batch / MANIFEST_NAME) == move.manifest_sha256:
            batch.rename(staging)
        if move.aside is not None and (folder / move.aside).exists():
            if batch.exists():
                # Another export published this batch id meanwhile: its batch is kept.
                shutil.rmtree(folder / move.aside)
            else:
                (folder / move.aside).rename(batch)
        shutil.rmtree(staging, ignore_errors=True)


def _remove_set_aside(export_root: Path, moves: list[_Move]) -> None:
    """Remove the old batches a committed publish replaced."""
    for move in moves:
        if move.aside is not None:
            shutil.rmtree(export_root / move.folder / move.aside, ignore_errors=True)


def _journal_name(token: str, state: str) -> str:
    return f".publish-{token}.{state}"


def _file_sha256(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_error(error: OSError, batch_id: str, folder: Path) -> ExportWriteError:
    where = f" ({error.filename})" if error.filename else ""
    return ExportWriteError(
        error.errno,
        f"could not write batch {batch_id!r} under {folder}: {error.strerror or error}{where}; nothing was written "
        "(free some space, or choose an output folder you can write to)",
    )


def batch_exists_error(batch_path: Path) -> BatchExistsError:
    return BatchExistsError(
        f"batch {batch_path.name!r} already exists at {batch_path}: "
        "choose another batch id, or overwrite=True (--overwrite) to replace it"
    )


class RowSpool:
    """Where validation's worker processes put the canonical rows of the samples that pass, with
    the bytes an export writes (``ImageKeeper.spool``): an Arrow IPC file per chunk in the
    export's scratch folder, so that the images are not sent back to the main process. Plain
    data, so that it pickles for a spawned worker; a disk that fails is named as the writer
    names it (``batch_id``, ``where``)."""

    def __init__(self, folder: Path, batch_id: str, where: Path):
        self.folder = os.fspath(folder)
        self.batch_id = batch_id
        self.where = where

    def path(self, chunk: int) -> str:
        return os.path.join(self.folder, f"rows-{chunk:07d}.arrow")

    def __call__(self, chunk: int, items: list[tuple[CheckedSample, bytes]]) -> None:
        rows = _rows_with_digests(items)
        try:
            with pa.OSFile(self.path(chunk), "wb") as sink, pa.ipc.new_file(sink, _SPOOL_SCHEMA) as writer:
                writer.write_batch(rows)
        except OSError as error:
            raise _write_error(error, self.batch_id, self.where) from error


def _rows_with_digests(items: list[tuple[CheckedSample, bytes]]) -> pa.RecordBatch:
    digests = pa.array([checked.image.exported_sha256 for checked, _ in items], pa.string())
    return canonical_batch(items).append_column(_SPOOLED_SHA256, digests)


@dataclass(frozen=True)
class _Respooling:
    """Checked samples whose images are to be read again and spooled as chunk ``number``."""

    spool: RowSpool
    number: int
    items: list[CheckedSample]
    keep_image_metadata: bool


def _spool_again(plan: _Respooling) -> None:
    plan.spool(plan.number, [(item, exported_image_bytes(item, plan.keep_image_metadata)) for item in plan.items])


def _spooled(spooling: tuple[Pending[None], str, bytes]) -> tuple[str, bytes]:
    """A chunk's spool file and destinations, once it is spooled."""
    done, path, codes = spooling
    done.get()
    return path, codes


def _destinations(
    splits: dict[str, PackedSamples[CheckedSample]], split_names: list[str], rows: int
) -> tuple[bytearray, str]:
    """Which split each spooled row goes to (the number of its name in ``split_names``, from 1;
    0 for rows not exported: duplicates, conflicts), a byte a row however many rows there are;
    and the rows' fingerprint."""
    destination = bytearray(rows)
    fingerprint = RowsFingerprint()
    for name, samples in splits.items():
        fingerprint.add_split(name)
        code = split_names.index(name) + 1
        for item in samples:
            destination[item.row] = code
            fingerprint.add(item)
    return destination, fingerprint.hexdigest()


_Taken = TypeVar("_Taken", pa.Table, pa.ChunkedArray, pa.Array)

# Chunks handed to the workers whose files are not written into the batches yet: enough that
# no worker waits for the main process (at least two a worker), few enough that their files in
# the scratch folder stay a few megabytes a worker.
_CHUNKS_WRITING = 8


def _chunks_writing(workers: Workers | None) -> int:
    return _CHUNKS_WRITING if workers is None else max(_CHUNKS_WRITING, 2 * workers.parallelism)


class _ChunkWriting:
    """Chunks of canonical rows (Arrow IPC files in ``scratch``) written into every format's batch:
    what takes a Python step per row (projecting, image files, view lines, line files) by
    ``_write_chunk``, in a worker process if there are any (this process, which reads the input
    and writes the parquet and views, is the busier one even while they decode images, and
    building Arrow rows from Python objects would make it import pandas); and, chunk after chunk
    in order, what only this process may decide or write: the image file names, the parquet
    files (from the projected rows, or, for a format that passes canonical columns on, from the
    chunk's own; workers that write parquet themselves, see ``Tasks``, write each chunk's
    shards, which this process numbers), the views (the chunk's lines appended) and the ledger
    of the files written. So the batches are the same however many workers there are, and
    wherever a chunk was written (with parquet-writing workers, the same rows in the same
    order)."""

    def __init__(self, outputs: list[_FormatOutput], split_names: list[str], scratch: Path, workers: Workers | None):
        self._outputs = outputs
        self._split_names = split_names
        self._scratch = os.fspath(scratch)
        self._workers = workers
        # A cluster's tasks write their chunk's parquet shards themselves (see ``Tasks``).
        self._parquet_in_chunks = workers is not None and workers.writes_parquet
        self._in_flight = _chunks_writing(workers)
        # Formats whose parquet rows this process takes from the chunk's rows as they are,
        # sparing a worker projecting them and writing them to a file for it to read.
        self._taken_here = [output.passed_on is not None and not self._parquet_in_chunks for output in outputs]
        self._takes_rows = any(self._taken_here)
        self._writing: deque[Pending[list[list[_WrittenSplit]]]] = deque()
        self._chunks = 0
        self.rows_written = 0

    def add(self, rows: str, codes: bytes | bytearray) -> None:
        """Write the rows of the IPC file ``rows`` to their splits (``codes``: see
        ``_destinations``); the file is removed once read."""
        selected = [index for index, code in enumerate(codes) if code]
        splits = [self._split_names[codes[index] - 1] for index in selected]
        for split in dict.fromkeys(splits):
            for output in self._outputs:
                output.open_split(split)
        # Read into memory, images and all, where rows are taken here; else mapped, so that
        # only the ids and file names are read. Nothing mapped outlives this block: a worker
        # removes the file, which Windows refuses while it is mapped.
        with pa.OSFile(rows) if self._takes_rows else pa.memory_map(rows) as source:
            table = pa.ipc.open_file(source).read_all()
            ids = _rows_taken(table.column("id"), selected).to_pylist()
            # Each chunk's field, not pyarrow.compute's struct_field: importing pyarrow.compute
            # took 25-40 ms of an export's start (and a canonical image is never null).
            names = pa.chunked_array([chunk.field("path") for chunk in table.column("image").chunks], pa.string())
            paths = _rows_taken(names, selected).to_pylist()
            if self._takes_rows:
                self._take_rows(table, selected, splits)
            del table, names
        plan = _ChunkPlan(
            here=self._workers is None or self._workers.in_this_process,
            rows=rows,
            selected=selected,
            splits=splits,
            split_names=self._split_names,
            targets=[output.target for output in self._outputs],
            projected=[not here for here in self._taken_here],
            names=[output.names(ids, paths) for output in self._outputs],
            scratch=self._scratch,
            number=self._chunks,
            parquet_shards=self._parquet_in_chunks,
        )
        self._chunks += 1
        self.rows_written += len(selected)
        if not any(map(_worker_writes, plan.targets, plan.projected)):
            # Every format's rows are taken here, and no format writes files of them.
            os.remove(rows)
            return
        self._writing.append(
            run_here(_write_chunk, plan) if self._workers is None else self._workers.submit(_write_chunk, plan)
        )
        while self._writing and (self._writing[0].ready() or len(self._writing) > self._in_flight):
            self._merge(self._writing.popleft().get())

    def _take_rows(self, table: pa.Table, selected: list[int], splits: list[str]) -> None:
        """The rows of a chunk (``table``) that go to each split, for the formats whose rows are
        taken here (see ``_FormatOutput.passed_on``)."""
        for split in self._split_names:
            taken = [row for row, name in zip(selected, splits, strict=True) if name == split]
            if not taken:
                continue
            rows = _rows_taken(table, taken)
            for output, here in zip(self._outputs, self._taken_here, strict=True):
                if here:
                    output.add_rows(split, output.passed_on_rows(rows))

    def finish(self) -> None:
        """Wait for the chunks handed out and write what remains of them."""
        while self._writing:
            self._merge(self._writing.popleft().get())

    def _merge(self, written: list[list[_WrittenSplit]]) -> None:
        for output, splits in zip(self._outputs, written, strict=True):
            for split in splits:
                output.merge(split)


@dataclass(frozen=True)
class _FormatTarget:
    """What a worker process needs to write a format's part of a chunk: plain data (see ``RowSpool``)."""

    format_name: str
    staging: str
    view_options: ViewOptions
    views: bool
    text_chat: bool
    line_folders: bool
    max_shard_bytes: int


@dataclass(frozen=True)
class _ChunkPlan:
    """A chunk of canonical rows to write (``_write_chunk``), in this process or not (``here``):
    the IPC file ``rows``, the rows taken from it (``selected``, in order) and the split of
    each, and per format where to write them, whether to project its rows for the parquet
    (``projected``: not where the main process takes them from the chunk) and the name of each
    row's image file (None where no file is written); with ``parquet_shards``, its projected
    rows go to parquet shards of their own, else back to the main process."""

    here: bool
    rows: str
    selected: list[int]
    splits: list[str]
    split_names: list[str]
    targets: list[_FormatTarget]
    projected: list[bool]
    names: list[list[str] | None]
    scratch: str
    number: int
    parquet_shards: bool


@dataclass(frozen=True)
class _WrittenSplit:
    """What ``_write_chunk`` wrote of a chunk's rows of one split in one format: the projected
    rows (an IPC file, the table itself when written in this process, or None when written to
    ``shards``: path in the batch, sha256, size; None too for a format whose rows the main
    process takes from the chunk), the lines of its views (files in the scratch folder, or
    None), and the files it wrote into the batch (path, sha256, size)."""

    split: str
    rows: str | pa.Table | None
    view: str | None
    text_chat_view: str | None
    files: list[tuple[str, str, int]]
    shards: list[tuple[str, str, int]]


def _write_chunk(plan: _ChunkPlan) -> list[list[_WrittenSplit]]:
    """Write a chunk's rows, in a worker process or this one (see ``_ChunkWriting``): per format
    and split, the projected rows (where ``plan.projected`` asks for them), the image or line
    files, and the view lines."""
    with pa.OSFile(plan.rows) as source:
        canonical = _rows_taken(pa.ipc.open_file(source).read_all(), plan.selected)
    os.remove(plan.rows)
    written: list[list[_WrittenSplit]] = [[] for _ in plan.targets]
    for split in plan.split_names:
        taken = [index for index, name in enumerate(plan.splits) if name == split]
        if not taken:
            continue
        rows = _rows_taken(canonical, taken)
        # As Python values once for every format (the adapters' projections leave them as they
        # are). The images are the canonical rows' own byte objects, so their sha256 is the one
        # validation took: known by identity, where an image file is written of them.
        canonical_rows = rows.drop_columns([_SPOOLED_SHA256])
        columns = canonical_rows.to_pydict()
        digests = rows.column(_SPOOLED_SHA256).to_pylist()
        known = {id(cell["bytes"]): digest for cell, digest in zip(columns["image"], digests, strict=True)}
        as_arrow = _ArrowColumns(canonical_rows, columns)
        for target, projected, names, splits in zip(plan.targets, plan.projected, plan.names, written, strict=True):
            if not _worker_writes(target, projected):
                continue
            stem = os.path.join(plan.scratch, f"{target.format_name}-{plan.number}-{plan.split_names.index(split)}")
            given = None if names is None else [names[index] for index in taken]
            shards = f"{split}-{plan.number:07d}" if plan.parquet_shards and len(taken) >= _ROWS_FOR_A_SHARD else None
            splits.append(
                _write_split_chunk(
                    target, split, columns, as_arrow if projected else None, known, given, stem, plan.here, shards
                )
            )
    return written


def _writes_files(target: _FormatTarget) -> bool:
    """Whether a format writes files of a chunk's rows besides its parquet: views, line folders."""
    return target.views or target.line_folders


def _worker_writes(target: _FormatTarget, projected: bool) -> bool:
    """Whether ``_write_chunk`` has anything to write of a chunk for a format: its projected
    rows, or its files."""
    return projected or _writes_files(target)


# A split's part of a chunk this long is written by a parquet-writing worker as shards of its
# own; a shorter one (a small split's share of each chunk) comes back to be written with
# others, so that a small split is not scattered over a shard a chunk.
_ROWS_FOR_A_SHARD = 500


class _ArrowColumns:
    """A projection's columns as an Arrow table of its schema. A column the projection passed on
    unchanged (the very list of the canonical columns, as ``line_gt`` passes the ids and texts,
    and, where workers write parquet, ``trocr`` and ``generic`` everything) is taken from the
    canonical rows as it is: converting the images from Python back to Arrow took the workers
    0.135 s of CPU at 10,000 lines, more than writing them to the main process's file (0.10 s).
    A projection is pure: it makes new lists for what it changes and never changes the
    canonical ones."""

    def __init__(self, canonical: pa.Table, columns: dict[str, list]):
        self._canonical = canonical
        self._names = _canonical_names(columns)

    def __call__(self, projected: dict[str, list], schema: pa.Schema) -> pa.Table:
        arrays = []
        for column in schema:
            values = projected[column.name]
            name = _passed_on_as(values, column, self._names)
            arrays.append(pa.array(values, column.type) if name is None else self._canonical.column(name))
        return pa.Table.from_arrays(arrays, schema=schema)


def _canonical_names(columns: dict[str, list]) -> dict[int, str]:
    """The canonical columns' names by the identity of their lists."""
    return {id(values): name for name, values in columns.items()}


def _passed_on_as(values: list, column: pa.Field, names: dict[int, str]) -> str | None:
    """The canonical column a projected ``column`` is, if its ``values`` are that column's very
    list (``names``: see ``_canonical_names``) and of its Arrow type; else None."""
    name = names.get(id(values))
    return name if name is not None and CANONICAL_SCHEMA.field(name).type == column.type else None


def _columns_passed_on(adapter: FormatAdapter, options: ViewOptions) -> list[str] | None:
    """The canonical column each of a format's columns is, in order, if its projection passes
    every one on as it is (the very list it is given, as ``FormatAdapter.project`` says, and of
    the same Arrow type); else None."""
    canonical: dict[str, list] = {name: [] for name in CANONICAL_SCHEMA.names}
    names = _canonical_names(canonical)
    projected = adapter.project(canonical, options)
    passed_on = []
    for column in adapter.features.arrow_schema:
        name = _passed_on_as(projected[column.name], column, names)
        if name is None:
            return None
        passed_on.append(name)
    return passed_on


def _rows_taken(rows: _Taken, indices: list[int]) -> _Taken:
    """The ``rows`` at ``indices`` (increasing), with no copy when they are all of them: the
    common case (every row passed, one split), where a copy of the images would be for nothing."""
    return rows if len(indices) == len(rows) else rows.take(pa.array(indices, pa.int32()))


def _write_split_chunk(
    target: _FormatTarget,
    split: str,
    columns: dict[str, list],
    as_arrow: _ArrowColumns | None,
    known: dict[int, str],
    names: list[str] | None,
    stem: str,
    here: bool,
    shards_named: str | None,
) -> _WrittenSplit:
    """A format's part of a chunk's rows of one split (``columns``, canonical; the sha256 of the
    image bytes ``known`` by their identity); its rows for the parquet too, unless ``as_arrow``
    is None (the main process takes them from the chunk)."""
    adapter = get_adapter(target.format_name)
    projected = adapter.project(columns, target.view_options)
    schema = adapter.features.arrow_schema
    rows: str | pa.Table | None = None
    shards: list[tuple[str, str, int]] = []
    if as_arrow is not None:
        rows = as_arrow(projected, schema)
        if shards_named is not None:
            shards = _write_shards(rows, adapter, target, shards_named)
            rows = None
        elif not here:
            # For the main process, which writes the parquet.
            with pa.OSFile(stem + ".arrow", "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
                writer.write_table(rows)
            rows = stem + ".arrow"
    view = stem + ".jsonl" if target.views else None
    text_chat_view = stem + ".chat.jsonl" if target.text_chat else None
    files: list[tuple[str, str, int]] = []
    if not _writes_files(target):
        return _WrittenSplit(split, rows, None, None, files, shards)
    with (
        open(view, "w", encoding="utf-8") if view is not None else nullcontext() as view_lines,
        open(text_chat_view, "w", encoding="utf-8") if text_chat_view is not None else nullcontext() as chat_lines,
    ):
        for values, name in zip(zip(*projected.values(), strict=True), names or itertools.repeat(None), strict=False):
            row = dict(zip(projected, values, strict=True))
            if target.line_folders:
                assert name is not None
                files += _write_line(adapter, target, split, row, name, known)
                continue
            images = _place_images(adapter, target, row, name, known, files)
            assert view_lines is not None
            view_lines.write(
                json.dumps(adapter.view_record(row, images, target.view_options), ensure_ascii=False) + "\n"
            )
            if chat_lines is not None:
                chat_lines.write(json.dumps(adapter.text_chat_record(row, images), ensure_ascii=False) + "\n")
    return _WrittenSplit(split, rows, view, text_chat_view, files, shards)


def _write_shards(
    rows: pa.Table, adapter: FormatAdapter, target: _FormatTarget, name: str
) -> list[tuple[str, str, int]]:
    """``rows`` as parquet shards of their own in the batch's data folder, each closed once it
    holds ``max_shard_bytes``: their paths in the batch (numbered in order when the batch is
    complete), sha256 and sizes."""
    shards: list[tuple[str, str, int]] = []
    shard = None
    for start in range(0, rows.num_rows, ROWS_PER_ROW_GROUP):
        if shard is None:
            path = f"data/.{name}-{len(shards)}.parquet"
            shard = _Shard(Path(target.staging, path), adapter.features)
        shard.write(rows.slice(start, ROWS_PER_ROW_GROUP))
        if shard.size >= target.max_shard_bytes or start + ROWS_PER_ROW_GROUP >= rows.num_rows:
            shards.append((path, *shard.close()))
            shard = None
    return shards


def _place_images(
    adapter: FormatAdapter,
    target: _FormatTarget,
    row: dict,
    name: str | None,
    known: dict[int, str],
    files: list[tuple[str, str, int]],
) -> list[ViewImage]:
    [image] = adapter.images(row)
    data = image["bytes"]
    relative = None
    if name is not None:
        relative = f"{IMAGES_FOLDER}/{name}"
        # "x" mode: two rows never silently share one file. (A path as text: pathlib's objects
        # cost more than writing a small image.)
        with open(os.path.join(target.staging, IMAGES_FOLDER, name), "xb") as file:
            file.write(data)
        files.append((relative, known.get(id(data)) or hashlib.sha256(data).hexdigest(), len(data)))
    url = data_url(data, row["id"]) if target.view_options.include_base64 else None
    return [ViewImage(path=relative, data_url=url)]


def _write_line(
    adapter: FormatAdapter, target: _FormatTarget, split: str, row: dict, name: str, known: dict[int, str]
) -> list[tuple[str, str, int]]:
    """A line format's row as its files in the split's folder, all named after its image (whose
    sha256 may be ``known``: see ``_place_images``)."""
    stem = name.rpartition(".")[0]
    files = []
    for suffix, data in adapter.line_files(row).items():
        with open(os.path.join(target.staging, split, stem + suffix), "xb") as file:
            file.write(data)
        files.append((f"{split}/{stem}{suffix}", known.get(id(data)) or hashlib.sha256(data).hexdigest(), len(data)))
    return files


class _FormatOutput:
    """One format's batch being written: per split its parquet shards (rolled at
    ``max_shard_size``) and its JSONL views, and the images the views point to; or, for a
    ``line_folder`` format, per split its folder of line files. The checksums of the parquet
    files are taken as they are written, those of the images are known from validation (line
    files are hashed as they are written), so nothing is read back."""

    def __init__(self, staging: Path, adapter: FormatAdapter, options: ExportOptions, scratch: Path):
        self.staging = staging
        self.adapter = adapter
        self.options = options
        self.data_files: dict[str, list[str]] = {}
        self.checksums: dict[str, dict[str, object]] = {}
        self._splits: dict[str, _SplitOutput] = {}
        # The image file names given so far, told apart as a case-insensitive disk would.
        self._names = Ledger(scratch / f"names-{adapter.name}.sqlite")
        views = (options.copy_images or options.include_base64) and not adapter.line_folder
        # The canonical column each of the format's columns is, if its projection passes them
        # all on as they are (as trocr's and generic's do): its rows are then the chunk's own.
        self.passed_on = _columns_passed_on(adapter, options.view())
        self.target = _FormatTarget(
            format_name=adapter.name,
            staging=os.fspath(staging),
            view_options=options.view(),
            views=views,
            # LLaMA-Factory's and ms-swift's view of a chat points to the images' files.
            text_chat=options.copy_images and adapter.is_chat,
            line_folders=options.copy_images and adapter.line_folder,
            max_shard_bytes=options.max_shard_bytes,
        )
        (staging / "data").mkdir()
        if options.copy_images and not adapter.line_folder:
            (staging / IMAGES_FOLDER).mkdir()

    def open_split(self, split: str) -> None:
        """Ready a split for rows: its views, its line folder."""
        if split in self._splits:
            return
        output = self._splits[split] = _SplitOutput()
        if self.target.views:
            output.view = (self.staging / self.adapter.view_name(split)).open("wb")
        if self.target.text_chat:
            output.text_chat_view = (self.staging / self.adapter.text_chat_view_name(split)).open("wb")
        if self.target.line_folders:
            (self.staging / split).mkdir()

    def names(self, ids: list[str], canonical_names: list[str]) -> list[str] | None:
        """The file name of each row's image (the canonical row's ``image.path``), in order, or
        None if no image file is written."""
        # Image files are written (and named) with copy_images: for the views, or a line folder.
        if not self.options.copy_images:
            return None
        return [
            self._unique_name(self.adapter.image_file_name(sample_id, name), sample_id)
            for sample_id, name in zip(ids, canonical_names, strict=True)
        ]

    def merge(self, written: _WrittenSplit) -> None:
        """Take a split's part of a chunk the workers wrote: its rows into the parquet, its view
        lines appended to the views, its files noted."""
        output = self._splits[written.split]
        if written.shards:
            # The rows before them are in the shard being written here: it ends with them.
            self._write(written.split, output)
            self._close_shard(output)
        for shard, sha256, size in written.shards:
            output.shards.append(shard)
            self.checksums[shard] = {"sha256": sha256, "bytes": size}
        rows = written.rows
        if isinstance(rows, str):
            path = rows
            with pa.OSFile(path) as source:
                rows = pa.ipc.open_file(source).read_all()
            os.remove(path)
        if rows is not None:
            self.add_rows(written.split, rows)
        for lines, view in ((written.view, output.view), (written.text_chat_view, output.text_chat_view)):
            if lines is not None:
                assert view is not None
                with open(lines, "rb") as part:
                    shutil.copyfileobj(part, view)
                os.remove(lines)
        # "sha256 size": parsed again for the manifest in 0.12 µs, where JSON takes 0.9 µs.
        self._names.add("paths", ((path, f"{sha256} {size}") for path, sha256, size in written.files))

    def add_rows(self, split: str, rows: pa.Table) -> None:
        """Rows of the format for the split's parquet, written once enough of them wait."""
        output = self._splits[split]
        output.pending.append(rows)
        output.pending_rows += rows.num_rows
        if output.pending_rows >= ROWS_PER_WRITE:
            self._write(split, output)

    def passed_on_rows(self, canonical: pa.Table) -> pa.Table:
        """The format's rows of canonical rows, for a format that passes canonical columns on."""
        assert self.passed_on is not None
        columns = [canonical.column(name) for name in self.passed_on]
        return pa.Table.from_arrays(columns, schema=self.adapter.features.arrow_schema)

    def discard(self) -> None:
        """Drop what was written, leaving the staging folder as it was before."""
        self.close_files()
        for name in ("data", IMAGES_FOLDER, *(self._splits if self.target.line_folders else ())):
            shutil.rmtree(self.staging / name, ignore_errors=True)
        for split in self._splits:
            for view_name in (self.adapter.view_name(split), self.adapter.text_chat_view_name(split)):
                (self.staging / view_name).unlink(missing_ok=True)

    def close_files(self) -> None:
        """Close every file without completing the batch (it failed, or is discarded)."""
        files = [
            file for output in self._splits.values() for file in (output.shard, output.view, output.text_chat_view)
        ]
        for file in (*files, self._names):
            if file is not None:
                with suppress(OSError, sqlite3.Error):
                    file.close()

    @property
    def noted_folders(self) -> frozenset[str]:
        """The batch's folders whose files the writer noted as it wrote them (see ``images``)."""
        return frozenset({IMAGES_FOLDER, *(self._splits if self.target.line_folders else ())})

    @property
    def text_chat_views(self) -> dict[str, str]:
        """The ``text_chat_record`` view of each split written, by split, in the batch's order."""
        return (
            {split: self.adapter.text_chat_view_name(split) for split in self._splits} if self.target.text_chat else {}
        )

    def images(self) -> Iterator[tuple[str, str, int]]:
        """The images (and line files) written, in the order of their paths: path, sha256, size."""
        for path, checksum in self._names.items("paths"):
            sha256, size = checksum.split(" ")
            yield path, sha256, int(size)

    def close(self, split_names: list[str]) -> None:
        """Write what is pending and number the shards; ``split_names`` in the batch's order."""
        for split in split_names:
            output = self._splits.get(split)
            if output is None:
                continue
            self._write(split, output)
            self._close_shard(output)
            if output.text_chat_view is not None:
                output.text_chat_view.close()
            if output.view is not None:
                output.view.close()
                if self.adapter.json_array_view:
                    view_path = self.staging / self.adapter.view_name(split)
                    _write_json_array(view_path, view_path.with_suffix(".json"))
            # Shards are numbered once their count is known.
            count = len(output.shards)
            self.data_files[split] = []
            for number, shard in enumerate(output.shards):
                relative = f"data/{split}-{number:05d}-of-{count:05d}.parquet"
                (self.staging / shard).rename(self.staging / relative)
                self.data_files[split].append(relative)
                self.checksums[relative] = self.checksums.pop(shard)

    def _write(self, split: str, output: _SplitOutput) -> None:
        if not output.pending:
            return
        rows = pa.concat_tables(output.pending)
        output.pending, output.pending_rows = [], 0
        if output.shard is None:
            path = f"data/.{split}-{len(output.shards):05d}.parquet"
            output.shards.append(path)
            output.shard = _Shard(self.staging / path, self.adapter.features)
        output.shard.write(rows)
        if output.shard.size >= self.target.max_shard_bytes:
            self._close_shard(output)

    def _close_shard(self, output: _SplitOutput) -> None:
        if output.shard is not None:
            sha256, size = output.shard.close()
            self.checksums[output.shards[-1]] = {"sha256": sha256, "bytes": size}
            output.shard = None

    def _unique_name(self, name: str, sample_id: str) -> str:
        """``name``, unless a file of the batch already has it: ids that differ only in case
        would share a file once the batch is copied to a case-insensitive disk (Windows,
        macOS), so the later one gets the id's digest too."""
        new, _ = self._names.remember("names", name.casefold())
        if not new:
            stem, dot, suffix = name.rpartition(".")
            digest = hashlib.sha256(sample_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
            name = f"{stem}-{digest}{dot}{suffix}"
            self._names.remember("names", name.casefold())
        return name


@dataclass
class _SplitOutput:
    """One split of a format being written: rows waiting to be written, the parquet shard being
    written, the shards so far, and the JSONL views (binary: the workers' lines are appended)."""

    pending: list[pa.Table] = field(default_factory=list)
    pending_rows: int = 0
    shard: _Shard | None = None
    shards: list[str] = field(default_factory=list)
    view: BinaryIO | None = None
    text_chat_view: BinaryIO | None = None


class _Shard:
    """A parquet file being written in a format's rows groups, its sha256 and size taken as it
    is written (nothing is read back)."""

    def __init__(self, path: Path, features: Features):
        self._file = _HashingFile(path)
        self._writer = pq.ParquetWriter(self._file, features.arrow_schema, **features.parquet_column_options)

    @property
    def size(self) -> int:
        return self._file.size

    def write(self, rows: pa.Table) -> None:
        self._writer.write_table(rows, ROWS_PER_ROW_GROUP)

    def close(self) -> tuple[str, int]:
        """Close it (its file even if its footer cannot be written): its sha256 and size."""
        try:
            self._writer.close()
        finally:
            self._file.close()
        return self._file.digest.hexdigest(), self._file.size


class _HashingFile(io.RawIOBase):
    """A new file that takes the sha256 and size of what is written to it as it is written."""

    def __init__(self, path: Path):
        super().__init__()
        self._file = path.open("xb")
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self._file.write(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        self._file.close()
        super().close()


def _write_json_array(lines_path: Path, array_path: Path) -> None:
    """The JSON array form of a JSONL view, one element per line between its brackets, written
    line by line as the view was (a view of a million rows is never held whole)."""
    with lines_path.open(encoding="utf-8") as lines, array_path.open("w", encoding="utf-8") as array:
        separator = "\n"
        array.write("[")
        for line in lines:
            array.write(separator + line.rstrip("\n"))
            separator = ",\n"
        array.write("]\n" if separator == "\n" else "\n]\n")


def _write_jsonl(path: Path, records: list[dict]) -> None:
    if records:
        with path.open("w", encoding="utf-8") as lines:
            lines.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def _rejection_reasons(rejected: list[SampleError]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for problem in rejected:
        counts[problem.reason] += problem.sample_count
    return dict(counts.most_common())


def _rejection_record(problem: SampleError) -> dict:
    # The source path is left out on purpose: the batch may travel, the id and line suffice.
    # "samples": how many input samples the record stands for (a page file: its lines).
    return {
        "id": problem.sample_id,
        "location": problem.location,
        "problem": problem.problem,
        "fix": problem.fix,
        "codes": list(problem.codes),
        "samples": problem.sample_count,
    }


class _BatchFiles:
    """The files of a batch, as sorted relative POSIX paths, listed anew each time they are
    iterated: every file but the manifest and the export's own working files, with the files of
    ``noted_folders`` (the images, line folders) as the writer noted them (``images``: path,
    sha256 and size, in the order of their paths), so that the names of a million images are
    never in memory together."""

    def __init__(
        self, folder: Path, images: Callable[[], Iterator[tuple[str, str, int]]], noted_folders: frozenset[str]
    ):
        self.folder = folder
        self.images = images
        self.noted_folders = noted_folders

    def __iter__(self) -> Iterator[str]:
        others: list[str] = []
        # os.walk rather than Path.rglob: pathlib's per-path objects cost more than the walk.
        for directory, folders, names in os.walk(self.folder):
            prefix = os.path.relpath(directory, self.folder).replace(os.sep, "/")
            if prefix == ".":
                folders[:] = [name for name in folders if name not in self.noted_folders and name != SCRATCH_NAME]
                # The manifest lists the batch's files, not itself (it is being written as they are listed).
                others += (name for name in names if name != MANIFEST_NAME)
            else:
                others += (f"{prefix}/{name}" for name in names)
        return heapq.merge(sorted(others), (path for path, _, _ in self.images()))


def _checksums(
    folder: Path,
    files: Iterable[str],
    known: dict[str, dict[str, object]],
    images: Iterable[tuple[str, str, int]],
    noted_folders: frozenset[str],
) -> Iterator[tuple[str, dict[str, object]]]:
    """sha256 and size of ``files``: those taken while writing them (``known``: the parquet
    files; ``images``: path, sha256 and size of each file of ``noted_folders``), every other
    file read now."""
    for name in files:
        if name in known:
            yield name, known[name]
        elif name.partition("/")[0] not in noted_folders:
            with open(folder / name, "rb") as file:
                yield (
                    name,
                    {
                        "sha256": hashlib.file_digest(file, "sha256").hexdigest(),
                        "bytes": os.fstat(file.fileno()).st_size,
                    },
                )
    for name, sha256, size in images:
        yield name, {"sha256": sha256, "bytes": size}
