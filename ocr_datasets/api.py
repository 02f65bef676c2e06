"""The Python API: every CLI command is one call here."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import datasets
from datasets.utils.tqdm import are_progress_bars_disabled

from .adapters import ADAPTERS, DEFAULT_INSTRUCTION, ExportOptions, get_adapter
from .builders import OcrSamples
from .manifest import MANIFEST_NAME, ExportResult, result_from_manifest
from .names import check_batch_id
from .samples import SampleError, TrainingSample
from .writer import batch_exists_error, write_batch

DEFAULT_OUTPUT_DIR = "ocr-exports"
ALL_FORMATS = "all"


def resolve_output_dir(output_dir: str | os.PathLike[str] | None = None) -> Path:
    """``output_dir`` if given, else ``$OCR_EXPORT_PATH``, else ``./ocr-exports``."""
    return Path(output_dir or os.environ.get("OCR_EXPORT_PATH") or DEFAULT_OUTPUT_DIR)


def build_dataset(
    samples: Iterable[TrainingSample], *, cache_dir: str | os.PathLike[str] | None = None, num_proc: int | None = None
) -> datasets.Dataset:
    """The canonical Arrow dataset of ``samples``: ``id``, ``image`` (``Image()``, bytes embedded),
    ``ground_truth``, ``ocr_text``, ``ocr_confidence``, ``metadata`` (a JSON string).

    Written by the ``datasets`` builder into ``cache_dir`` (``datasets``' own cache by default),
    under a name derived from the samples, so the same samples are built once and changed ones
    are built anew. Memory stays flat: images are read a table at a time.
    """
    samples = _checked(samples)
    builder = OcrSamples(
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        config_name=f"canonical-{_fingerprint(samples)[:16]}",
        splits={"train": samples},
    )
    builder.prepare(num_proc=num_proc)
    return builder.as_dataset(split="train")


def export(
    samples: Iterable[TrainingSample],
    export_format: str,
    batch_id: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    copy_images: bool = True,
    include_base64: bool = False,
    instruction: str = DEFAULT_INSTRUCTION,
    num_proc: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> ExportResult | list[ExportResult]:
    """Export ``samples`` as one batch of ``export_format`` (``trocr``, ``llama_vision``,
    ``generic``) into ``<output_dir>/<format folder>/<batch_id>/``; ``"all"`` exports every
    format under one batch id and returns a list of results.

    ``batch_id`` defaults to the current UTC time plus a random suffix; ``output_dir`` to
    ``$OCR_EXPORT_PATH`` or ``./ocr-exports``. See ``ExportOptions`` for the other options.
    """
    adapters = list(ADAPTERS.values()) if export_format == ALL_FORMATS else [get_adapter(export_format)]
    batch_id = check_batch_id(batch_id) if batch_id is not None else _new_batch_id()
    samples = _checked(samples)
    options = ExportOptions(copy_images=copy_images, include_base64=include_base64, instruction=instruction)
    root = resolve_output_dir(output_dir)
    if not overwrite:
        # Checked for every format first, so "all" does not stop after writing some of them.
        for adapter in adapters:
            if (root / adapter.folder / batch_id).exists():
                raise batch_exists_error(root / adapter.folder / batch_id)
    counts = {"input": len(samples), "exported": len(samples), "rejected": 0, "duplicates": 0}
    with _progress_bars(progress):
        results = [
            write_batch(
                splits={"train": samples},
                adapter=adapter,
                batch_id=batch_id,
                format_root=root / adapter.folder,
                options=options,
                counts=counts,
                num_proc=num_proc,
                overwrite=overwrite,
            )
            for adapter in adapters
        ]
    return results if export_format == ALL_FORMATS else results[0]


def list_exports(export_format: str | None = None, output_dir: str | os.PathLike[str] | None = None) -> list[ExportResult]:
    """The finished batches under the output folder, newest first, optionally of one format."""
    root = resolve_output_dir(output_dir)
    adapters = list(ADAPTERS.values()) if export_format in (None, ALL_FORMATS) else [get_adapter(export_format)]
    results = []
    for adapter in adapters:
        for manifest_path in sorted((root / adapter.folder).glob(f"*/{MANIFEST_NAME}")):
            # Hidden folders are batches being written or replaced, never finished ones.
            if manifest_path.parent.name.startswith("."):
                continue
            try:
                results.append(result_from_manifest(manifest_path, json.loads(manifest_path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError) as error:
                warnings.warn(f"skipping {manifest_path}: not a readable batch manifest ({error!r})", stacklevel=2)
    return sorted(results, key=lambda result: (result.created_at, result.batch_id), reverse=True)


def _checked(samples: Iterable[TrainingSample]) -> list[TrainingSample]:
    """Samples as a list (the builder shares them among workers), with ids unique and present."""
    samples = list(samples)
    if not samples:
        raise ValueError("no samples to export: the input holds no records")
    for sample in samples:
        if not isinstance(sample, TrainingSample):
            raise TypeError(f"expected TrainingSample objects, got {type(sample).__name__}")
    repeated = [sample_id for sample_id, count in Counter(sample.id for sample in samples).items() if count > 1]
    if repeated:
        shown = ", ".join(repr(sample_id) for sample_id in repeated[:10])
        raise SampleError(repeated[0], f"{len(repeated)} id(s) occur more than once: {shown}", "give every sample its own id")
    return samples


def _fingerprint(samples: list[TrainingSample]) -> str:
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(sample.identity().encode())
    return digest.hexdigest()


def _new_batch_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"


class _progress_bars:
    """Turn ``datasets``' (and our) progress bars off for one call, restoring the user's setting."""

    def __init__(self, enabled: bool):
        self._enabled = enabled

    def __enter__(self):
        self._was_disabled = are_progress_bars_disabled()
        if not self._enabled:
            datasets.disable_progress_bars()

    def __exit__(self, *exc):
        if not self._was_disabled:
            datasets.enable_progress_bars()
