"""The only module that touches the export folder: a batch per format, each built aside, all renamed
into place together."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.parquet as pq
from datasets.utils.tqdm import tqdm
from filelock import BaseFileLock, FileLock, Timeout

from .adapters import ADAPTERS, FormatAdapter, ViewImage
from .builders import OcrSamples
from .card import dataset_card
from .errors import BatchExistsError, ExportWriteError
from .images import data_url
from .manifest import MANIFEST_NAME, ExportResult, build_manifest, result_from_manifest, write_manifest
from .names import check_batch_id
from .options import ExportOptions
from .packed import PackedSamples
from .samples import SampleError
from .validation import CheckedSample

VIEW_ROWS_PER_BATCH = 256
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
# Where the view pass notes each image's checksum as it writes it; removed before the batch is published.
IMAGE_CHECKSUM_LOG = ".image-checksums.jsonl"
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


def write_batches(
    contents: BatchContents,
    *,
    adapters: list[FormatAdapter],
    batch_id: str,
    export_root: Path,
    options: ExportOptions,
    num_proc: int | None = None,
    overwrite: bool = False,
) -> list[ExportResult]:
    """Write one batch folder per format, ``export_root/<format folder>/batch_id``, and return
    their results. The batches are published all together or not at all.

    Every batch is built in a hidden staging folder beside its final place; only when all are
    complete are they renamed into place (``_publish``). Whatever goes wrong before, every
    staging folder is removed and nothing was written.
    """
    check_batch_id(batch_id)
    staged: list[_Staged] = []
    manifests: list[dict[str, Any]] = []
    where = export_root / adapters[0].folder
    lock = None
    try:
        token, lock, staging = _claim(export_root, where, batch_id)
        for adapter in adapters:
            where = export_root / adapter.folder
            if staged:
                staging = _new_staging(where, batch_id, token)
            staged.append(_Staged(staging, where / batch_id))
            manifests.append(_fill_staging(staging, contents, adapter, batch_id, options, num_proc))
        where = export_root
        _publish(export_root, token, batch_id, staged, overwrite)
    except BaseException as error:
        for batch in staged:
            shutil.rmtree(batch.staging, ignore_errors=True)
        if isinstance(error, OSError) and not isinstance(error, FileExistsError):
            raise _write_error(error, batch_id, where) from error
        raise
    finally:
        if lock is not None:
            _release(lock)
    return [
        result_from_manifest(batch.final / MANIFEST_NAME, manifest)
        for batch, manifest in zip(staged, manifests, strict=True)
    ]


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


def _fill_staging(
    staging: Path,
    contents: BatchContents,
    adapter: FormatAdapter,
    batch_id: str,
    options: ExportOptions,
    num_proc: int | None,
) -> dict:
    """Write one format's batch into ``staging`` and return its manifest."""
    created_at = datetime.now(UTC).isoformat(timespec="microseconds")
    splits = {name: samples for name, samples in contents.splits.items() if samples}
    data_files = _write_parquet(staging, splits, adapter, options, num_proc)
    image_log = staging / IMAGE_CHECKSUM_LOG
    if options.copy_images or options.include_base64:
        with image_log.open("w", encoding="utf-8") as log:
            _write_views(staging, adapter, data_files, options, log)
    _write_jsonl(staging / REJECTED_NAME, [_rejection_record(problem) for problem in contents.rejected])
    _write_jsonl(
        staging / DUPLICATES_NAME, [{"id": dropped, "duplicate_of": kept} for dropped, kept in contents.duplicates]
    )
    fingerprint = content_fingerprint(staging, data_files)
    config_name = f"{adapter.folder}-{batch_id}-{fingerprint[:12]}"
    split_counts = {split: len(samples) for split, samples in contents.splits.items()}
    (staging / "README.md").write_text(
        dataset_card(
            adapter=adapter,
            batch_id=batch_id,
            config_name=config_name,
            data_files=data_files,
            created_at=created_at,
            counts=contents.counts,
            statistics=contents.statistics,
        ),
        encoding="utf-8",
    )
    files = _relative_files(staging, leaving_out=IMAGE_CHECKSUM_LOG)
    manifest = build_manifest(
        export_format=adapter.name,
        batch_id=batch_id,
        created_at=created_at,
        config_name=config_name,
        fingerprint=fingerprint,
        counts=contents.counts,
        splits=split_counts,
        statistics=contents.statistics,
        options=options.recorded(),
        model_config=adapter.model_config,
        files=files,
        rejection_reasons=_rejection_reasons(contents.rejected),
    )
    write_manifest(staging / MANIFEST_NAME, manifest, _checksums(staging, files, image_log))
    image_log.unlink(missing_ok=True)
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


