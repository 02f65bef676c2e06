"""The only module that touches the export folder: one batch, built aside and renamed into place."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import secrets
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.parquet as pq
from datasets.utils.tqdm import tqdm

from .adapters import ExportOptions, FormatAdapter, ViewImage
from .builders import OcrSamples
from .card import dataset_card
from .images import data_url
from .manifest import MANIFEST_NAME, ExportResult, build_manifest, result_from_manifest, write_manifest
from .names import check_batch_id
from .packed import PackedSamples
from .samples import SampleError
from .validation import CheckedSample

VIEW_ROWS_PER_BATCH = 256
STAGING_SUFFIX = ".partial"
_REPLACED = re.compile(r"\.(?P<batch>.+)\.replaced-(?P<pid>\d+)")
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


def write_batch(
    contents: BatchContents,
    *,
    adapter: FormatAdapter,
    batch_id: str,
    format_root: Path,
    options: ExportOptions,
    num_proc: int | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write one batch folder ``format_root/batch_id`` and return its result.

    Everything is written into a hidden staging folder beside the final one and renamed at the
    end, so a batch appears complete or not at all.
    """
    check_batch_id(batch_id)
    final = format_root / batch_id
    if final.exists() and not overwrite:
        raise batch_exists_error(final)
    try:
        format_root.mkdir(parents=True, exist_ok=True)
        # The format folder's lock keeps another export's clean-up from taking a staging folder
        # between its mkdir and its lock.
        root_lock = _lock(format_root)
        try:
            clean_leftovers(format_root)
            # Hidden, so list_exports skips it; made with mkdir so the batch gets the user's umask.
            staging = format_root / f".{batch_id}.{secrets.token_hex(6)}{STAGING_SUFFIX}"
            staging.mkdir()
            # Held until the batch is renamed into place: a staging folder nobody holds is a leftover.
            lock = _lock(staging)
        finally:
            os.close(root_lock)
    except OSError as error:
        raise _write_error(error, batch_id, format_root) from error
    try:
        created_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        splits = {name: samples for name, samples in contents.splits.items() if samples}
        data_files = _write_parquet(staging, splits, adapter, options, num_proc)
        image_log = staging / IMAGE_CHECKSUM_LOG
        if options.copy_images or options.include_base64:
            with image_log.open("w", encoding="utf-8") as log:
                _write_views(staging, adapter, data_files, options, log)
        _write_jsonl(staging / REJECTED_NAME, [_rejection_record(problem) for problem in contents.rejected])
        _write_jsonl(staging / DUPLICATES_NAME, [{"id": dropped, "duplicate_of": kept} for dropped, kept in contents.duplicates])
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
            options=asdict(options),
            model_config=adapter.model_config,
            files=files,
        )
        write_manifest(staging / MANIFEST_NAME, manifest, _checksums(staging, files, image_log))
        image_log.unlink(missing_ok=True)
        _publish(staging, final, overwrite)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and not isinstance(error, FileExistsError):
            raise _write_error(error, batch_id, format_root) from error
        raise
    finally:
        os.close(lock)
    return result_from_manifest(final / MANIFEST_NAME, manifest)


def clean_leftovers(format_root: Path) -> None:
    """Remove what killed exports left behind: staging folders no live process holds, and an old
    batch set aside by an interrupted overwrite (restored if its replacement never arrived)."""
    for entry in format_root.iterdir():
        if not entry.name.startswith(".") or not entry.is_dir():
            continue
        if entry.name.endswith(STAGING_SUFFIX) and _abandoned(entry):
            shutil.rmtree(entry, ignore_errors=True)
        elif (match := _REPLACED.fullmatch(entry.name)) and not _process_alive(int(match["pid"])):
            original = format_root / match["batch"]
            if original.exists():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.rename(original)


def _lock(folder: Path) -> int:
    descriptor = os.open(folder, os.O_RDONLY)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor


