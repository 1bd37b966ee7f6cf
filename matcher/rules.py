"""The hard rules of matching and booking, written once: who may be recommended or booked for a need.

A target may serve a need only when it is **available**, has a **free place** (its capacity minus its
open load: open engagements plus confirmed events, see :func:`matcher.store.events.open_loads`; no
capacity means unlimited) and is **not of the need's own organisation** (conflict of interest). The
estimator applies them as a mask over a block of needs and targets (:func:`eligible`), the assignment
job to its forced pairs and free places, and the store again inside the transaction that books.

Pure functions of numbers and ids, no I/O: every layer (matching, jobs, store) imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["conflict_of_interest", "eligible", "free_places", "may_serve"]


def free_places(capacity: np.ndarray | float | None, load: np.ndarray | float) -> np.ndarray | float:
    """A target's free places: ``capacity - load``, ``inf`` where the capacity is unlimited (None or NaN).

    Arrays give an array (float64), scalars a float. Not clipped: an over-booked target has a
    negative number of free places, and no free place either way.
    """
    if np.ndim(capacity) == 0 and np.ndim(load) == 0:
        if capacity is None or capacity != capacity:  # None or NaN: unlimited
            return float("inf")
        return float(capacity) - float(load)
    capacity = np.asarray(capacity, dtype=float)
    return np.where(np.isnan(capacity), np.inf, capacity) - np.asarray(load, dtype=float)


def conflict_of_interest(target_org: str | None, need_org: str | None) -> bool:
    """Whether a target belongs to the organisation that filed the need (blank organisations never do)."""
    return bool(target_org) and target_org == need_org


def may_serve(available: bool, free: float) -> bool:
    """Whether a target, apart from the need's organisation, may take one more need: available, a free place."""
    return bool(available) and free > 0


def eligible(
    available: np.ndarray, free: np.ndarray, target_orgs: np.ndarray, need_orgs: Sequence[str | None]
) -> np.ndarray:
    """The hard rules as a mask: bool array (n_needs, n_targets), True where the target may serve the need.

    Parameters
    ----------
    available, free : arrays of shape (n_targets,)
        Each target's availability and free places (:func:`free_places`).
    target_orgs : array of shape (n_targets,), object
        Each target's organisation id, None when it has none.
    need_orgs : sequence of length n_needs
        Each need's organisation id, None (or empty) when unknown.
    """
    allowed = np.asarray(available, dtype=bool) & (np.asarray(free) > 0)
    mask = np.repeat(allowed[None, :], len(need_orgs), axis=0)
    for row, org in enumerate(need_orgs):
        if org:
            mask[row, target_orgs == org] = False
    return mask
