"""Glue from an exported batch to ``trainer.train()``: collators and tiny local models.

Needs the ``train`` extra: ``pip install "ocr-datasets[train]"``.
"""

from .common import byte_level_bpe, character_error_rate, go_offline, load_batch
from .llama_vision import LlamaVisionCollator
from .trocr import TrOCRCollator

__all__ = ["LlamaVisionCollator", "TrOCRCollator", "byte_level_bpe", "character_error_rate", "go_offline", "load_batch"]
