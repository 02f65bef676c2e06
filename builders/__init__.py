"""Hugging Face ``datasets`` builders of the project (installed as ``ocr_datasets.builders``)."""

from .ocr_samples import OcrSamples, OcrSamplesConfig

__all__ = ["OcrSamples", "OcrSamplesConfig"]