def _publish(export_root: Path, token: str, batch_id: str, staged: list[_Staged], overwrite: bool) -> None:
    """Rename every finished batch into place, all or none; an old batch is replaced only now
    that every new one is whole.

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
            manifest_sha256=_file_sha256(batch.staging / MANIFEST_NAME),
        )
        for batch in staged
    ]
    swapping = export_root / _journal_name(token, "swapping")
    committed = export_root / _journal_name(token, "committed")
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
        _remove_set_aside(export_root, moves)
        committed.unlink()
    except BaseException as error:
        # Told by the journal's name rather than by how far this code got: an interruption can
        # land just after the rename that commits.
        if not committed.exists():
            # If undoing fails too, the journal stays for the next export to undo.
            _undo(export_root, moves)
            swapping.unlink(missing_ok=True)
            raise
        if not isinstance(error, (KeyboardInterrupt, OSError)):
            raise
        # Published already, and only tidying up was cut short: what is left of the old batches,
        # and the journal, the next export removes.


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


def _write_parquet(
    staging: Path,
    splits: dict[str, PackedSamples[CheckedSample]],
    adapter: FormatAdapter,
    options: ExportOptions,
    num_proc: int | None,
) -> dict[str, list[str]]:
    """Let the ``datasets`` builder write the parquet shards, then give them the batch's names."""
    build_dir, cache_dir = staging / ".build", staging / ".cache"
    builder = OcrSamples(
        cache_dir=str(cache_dir), config_name=adapter.name, export_format=adapter.name, options=options, splits=splits
    )
    builder.prepare(
        output_dir=str(build_dir), file_format="parquet", num_proc=num_proc, max_shard_size=options.max_shard_size
    )
    data_dir = staging / "data"
    data_dir.mkdir()
    data_files: dict[str, list[str]] = {}
    for split in splits:
        pattern = re.compile(re.escape(f"{builder.dataset_name}-{split}") + r"(-\d{5}-of-\d{5})?\.parquet")
        shards = sorted(path for path in build_dir.iterdir() if pattern.fullmatch(path.name))
        data_files[split] = []
        for number, shard in enumerate(shards):
            relative = f"data/{split}-{number:05d}-of-{len(shards):05d}.parquet"
            shard.rename(staging / relative)
            data_files[split].append(relative)
    # datasets leaves its cache, build folder and lock files behind; none belongs in the batch.
    for leftover in staging.iterdir():
        if leftover.name.startswith(".") or leftover.suffix == ".lock":
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    return data_files


def content_fingerprint(folder: Path, data_files: dict[str, list[str]]) -> str:
    """sha256 of the batch's rows, whatever shards hold them: a serial and a ``num_proc`` build
    of the same samples agree, though their parquet files differ.

    Rows are regrouped into fixed batches of ``VIEW_ROWS_PER_BATCH`` and each is hashed in
    Arrow's IPC form, which lays a batch out the same way however it was read.
    """
    digest = hashlib.sha256()
    for split, paths in data_files.items():
        digest.update(split.encode())
        pending: list[pa.Table] = []
        for path in paths:
            for rows in _row_batches(folder / path):
                pending.append(pa.Table.from_batches([rows]))
                table = pa.concat_tables(pending)
                while table.num_rows >= VIEW_ROWS_PER_BATCH:
                    _hash_rows(digest, table.slice(0, VIEW_ROWS_PER_BATCH))
                    table = table.slice(VIEW_ROWS_PER_BATCH)
                pending = [table] if table.num_rows else []
        if pending:
            _hash_rows(digest, pa.concat_tables(pending))
    return digest.hexdigest()


def _hash_rows(digest, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table.combine_chunks())
    digest.update(sink.getvalue())


