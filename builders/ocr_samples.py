"""The ``datasets`` builder that turns validated samples into a (projected) Arrow dataset.

``datasets`` does the writing: sharding at ``max_shard_size``, ``num_proc`` parallel jobs,
progress bars and the dataset info. This module only says what the rows are.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass, field

import datasets
import pyarrow as pa
from datasets.builder import Key

from ocr_datasets.adapters import get_adapter
from ocr_datasets.canonical import CANONICAL_FEATURES, canonical_table
from ocr_datasets.options import ExportOptions
from ocr_datasets.packed import PackedSamples, unpack_block
from ocr_datasets.samples import SampleError
from ocr_datasets.validation import CheckedSample
from ocr_datasets.workers import worker_count

CANONICAL = "canonical"


@dataclass
class OcrSamplesConfig(datasets.BuilderConfig):
    """BuilderConfig for OcrSamples.

    Args:
        export_format (`str`, defaults to ``"canonical"``):
            ``"canonical"`` for every field of the samples, or the name of an export format
            (``trocr``, ``llama_vision``, ``generic``) whose projection is applied to each table.
        options (`ExportOptions`):
            Options the projection reads (for example the llama_vision instruction).
    """

    export_format: str = CANONICAL
    options: ExportOptions = field(default_factory=ExportOptions)


class OcrSamples(datasets.ArrowBasedBuilder):
    """Builds from samples held in memory (their images are read while tables are written).

    ``splits`` maps a split name to its validated samples (``PackedSamples`` of
    ``CheckedSample``). Each pickled block of a split becomes one table; the blocks are passed to
    ``datasets`` as a list so that ``num_proc`` can share them among worker processes while
    keeping their order. A worker receives only its own blocks, as bytes: ``datasets`` sends
    work to its processes with dill, a pure-Python pickler that took 1.4 s for 10,000 samples
    as objects.
    """

    BUILDER_CONFIG_CLASS = OcrSamplesConfig

    def __init__(self, *args, splits: dict[str, PackedSamples[CheckedSample]], **kwargs):
        self._splits = splits
        super().__init__(*args, **kwargs)

    def prepare(self, **download_and_prepare_kwargs) -> None:
        """``download_and_prepare``, raising a bad sample's own ``SampleError`` (or the disk's
        ``OSError``) rather than the ``DatasetGenerationError`` that ``datasets`` wraps around it,
        and an interruption as ``KeyboardInterrupt``."""
        # A forked worker (Linux's way of starting one; macOS and Windows spawn it afresh)
        # starts with every page of this process. A full collection first lets CPython return
        # what validation left in its free lists: at 100,000 lines ~17 MB.
        gc.collect()
        try:
            self.download_and_prepare(**download_and_prepare_kwargs)
        except Exception as error:
            # Interrupted while its workers ran, datasets collects their results on the way out,
            # and raises the TimeoutError of that collection instead.
            if _interrupted(error):
                raise KeyboardInterrupt from None
            if not isinstance(error, datasets.exceptions.DatasetGenerationError):
                raise
            cause = error.__cause__
            while cause is not None and not isinstance(cause, (SampleError, OSError)):
                cause = cause.__cause__
            if cause is None:
                raise
            raise cause from None

    def _prepare_split(self, split_generator: datasets.SplitGenerator, *, num_proc: int | None = None, **kwargs):
        # Decided per split, so a small split is written serially rather than with a warning
        # from datasets that it has too few blocks for num_proc.
        workers = worker_count(num_proc, len(split_generator.gen_kwargs["blocks"]))
        return super()._prepare_split(split_generator, num_proc=workers if workers > 1 else None, **kwargs)

    def __getstate__(self):
        return {**super().__getstate__(), "_splits": {}}

    @property
    def _projection(self):
        return None if self.config.export_format == CANONICAL else get_adapter(self.config.export_format)

    def _info(self) -> datasets.DatasetInfo:
        adapter = self._projection
        features = CANONICAL_FEATURES if adapter is None else adapter.features
        return datasets.DatasetInfo(features=features.to_datasets())

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"blocks": samples.blocks()})
            for split, samples in self._splits.items()
        ]

    def _generate_tables(self, blocks: list[bytes]) -> Iterator[tuple[Key, pa.Table]]:
        adapter = self._projection
        for index, block in enumerate(blocks):
            table = canonical_table(unpack_block(block), keep_image_metadata=self.config.options.keep_image_metadata)
            if adapter is not None:
                projected = adapter.project(table.to_pydict(), self.config.options.view())
                table = pa.Table.from_pydict(projected, schema=adapter.features.arrow_schema)
            yield Key(index, 0), table


def _interrupted(error: BaseException | None) -> bool:
    """Whether ``error`` was raised while handling a ``KeyboardInterrupt``."""
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return True
        error = error.__cause__ or error.__context__
    return False
