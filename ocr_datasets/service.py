"""The original service's entry points, kept so its callers work unchanged.

"The original service", wherever this package says it, is the export service this project
replaced: ``TrainingExportService`` with ``export(samples, export_format, batch_id=None,
**kwargs)`` and ``list_exports()``, which copied each image into
``$OCR_EXPORT_PATH/<format folder>/<batch id>/`` beside a JSONL line per sample and a
``manifest.json`` with the keys ``format``, ``version``, ``batch_id``, ``sample_count``,
``created_at``, ``files`` and ``model_config``. Its result type, its manifest keys, its folders
and these entry points are kept; everything else is this project's own.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from .adapters import ALL_FORMATS
from .api import export, export_all, list_exports, resolve_output_dir
from .manifest import ExportResult
from .samples import TrainingSample

# The options the library's export takes by keyword. Its output_dir is not among them: the
# service writes into its own export_path, where its list_exports looks.
EXPORT_OPTIONS = frozenset(
    name for name, parameter in inspect.signature(export).parameters.items() if parameter.kind is parameter.KEYWORD_ONLY
)


@dataclass
class ServiceExportResult:
    """The original service's result of one export: ``created_at`` is a timezone-aware UTC
    ``datetime`` (the library's ``ExportResult`` holds the manifest's ISO 8601 text)."""

    export_format: str
    export_path: str
    sample_count: int
    batch_id: str
    created_at: datetime
    manifest_path: str

    @classmethod
    def from_library_result(cls, result: ExportResult) -> ServiceExportResult:
        return cls(**{**result.to_dict(), "created_at": datetime.fromisoformat(result.created_at)})


class TrainingExportService:
    """``TrainingExportService().export(samples, "trocr")``, as before; now backed by the API.

    ``export_path`` defaults to ``$OCR_EXPORT_PATH`` (else ``./ocr-exports``), read when the
    service is created, as the original did.
    """

    def __init__(self, export_path: str | os.PathLike[str] | None = None):
        self.export_path = resolve_output_dir(export_path)

    def export(
        self, samples: Iterable[TrainingSample], export_format: str, batch_id: str | None = None, **options: Any
    ) -> ServiceExportResult | list[ServiceExportResult]:
        """The library's ``export`` into the service's ``export_path``; ``options`` are its keyword
        options (``copy_images``, ``include_base64``, ...). ``"all"`` returns a list, one per format."""
        _check_options(options)
        if export_format == ALL_FORMATS:
            results = export_all(samples, batch_id=batch_id, output_dir=self.export_path, **options)
            return [ServiceExportResult.from_library_result(result) for result in results]
        return ServiceExportResult.from_library_result(
            export(samples, export_format, batch_id=batch_id, output_dir=self.export_path, **options)
        )

    def list_exports(self, export_format: str | None = None) -> list[dict[str, Any]]:
        """Each finished batch's manifest as a dict, plus its ``export_path``, newest first,
        optionally of one format: what the original returned."""
        return [
            result.read_manifest() | {"export_path": result.export_path}
            for result in list_exports(export_format, output_dir=self.export_path)
        ]


@lru_cache(maxsize=1)
def get_training_export_service() -> TrainingExportService:
    """The shared service instance, as the original module offered it."""
    return TrainingExportService()


def _check_options(options: dict[str, Any]) -> None:
    """Refuse a keyword the library's export would not take, before anything is read or written."""
    unknown = sorted(set(options) - EXPORT_OPTIONS)
    if not unknown:
        return
    message = (
        f"TrainingExportService.export() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
        f"it takes {', '.join(sorted(EXPORT_OPTIONS))}"
    )
    if "output_dir" in unknown:
        message += (
            " (the service exports into its export_path: use TrainingExportService(export_path) for another folder)"
        )
    raise TypeError(message)
