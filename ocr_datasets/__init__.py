"""ocr-datasets: human-labeled OCR samples to Hugging Face datasets for TrOCR and Llama 3.2 Vision, locally.

The names below are imported from their modules when first used, so that ``import ocr_datasets``
(and ``ocr-datasets --help``) does not pay for ``datasets`` and ``pyarrow`` until they are needed.
"""

from importlib import metadata as _metadata

from .lazy import lazy_names

try:
    __version__ = _metadata.version("ocr-datasets")
except _metadata.PackageNotFoundError:  # run from a source folder that was never installed
    __version__ = "unknown"

# Public name -> the module that defines it.
_MODULE_OF = {
    "DEFAULT_INSTRUCTION": "options",
    "FORMAT_NAMES": "adapters",
    "ExportOptions": "options",
    "ViewOptions": "options",
    "build_dataset": "api",
    "export": "api",
    "export_all": "api",
    "list_exports": "api",
    "load_batch": "api",
    "resolve_output_dir": "api",
    "evaluate_predictions": "evaluation",
    "ExportResult": "manifest",
    "SampleError": "samples",
    "TrainingSample": "samples",
    "TrainingExportService": "service",
    "get_training_export_service": "service",
    "SOURCE_KINDS": "sources",
    "CropOptions": "sources",
    "read_manifest": "sources",
    "read_samples": "sources",
    "ValidationError": "validation",
    "ValidationReport": "validation",
    "validate": "validation",
    "inspect_batch": "verify",
    "verify_batch": "verify",
}
# A list, computed from the table above so that the two cannot disagree (ruff reads only literals).
__all__ = sorted(_MODULE_OF)  # noqa: PLE0605
__getattr__, __dir__ = lazy_names(__name__, _MODULE_OF)
