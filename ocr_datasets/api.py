"""The Python API: every CLI command is one call here."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterable, Mapping
from contextlib import closing, nullcontext
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .adapters import ADAPTERS, ALL_FORMATS, FORMAT_NAMES, get_adapter
from .canonical import rows_fingerprint
from .errors import InterruptedAfterPublishing, OptionError
from .manifest import MANIFEST_NAME, ExportResult, result_from_manifest
from .names import check_batch_id
from .notices import warn
from .offline import offline
from .options import ExportOptions, options_of
from .progress import progress_bars
from .samples import SampleError, TrainingSample
from .splits import assign_splits
from .statistics import split_statistics
from .validation import ImageCheck, ValidationError, ValidationReport, validate
from .verdicts import CACHE_FOLDER, VerdictCache, cache_path
from .writer import BatchContents, BatchWriter, prepare_batches

if TYPE_CHECKING:
    import datasets

    from .ray_engine import RayEngine

DEFAULT_OUTPUT_DIR = "ocr-exports"


def resolve_output_dir(output_dir: str | os.PathLike[str] | None = None) -> Path:
    """``output_dir`` if given, else ``$OCR_EXPORT_PATH``, else ``./ocr-exports``."""
    return Path(output_dir or os.environ.get("OCR_EXPORT_PATH") or DEFAULT_OUTPUT_DIR)


@offline
def build_dataset(
    samples: Iterable[TrainingSample | SampleError],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    **options,
) -> datasets.Dataset:
    """The canonical Arrow dataset of the valid ``samples``: ``id``, ``image`` (``Image()``, bytes
    embedded), ``ground_truth``, ``ocr_text``, ``ocr_confidence``, ``metadata`` (a JSON string).

    Samples are validated, normalised and de-duplicated as in ``export``, with the options of
    ``ExportOptions`` that apply here (``skip_invalid``, which leaves invalid samples out with a
    warning; ``keep_duplicates``, ``normalize``, ``keep_image_metadata``, ``num_proc``). The
    dataset is written by the ``datasets`` builder into ``cache_dir`` (``datasets``' own cache by
    default) under a name derived from the validated samples, so the same samples are built once
    and changed ones anew. Memory stays flat: images are read a table at a time.
    """
    from .builders import OcrSamples  # imports datasets, which an export does without

    settings = options_of(ExportOptions, options, where="build_dataset", only_build=True)
    with progress_bars(progress):
        report = _validated(samples, settings)
        if report.rejected:
            warn(f"left out {report.counts['rejected']} invalid sample(s): {'; '.join(map(str, report.rejected[:5]))}")
        builder = OcrSamples(
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            config_name=f"canonical-{rows_fingerprint({'train': report.accepted})[:16]}",
            options=settings,
            splits={"train": report.accepted},
        )
        builder.prepare(num_proc=settings.num_proc)
    return builder.as_dataset(split="train")


def export(
    samples: Iterable[TrainingSample | SampleError],
    export_format: str,
    batch_id: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    **options,
) -> ExportResult:
    """Export ``samples`` as one batch of ``export_format`` (``trocr``, ``llama_vision``,
    ``generic``) into ``<output_dir>/<format folder>/<batch_id>/`` and return its result;
    ``export_all`` writes several formats at once. ``options`` are those of ``ExportOptions``.

    Every sample is validated first. Strict by default: any invalid sample raises one
    ``ValidationError`` naming every problem, and nothing is written; ``skip_invalid`` exports
    the valid ones and lists the others in the batch's ``rejected.jsonl``. Identical image and
    text are exported once (``keep_duplicates`` keeps them all). ``split`` (``"train=0.8,
    validation=0.1,test=0.1"`` or a dict) assigns whole groups (``group_by``: a metadata key; by
    default each sample is its own group) by a hash of the group key and ``seed``; with
    ``split_strategy="balanced"`` proportions are exact to one group but adding groups may move
    others (see ``assign_splits``). A split that comes out empty is an error unless
    ``allow_empty_splits`` (then a warning, and the split is written empty). Texts are
    normalised with ``normalize`` (NFC, NFD, NFKC, none), whitespace trimmed and collapsed.
    Images get their EXIF orientation applied and lose EXIF, GPS, XMP, ICC profiles, comments
    and PNG text chunks, unless ``keep_image_metadata``. An existing batch is an error unless
    ``overwrite``, which replaces it once the new batch is complete, and which refuses a folder
    that is not a batch (no ``manifest.json``).

    ``batch_id`` defaults to the current UTC time plus a random suffix; ``output_dir`` to
    ``$OCR_EXPORT_PATH`` or ``./ocr-exports``.
    """
    if export_format == ALL_FORMATS:
        raise OptionError(
            f"export_format {ALL_FORMATS!r} writes a batch per format: call export_all(...) for it (--format all)"
        )
    [result] = _export(
        samples,
        [get_adapter(export_format)],
        batch_id,
        output_dir,
        options_of(ExportOptions, options, where="export"),
        progress,
    )
    return result


def export_all(
    samples: Iterable[TrainingSample | SampleError],
    batch_id: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    formats: Iterable[str] | None = None,
    progress: bool = True,
    **options,
) -> list[ExportResult]:
    """``export`` to several formats at once (``formats``, by default every one) under one batch
    id, validating the samples once: one result per format, in the order of ``formats``. Every
    format's batch is published or none is: they are built aside and renamed into place
    together (see ``BatchWriter``)."""
    adapters = [get_adapter(name) for name in (FORMAT_NAMES if formats is None else formats)]
    return _export(
        samples, adapters, batch_id, output_dir, options_of(ExportOptions, options, where="export_all"), progress
    )


def _export(samples, adapters, batch_id, output_dir, options: ExportOptions, progress: bool) -> list[ExportResult]:
    batch_id = check_batch_id(batch_id) if batch_id is not None else _new_batch_id()
    root = resolve_output_dir(output_dir)
    # Before validation, so that a batch id that is taken is reported at once.
    prepare_batches(root, adapters, batch_id, options.overwrite)
    # ExportOptions reads split into its ratios (parse_split_spec) when it is made.
    assert isinstance(options.split, Mapping)
    verdicts = (
        VerdictCache(cache_path(root), ImageCheck(options.keep_image_metadata).context()) if options.cache else None
    )
    engine = _engine(options)
    writer: BatchWriter | None = None
    try:
        with (
            progress_bars(progress),
            closing(verdicts) if verdicts is not None else nullcontext(),
            BatchWriter(root, adapters, batch_id, options, verdicts) as writer,
            # Through validation and writing (where validation's use of it finds it running); a
            # local instance keeps its session beside the verdict cache, out of the batches.
            engine.tasks(root / CACHE_FOLDER) if engine is not None else nullcontext() as tasks,
        ):
            report = _validated(
                samples, options, verdicts=verdicts, keep_image=writer, scratch=writer.scratch, engine=engine
            )
            checked_splits = assign_splits(
                report.accepted,
                options.split,
                options.group_by,
                options.seed,
                options.split_strategy,
                options.allow_empty_splits,
                spill_to=writer.scratch,
            )
            contents = BatchContents(
                splits=checked_splits,
                statistics={name: split_statistics(items) for name, items in checked_splits.items()},
                counts=report.counts,
                rejected=report.rejected,
                duplicates=report.duplicates,
                image_checks={"decoded": report.images_decoded, "verdicts_from_cache": report.verdicts_reused},
            )
            return writer.write(contents, tasks)
    except KeyboardInterrupt:
        published = writer.published() if writer is not None else None
        if published is None:
            raise
        raise InterruptedAfterPublishing(published) from None


def _with_option_keywords(function, only_build: bool = False):
    """``function`` whose signature shows each option of ``ExportOptions`` it takes as a keyword
    (for ``help()``, editors and the docs' checks) in place of ``**options``."""
    signature = inspect.signature(function)
    parameters = [
        parameter for parameter in signature.parameters.values() if parameter.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    parameters += [
        inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=option.default, annotation=option.type)
        for option in fields(ExportOptions)
        if option.metadata["build"] or not only_build
    ]
    function.__signature__ = signature.replace(parameters=parameters)
    return function


build_dataset = _with_option_keywords(build_dataset, only_build=True)
export = _with_option_keywords(export)
export_all = _with_option_keywords(export_all)


@offline
def load_batch(
    batch_dir: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> datasets.DatasetDict:
    """``datasets.load_dataset(batch_dir)``, offline and without a stray copy in the home folder.

    ``load_dataset`` copies a local folder into its cache, ``~/.cache/huggingface/datasets`` by
    default; here the copy goes to ``cache_dir``, by default ``.load-cache`` in the batch's format
    folder (inside the export folder, where ``list_exports`` ignores it).
    """
    import datasets

    batch_dir = Path(batch_dir)
    return datasets.load_dataset(str(batch_dir), cache_dir=str(cache_dir or batch_dir.parent / ".load-cache"))


def list_exports(
    export_format: str | None = None, output_dir: str | os.PathLike[str] | None = None
) -> list[ExportResult]:
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
                results.append(
                    result_from_manifest(manifest_path, json.loads(manifest_path.read_text(encoding="utf-8")))
                )
            except (OSError, ValueError, KeyError) as error:
                warn(f"skipping {manifest_path}: not a readable batch manifest ({error!r})")
    return sorted(results, key=lambda result: (result.created_at, result.batch_id), reverse=True)


def _validated(samples, options: ExportOptions, **validating) -> ValidationReport:
    report = validate(
        samples,
        normalize=options.normalize,
        keep_duplicates=options.keep_duplicates,
        group_by=options.group_by,
        num_proc=options.num_proc,
        keep_image_metadata=options.keep_image_metadata,
        **validating,
    )
    if (report.rejected and not options.skip_invalid) or not report.accepted:
        raise ValidationError(report)
    return report


def _engine(options: ExportOptions) -> RayEngine | None:
    if options.engine != "ray":
        return None
    from .ray_engine import RayEngine

    parent = Path(options.ray_temp_dir) if options.ray_temp_dir is not None else None
    return RayEngine(address=options.ray_address, session_parent=parent, num_cpus=options.num_proc)


def _new_batch_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"
