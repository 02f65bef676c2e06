"""The original export service's entry points, kept so its callers work unchanged."""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache

from .api import export, list_exports, resolve_output_dir
from .manifest import ExportResult
from .samples import TrainingSample


class TrainingExportService:
    """``TrainingExportService().export(samples, "trocr")``, as before; now backed by the API.

    ``export_path`` defaults to ``$OCR_EXPORT_PATH`` (else ``./ocr-exports``), read when the
    service is created, as the original did.
    """

    def __init__(self, export_path: str | os.PathLike[str] | None = None):
        self.export_path = resolve_output_dir(export_path)

    def export(self, samples: Iterable[TrainingSample], export_format: str, batch_id: str | None = None, **kwargs) -> ExportResult:
        return export(samples, export_format, batch_id=batch_id, output_dir=self.export_path, **kwargs)

    def list_exports(self, export_format: str | None = None) -> list[ExportResult]:
        return list_exports(export_format, output_dir=self.export_path)


@lru_cache(maxsize=1)
def get_training_export_service() -> TrainingExportService:
    """The shared service instance, as the original module offered it."""
    return TrainingExportService()