def _write_views(
    staging: Path, adapter: FormatAdapter, data_files: dict[str, list[str]], options: ExportOptions, image_log: TextIO
) -> None:
    """JSONL views (and ``images/``) for tools outside the Hugging Face world, read back from
    the parquet; each image's checksum goes to ``image_log``."""
    images_dir = staging / IMAGES_FOLDER
    if options.copy_images:
        images_dir.mkdir()
    total = sum(pq.ParquetFile(staging / path).metadata.num_rows for paths in data_files.values() for path in paths)
    used_names: set[str] = set()
    view_options = options.view()
    with tqdm(total=total, desc=f"Writing {adapter.name} views", unit=" samples") as progress:
        for split, paths in data_files.items():
            view_path = staging / adapter.view_name(split)
            with view_path.open("w", encoding="utf-8") as view:
                for path in paths:
                    for batch in _row_batches(staging / path):
                        for row in batch.to_pylist():
                            images = _place_images(row, adapter, images_dir, options, used_names, image_log)
                            view.write(
                                json.dumps(adapter.view_record(row, images, view_options), ensure_ascii=False) + "\n"
                            )
                        progress.update(batch.num_rows)
            if adapter.json_array_view:
                _write_json_array(view_path, view_path.with_suffix(".json"))


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


def _row_batches(path: Path):
    # pre_buffer (pyarrow's default) keeps every buffer it has read, and mimalloc (pyarrow's
    # default allocator) keeps freed pages until asked to return them: either made memory grow
    # with the batch (30,000 lines: 320 MB peak in the view pass, 247 MB with both avoided).
    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=VIEW_ROWS_PER_BATCH):
        yield batch
        pa.default_memory_pool().release_unused()


def _place_images(
    row: dict, adapter: FormatAdapter, images_dir: Path, options: ExportOptions, used_names: set[str], image_log: TextIO
) -> list[ViewImage]:
    placed = []
    for image in adapter.images(row):
        relative = None
        if options.copy_images:
            name = image["path"]
            # Ids that differ only in case would share a file once the batch is copied to a
            # case-insensitive disk (Windows, macOS): the later one gets the id's digest too.
            if name.casefold() in used_names:
                stem, dot, suffix = name.rpartition(".")
                name = (
                    f"{stem}-{hashlib.sha256(row['id'].encode('utf-8', 'surrogatepass')).hexdigest()[:12]}{dot}{suffix}"
                )
            used_names.add(name.casefold())
            relative = f"{IMAGES_FOLDER}/{name}"
            # "x" mode: two rows never silently share one file.
            with (images_dir / name).open("xb") as file:
                file.write(image["bytes"])
            image_log.write(
                json.dumps(
                    [relative, hashlib.sha256(image["bytes"]).hexdigest(), len(image["bytes"])], ensure_ascii=False
                )
                + "\n"
            )
        placed.append(
            ViewImage(path=relative, data_url=data_url(image["bytes"], row["id"]) if options.include_base64 else None)
        )
    return placed


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


def _relative_files(folder: Path, leaving_out: str) -> list[str]:
    """Every file in ``folder`` but ``leaving_out``, as sorted relative POSIX paths."""
    files: list[str] = []
    # os.walk rather than Path.rglob: a batch may hold 100,000 image files, and pathlib's
    # per-path objects cost more than the walk itself.
    for directory, _folders, names in os.walk(folder):
        prefix = os.path.relpath(directory, folder).replace(os.sep, "/")
        files += (name if prefix == "." else f"{prefix}/{name}" for name in names)
    return sorted(name for name in files if name != leaving_out)


def _checksums(folder: Path, files: list[str], image_log: Path) -> Iterator[tuple[str, dict[str, object]]]:
    """sha256 and size of ``files``: images from the log the view pass kept while writing them
    (so they are not read back), every other file read now."""
    for name in files:
        if not name.startswith(IMAGES_FOLDER + "/"):
            with open(folder / name, "rb") as file:
                yield (
                    name,
                    {
                        "sha256": hashlib.file_digest(file, "sha256").hexdigest(),
                        "bytes": os.fstat(file.fileno()).st_size,
                    },
                )
    if image_log.exists():
        with image_log.open(encoding="utf-8") as log:
            for line in log:
                name, digest, size = json.loads(line)
                yield name, {"sha256": digest, "bytes": size}
