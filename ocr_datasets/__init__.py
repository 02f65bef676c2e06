"""ocr-datasets: human-labeled OCR samples to Hugging Face datasets for TrOCR and Llama 3.2 Vision, locally."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("ocr-datasets")
except _metadata.PackageNotFoundError:  # run from a source folder that was never installed
    __version__ = "unknown"

from .adapters import DEFAULT_INSTRUCTION, FORMAT_NAMES, ExportOptions
from .api import build_dataset, export, list_exports, load_batch, resolve_output_dir
from .manifest import ExportResult
from .samples import SampleError, TrainingSample
from .service import TrainingExportService, get_training_export_service
from .sources import SOURCE_KINDS, CropOptions, read_manifest, read_samples
from .validation import ValidationError, ValidationReport, validate
from .verify import inspect_batch, verify_batch

__all__ = [
    "DEFAULT_INSTRUCTION",
    "SOURCE_KINDS",
    "CropOptions",
    "FORMAT_NAMES",
    "ExportOptions",
    "ExportResult",
    "SampleError",
    "TrainingExportService",
    "TrainingSample",
    "ValidationError",
    "ValidationReport",
    "build_dataset",
    "export",
    "get_training_export_service",
    "inspect_batch",
    "list_exports",
    "load_batch",
    "read_manifest",
    "read_samples",
    "resolve_output_dir",
    "validate",
    "verify_batch",
]
