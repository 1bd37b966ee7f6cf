"""Ranking: the top k of one row of scores, deterministically, and the reasons for a match."""

from __future__ import annotations

import numpy as np

__all__ = ["SCORE_DECIMALS", "top_k"]

# Scores are rounded to this many decimals before ranking, so that equal printed scores are true
# ties and ties are broken by id, the same way on every machine and in every output.
SCORE_DECIMALS = 6


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the ``k`` best finite scores, best first, ties broken by lower index.

    Parameters
    ----------
    scores : array of shape (n_targets,)
        Rounded scores; ``-inf`` marks an ineligible target.
    k : int
        How many to return at most; fewer when fewer are eligible (never padded).

    Returns
    -------
    indices : array of shape (min(k, n_eligible),)
        Row indices into ``scores`` (internal positions, not ids).
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    candidates = np.flatnonzero(np.isfinite(scores))
    if len(candidates) > k:
        kth = np.partition(scores[candidates], len(candidates) - k)[len(candidates) - k]
        candidates = candidates[scores[candidates] >= kth]
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]]
