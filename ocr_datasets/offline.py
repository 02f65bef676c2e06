"""Offline mode for the Hugging Face libraries, switched on in-process for every call of ours.

``datasets`` and ``huggingface_hub`` read ``HF_HUB_OFFLINE`` once, at import, and without it
loading a local folder still asks the network (a DNS query, a download-count HEAD request).
Setting the variable is too late once they are imported, so their flags are set directly, for
the duration of our call only: the rest of the user's program keeps its own setting.

The libraries are imported by the first call that needs them: an export uses neither (it writes
with pyarrow; see ``features.py``), so it is not wrapped and does not pay for importing them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module
from typing import ParamSpec, TypeVar

# (module, flag, its offline value)
_FLAGS = [
    ("huggingface_hub.constants", "HF_HUB_OFFLINE", True),
    ("datasets.config", "HF_HUB_OFFLINE", True),
    ("datasets.config", "HF_DATASETS_OFFLINE", True),
    ("datasets.config", "HF_UPDATE_DOWNLOAD_COUNTS", False),
]
# For worker processes that start afresh and read the environment.
_VARIABLES = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_UPDATE_DOWNLOAD_COUNTS": "0"}

Parameters = ParamSpec("Parameters")
Result = TypeVar("Result")


def switch_offline() -> None:
    """Offline for the rest of the process (fine-tuning scripts), libraries already imported included."""
    for module, name, value in _FLAGS:
        setattr(import_module(module), name, value)
    os.environ.update(_VARIABLES | {"TRANSFORMERS_OFFLINE": "1"})


@contextmanager
def hugging_face_offline() -> Iterator[None]:
    flags = [(import_module(module), name, value) for module, name, value in _FLAGS]
    saved_flags = [(module, name, getattr(module, name)) for module, name, _ in flags]
    saved_variables = {name: os.environ.get(name) for name in _VARIABLES}
    for module, name, value in flags:
        setattr(module, name, value)
    os.environ.update(_VARIABLES)
    try:
        yield
    finally:
        for module, name, flag in saved_flags:
            setattr(module, name, flag)
        for name, saved in saved_variables.items():
            if saved is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = saved


def offline(function: Callable[Parameters, Result]) -> Callable[Parameters, Result]:
    """Run ``function`` with the Hugging Face libraries offline."""

    @functools.wraps(function)
    def wrapper(*args: Parameters.args, **kwargs: Parameters.kwargs) -> Result:
        with hugging_face_offline():
            return function(*args, **kwargs)

    return wrapper
