"""Progress bars on long work: tqdm's, shown and hidden as ``datasets`` shows and hides its own,
without importing ``datasets`` (an export does not need it; see ``features.py``)."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from tqdm.std import TqdmExperimentalWarning

with warnings.catch_warnings():
    # tqdm.auto's choice of bars for a notebook or a terminal, without tqdm.auto's asyncio half
    # (25 ms of every run's start, for async iteration, which nothing here does); as tqdm.auto
    # does, without the warning that the notebook's bars were chosen.
    warnings.simplefilter("ignore", category=TqdmExperimentalWarning)
    from tqdm.autonotebook import tqdm

# The values datasets reads as true in HF_DATASETS_DISABLE_PROGRESS_BARS.
_TRUE = {"1", "ON", "YES", "TRUE"}
# Inside progress_bars(False): per thread, so that a quiet call hides no other thread's bars.
_hidden: ContextVar[bool] = ContextVar("ocr_datasets_progress_hidden", default=False)


def progress_bar(**options) -> tqdm:
    """A tqdm bar, hidden inside ``progress_bars(False)`` and while ``datasets``' bars are off."""
    return tqdm(**options, disable=_hidden.get() or _datasets_bars_off())


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Progress bars on or off (ours and ``datasets``', if it is imported) for the duration,
    restoring the user's setting after."""
    datasets_tqdm = sys.modules.get("datasets.utils.tqdm")
    datasets_was_off = datasets_tqdm is not None and datasets_tqdm.are_progress_bars_disabled()
    hiding = _hidden.set(_hidden.get() or not enabled)
    if not enabled and datasets_tqdm is not None and not datasets_was_off:
        datasets_tqdm.disable_progress_bars()
    try:
        yield
    finally:
        _hidden.reset(hiding)
        if datasets_tqdm is not None and not enabled and not datasets_was_off:
            datasets_tqdm.enable_progress_bars()


def _datasets_bars_off() -> bool:
    datasets_tqdm = sys.modules.get("datasets.utils.tqdm")
    if datasets_tqdm is not None:
        return datasets_tqdm.are_progress_bars_disabled()
    return os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS", "").upper() in _TRUE
