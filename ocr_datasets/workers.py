"""How many processes a piece of work gets: one per core by default, never more than pay off."""

from __future__ import annotations

import os

from .options import check_num_proc


def available_cores() -> int:
    # The cores this process may run on (a container or taskset may allow fewer than the machine has).
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(num_proc: int | None, work_units: int) -> int:
    """Processes for ``work_units`` pieces of work each big enough to pay for a process of its
    own: ``num_proc`` (``None``: one per available core), never more than ``work_units``."""
    num_proc = check_num_proc(num_proc)
    wanted = available_cores() if num_proc is None else num_proc
    return max(1, min(wanted, work_units))
