"""Ranking: the top k of one row of scores, deterministically, and diversification of a ranked list."""

from __future__ import annotations

import numpy as np

__all__ = ["SCORE_DECIMALS", "WEAK_SCORE", "maximal_marginal_relevance", "top_k"]

# Scores are rounded to this many decimals before ranking, so that equal printed scores are true
# ties and ties are broken by id, the same way on every machine and in every output.
SCORE_DECIMALS = 6
#: The default best score below which a need counts as weakly served (``matcher gaps``, ``GET /v1/overview``):
#: about the weakest 8 % of the sample's needs under the default Okapi BM25 scores, the share 0.3 marked
#: under the former TF-IDF cosine defaults.
WEAK_SCORE = 0.22


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


def maximal_marginal_relevance(scores: np.ndarray, similarity: np.ndarray, k: int, trade_off: float) -> np.ndarray:
    """Greedy maximal marginal relevance: positions of ``k`` items, relevant and unlike each other.

    Each step takes the item maximising ``(1 - trade_off) * score - trade_off * (its highest
    similarity to an item already taken)``; ties go to the earlier position.

    Parameters
    ----------
    scores : array of shape (n,)
        Relevance of the candidates, best first (the order breaks ties).
    similarity : array of shape (n, n)
        Similarity between candidates (cosine of their profiles), in [0, 1].
    k : int
        How many to pick.
    trade_off : float
        In [0, 1): 0 keeps the order of ``scores``.

    Returns
    -------
    positions : array of shape (min(k, n),)
        Positions into ``scores``, in the order picked.
    """
    n = len(scores)
    picked: list[int] = []
    closest = np.zeros(n)
    free = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        value = np.where(free, (1 - trade_off) * scores - trade_off * closest, -np.inf)
        best = int(np.argmax(value))  # first maximum: the earlier position
        picked.append(best)
        free[best] = False
        closest = np.maximum(closest, similarity[best])
    return np.asarray(picked, dtype=int)
