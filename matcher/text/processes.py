"""How many forked processes the text room may use, and the one way it maps work over them.

:func:`normalise_many <matcher.text.normalise.normalise_many>` and the segmenter's
:func:`prepare_segments <matcher.text.segment.prepare_segments>` spread large inputs over a pool of
forked processes. Forked, because the children then share what the parent loaded before the fork
(OpenCC's tables, jieba's dictionary, the segment memory) without pickling it. :func:`parallelism`
bounds the pools (``matcher batch --workers``); :func:`fork_cores` says how many processes may be
forked now: one (none) where fork is unsafe.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["fork_cores", "fork_map", "limit_workers", "parallelism", "usable_cores"]

logger = logging.getLogger(__name__)

#: The most processes one pool of this room forks.
MAX_POOL = 4
_workers: int | None = None  # the limit set by :func:`parallelism` (None: one per core)


def limit_workers(workers: int | None) -> None:
    """From now on, this room's pools use at most ``workers`` processes (1: none; None: one per core).

    A counting process forked by the vectoriser calls ``limit_workers(1)``: it starts no pools of its own.
    """
    global _workers
    _workers = workers


@contextmanager
def parallelism(workers: int | None) -> Iterator[None]:
    """Within the block, this room's pools use at most ``workers`` processes (1: none; None: one per core)."""
    before = _workers
    limit_workers(workers)
    try:
        yield
    finally:
        limit_workers(before)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def fork_cores() -> int:
    """Cores to fork onto: 1 where fork is unsafe (no fork, or other threads that may hold locks)."""
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return 1
    cores = usable_cores()
    return cores if _workers is None else max(1, min(cores, _workers))


def fork_map(
    function: Callable[[Any], Any], items: Sequence[Any], *, cores: int, chunksize: int, doing: str
) -> list[Any] | None:
    """``[function(item) for item in items]`` by a pool of ``min(cores, MAX_POOL)`` forked processes.

    None where no processes can be had (the caller then does the work in this process); ``doing``
    names the work in the debug log (``"segmenting"``).
    """
    try:
        with multiprocessing.get_context("fork").Pool(min(cores, MAX_POOL)) as pool:
            return pool.map(function, items, chunksize=chunksize)
    except (OSError, pickle.PicklingError):  # no processes to be had
        logger.debug("%s in processes failed", doing, exc_info=True)
        return None
