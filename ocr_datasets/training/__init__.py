"""Glue from an exported batch to ``trainer.train()``: collators and tiny local models.

Needs the ``train`` extra: ``pip install "ocr-datasets[train]"``. Each name is imported from its
module when first used, so ``TrOCRCollator`` does not bring in Mllama, nor ``LlamaVisionCollator``
TrOCR.
"""

from ..lazy import lazy_names

# Public name -> the module that defines it.
_MODULE_OF = {
    "byte_level_bpe": "common",
    "character_error_rate": "common",
    "go_offline": "common",
    "load_batch": "common",
    "LlamaVisionCollator": "llama_vision",
    "TrOCRCollator": "trocr",
}
# A list, computed from the table above so that the two cannot disagree (ruff reads only literals).
__all__ = sorted(_MODULE_OF)  # noqa: PLE0605
__getattr__, __dir__ = lazy_names(__name__, _MODULE_OF)