def _abandoned(staging: Path) -> bool:
    try:
        descriptor = os.open(staging, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_error(error: OSError, batch_id: str, format_root: Path) -> OSError:
    where = f" ({error.filename})" if error.filename else ""
    return OSError(
        error.errno,
        f"could not write batch {batch_id!r} under {format_root}: {error.strerror or error}{where}; nothing was written "
        "(free some space, or choose an output folder you can write to)",
    )


def batch_exists_error(batch_path: Path) -> FileExistsError:
    return FileExistsError(
        f"batch {batch_path.name!r} already exists at {batch_path}: choose another batch id, or overwrite=True (--overwrite) to replace it"
    )


def _write_parquet(
    staging: Path, splits: dict[str, PackedSamples[CheckedSample]], adapter: FormatAdapter, options: ExportOptions, num_proc: int | None
) -> dict[str, list[str]]:
    """Let the ``datasets`` builder write the parquet shards, then give them the batch's names."""
    build_dir, cache_dir = staging / ".build", staging / ".cache"
    builder = OcrSamples(cache_dir=str(cache_dir), config_name=adapter.name, export_format=adapter.name, options=options, splits=splits)
    builder.prepare(output_dir=str(build_dir), file_format="parquet", num_proc=num_proc, max_shard_size=options.max_shard_size)
    data_dir = staging / "data"
    data_dir.mkdir()
    data_files = {}
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


def _write_views(staging: Path, adapter: FormatAdapter, data_files: dict[str, list[str]], options: ExportOptions, image_log: TextIO) -> None:
    """JSONL views (and ``images/``) for tools outside the Hugging Face world, read back from
    the parquet; each image's checksum goes to ``image_log``."""
    images_dir = staging / IMAGES_FOLDER
    if options.copy_images:
        images_dir.mkdir()
    total = sum(pq.ParquetFile(staging / path).metadata.num_rows for paths in data_files.values() for path in paths)
    used_names: set[str] = set()
    with tqdm(total=total, desc=f"Writing {adapter.name} views", unit=" samples") as progress:
        for split, paths in data_files.items():
            view_path = staging / adapter.view_name(split)
            array_path = view_path.with_suffix(".json") if adapter.json_array_view else None
            array_opener = array_path.open("w", encoding="utf-8") if array_path else nullcontext()
            with view_path.open("w", encoding="utf-8") as view, array_opener as array_view:
                first = True
                for path in paths:
                    for batch in _row_batches(staging / path):
                        for row in batch.to_pylist():
                            record = adapter.view_record(row, _place_images(row, adapter, images_dir, options, used_names, image_log), options)
                            line = json.dumps(record, ensure_ascii=False)
                            view.write(line + "\n")
                            if array_view is not None:
                                array_view.write(("[\n" if first else ",\n") + line)
                            first = False
                        progress.update(batch.num_rows)
                if array_view is not None:
                    array_view.write("[]\n" if first else "\n]\n")


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
    cell = row[adapter.image_column]
    placed = []
    for image in cell if isinstance(cell, list) else [cell]:
        relative = None
        if options.copy_images:
            name = image["path"]
            # Ids that differ only in case would share a file once the batch is copied to a
            # case-insensitive disk (Windows, macOS): the later one gets the id's digest too.
            if name.casefold() in used_names:
                stem, dot, suffix = name.rpartition(".")
                name = f"{stem}-{hashlib.sha256(row['id'].encode('utf-8', 'surrogatepass')).hexdigest()[:12]}{dot}{suffix}"
            used_names.add(name.casefold())
            relative = f"{IMAGES_FOLDER}/{name}"
            # "x" mode: two rows never silently share one file.
            with (images_dir / name).open("xb") as file:
                file.write(image["bytes"])
            image_log.write(json.dumps([relative, hashlib.sha256(image["bytes"]).hexdigest(), len(image["bytes"])], ensure_ascii=False) + "\n")
        placed.append(ViewImage(path=relative, data_url=data_url(image["bytes"], row["id"]) if options.include_base64 else None))
    return placed


def _write_jsonl(path: Path, records: list[dict]) -> None:
    if records:
        with path.open("w", encoding="utf-8") as lines:
            lines.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def _rejection_record(problem: SampleError) -> dict:
    # The source path is left out on purpose: the batch may travel, the id and line suffice.
    return {"id": problem.sample_id, "location": problem.location, "problem": problem.problem, "fix": problem.fix}


def _relative_files(folder: Path, leaving_out: str) -> list[str]:
    """Every file in ``folder`` but ``leaving_out``, as sorted relative POSIX paths."""
    files = []
    # os.walk rather than Path.rglob: a batch may hold 100,000 image files, and pathlib's
    # per-path objects cost more than the walk itself.
    for directory, folders, names in os.walk(folder):
        prefix = os.path.relpath(directory, folder).replace(os.sep, "/")
        files += (name if prefix == "." else f"{prefix}/{name}" for name in names)
    return sorted(name for name in files if name != leaving_out)


def _checksums(folder: Path, files: list[str], image_log: Path) -> Iterator[tuple[str, dict[str, object]]]:
    """sha256 and size of ``files``: images from the log the view pass kept while writing them
    (so they are not read back), every other file read now."""
    for name in files:
        if not name.startswith(IMAGES_FOLDER + "/"):
            with open(folder / name, "rb") as file:
                yield name, {"sha256": hashlib.file_digest(file, "sha256").hexdigest(), "bytes": os.fstat(file.fileno()).st_size}
    if image_log.exists():
        with image_log.open(encoding="utf-8") as log:
            for line in log:
                name, digest, size = json.loads(line)
                yield name, {"sha256": digest, "bytes": size}


def _publish(staging: Path, final: Path, overwrite: bool) -> None:
    """Rename the finished batch into place; an old batch is replaced only now that the new one is whole."""
    replaced = None
    if overwrite and final.exists():
        replaced = final.with_name(f".{final.name}.replaced-{os.getpid()}")
        final.rename(replaced)
    try:
        staging.rename(final)
    except OSError:
        if replaced is not None:
            replaced.rename(final)
        raise FileExistsError(f"batch {final.name!r} appeared at {final} while this export ran: export again with another batch id") from None
    if replaced is not None:
        shutil.rmtree(replaced)
