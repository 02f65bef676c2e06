"""How many processes a piece of work gets: one per core by default, never more than pay off."""

from __future__ import annotations

import os


def available_cores() -> int:
    # The cores this process may run on (a container or taskset may allow fewer than the machine has).
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_num_proc(num_proc: int | None) -> int | None:
    if num_proc is not None and (isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1):
        raise ValueError(f"num_proc={num_proc!r}: give a whole number of processes, 1 or more (1: serial), or None for one per core")
    return num_proc


def worker_count(num_proc: int | None, work_units: int) -> int:
    """Processes for ``work_units`` pieces of work each big enough to pay for a process of its
    own: ``num_proc`` (``None``: one per available core), never more than ``work_units``."""
    wanted = available_cores() if check_num_proc(num_proc) is None else num_proc
    return max(1, min(wanted, work_units))
