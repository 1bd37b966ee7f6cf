"""Ranking and recommendation metrics, one plain function each, plus bootstrap confidence intervals.

Every ranking metric takes one need's ranked target ids (best first) and what is relevant to that need;
the caller averages over needs. Ids are external ids (strings), never matrix rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "average_precision",
    "bootstrap_ci",
    "catalogue_coverage",
    "dcg_at_k",
    "exposure_gini",
    "gini",
    "ndcg_at_k",
    "pair_ratio",
    "pairwise_ordering_loss",
    "precision_at_k",
    "recall_at_k",
    "reciprocal_rank",
]


def _check_k(k: int) -> None:
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")


def precision_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """Share of the first ``k`` ranked ids that are relevant (a list shorter than k counts as padded)."""
    _check_k(k)
    relevant = set(relevant)
    return sum(1 for target in ranked[:k] if target in relevant) / k


def recall_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """Share of the relevant ids found in the first ``k``; 0 when nothing is relevant."""
    _check_k(k)
    relevant = set(relevant)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def dcg_at_k(gains: Sequence[float], k: int) -> float:
    """Discounted cumulative gain of gains in rank order: ``sum(g_i / log2(i + 1))``, i from 1."""
    _check_k(k)
    return float(sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k])))


def ndcg_at_k(ranked: Sequence[Hashable], gains: Mapping[Hashable, float], k: int) -> float:
    """Normalised DCG at ``k`` with graded ``gains`` (id -> gain, missing = 0); 0 when no gain is positive.

    The ideal ordering sorts every gain of ``gains``, so relevant ids missing from ``ranked`` count
    against the ranking.
    """
    ideal = dcg_at_k(sorted((g for g in gains.values() if g > 0), reverse=True), k)
    if ideal <= 0:
        return 0.0
    return dcg_at_k([gains.get(target, 0.0) for target in ranked], k) / ideal


def average_precision(ranked: Sequence[Hashable], relevant: Iterable[Hashable]) -> float:
    """Mean of precision@i over the ranks i of the relevant ids found, divided by all relevant ids."""
    relevant = set(relevant)
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for i, target in enumerate(ranked, 1):
        if target in relevant:
            hits += 1
            total += hits / i
    return total / len(relevant)


def reciprocal_rank(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int | None = None) -> float:
    """1 / rank of the first relevant id (within the first ``k`` when given), 0 when none."""
    relevant = set(relevant)
    for i, target in enumerate(ranked[:k] if k else ranked, 1):
        if target in relevant:
            return 1.0 / i
    return 0.0


def catalogue_coverage(recommendations: Iterable[Iterable[Hashable]], catalogue: Iterable[Hashable]) -> float:
    """Share of the catalogue's ids that appear in at least one recommendation list."""
    catalogue = set(catalogue)
    if not catalogue:
        return 0.0
    shown = {target for items in recommendations for target in items}
    return len(shown & catalogue) / len(catalogue)


def gini(values: Iterable[float]) -> float:
    """Gini coefficient of non-negative values: 0 when all equal, (n - 1) / n when one holds everything."""
    x = np.sort(np.asarray(list(values), dtype=float))
    if len(x) == 0 or x.sum() == 0:
        return 0.0
    if (x < 0).any():
        raise ValueError("gini() expects non-negative values")
    n = len(x)
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * x).sum()) / (n * x.sum()) - (n + 1) / n)


def exposure_gini(recommendations: Iterable[Iterable[Hashable]], catalogue: Iterable[Hashable]) -> float:
    """Gini of how often each catalogue id is recommended (never-recommended ids count as 0)."""
    counts = dict.fromkeys(catalogue, 0)
    for items in recommendations:
        for target in items:
            if target in counts:
                counts[target] += 1
    return gini(counts.values())


def pair_ratio(pairs: Iterable[tuple[float, float, float, float]]) -> float:
    """The ChineseBLUE PAIR metric: correctly ordered pairs / wrongly ordered pairs.

    Each pair is ``(label_a, label_b, score_a, score_b)``; pairs with equal labels are skipped and a
    score tie counts half each way (a constant scorer gets 1.0).
    """
    right = wrong = 0.0
    for label_a, label_b, score_a, score_b in pairs:
        if label_a == label_b:
            continue
        high, low = (score_a, score_b) if label_a > label_b else (score_b, score_a)
        if high > low:
            right += 1
        elif high < low:
            wrong += 1
        else:
            right += 0.5
            wrong += 0.5
    if wrong == 0:
        return math.inf if right else math.nan
    return right / wrong


def pairwise_ordering_loss(
    target_ids: Sequence[Hashable],
    ratings: Sequence[float],
    scores: Sequence[float],
    *,
    min_gap: float = 1,
    max_gap: float = math.inf,
) -> dict[Hashable, float]:
    """Per target, the rating-weighted share of its pairs of rated needs that the scores order wrongly.

    For one target (an expert), every two of its rated decisions with ratings ``r_a != r_b`` form a
    pair; it is ordered wrongly when the scores order the two needs the other way round (a score tie
    counts half). Each pair weighs ``|r_a - r_b|``. Only pairs with ``min_gap <= |r_a - r_b| <=
    max_gap`` count: ``min_gap=2`` gives the clear-cut pairs, ``max_gap=1`` the close ones.

    Parameters
    ----------
    target_ids, ratings, scores : sequences of shape (n_decisions,)
        One rated decision each: the target, its rating and the model's score of that (need, target).

    Returns
    -------
    dict of target id -> loss in [0, 1], for the targets with at least one counted pair.
    """
    groups: dict[Hashable, list[tuple[float, float]]] = {}
    for target, rating, score in zip(target_ids, ratings, scores, strict=True):
        groups.setdefault(target, []).append((float(rating), float(score)))
    losses = {}
    for target, rows in groups.items():
        r = np.asarray([row[0] for row in rows])
        s = np.asarray([row[1] for row in rows])
        gap = np.abs(r[:, None] - r[None, :])
        counted = np.triu((gap >= min_gap) & (gap <= max_gap) & (gap > 0), 1)
        if not counted.any():
            continue
        order = np.sign(r[:, None] - r[None, :]) * np.sign(s[:, None] - s[None, :])
        wrong = np.where(order < 0, 1.0, np.where(order == 0, 0.5, 0.0))
        losses[target] = float((gap * wrong)[counted].sum() / gap[counted].sum())
    return losses


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    centred: bool = False,
) -> tuple[float, float, float]:
    """The statistic of ``values`` and its percentile bootstrap interval: ``(value, low, high)``.

    ``values`` are resampled with replacement along the first axis (one row per need, session or
    expert), so a 2-D array of per-unit numerators and denominators works with a ratio ``statistic``.
    The same ``seed`` gives the same interval. With ``centred``, the bootstrap distribution is shifted
    so that its median is the point value: for statistics of a whole set (coverage, Gini), which a
    resample that repeats units biases, the interval then shows the spread around the point value.
    """
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return (math.nan, math.nan, math.nan)
    point = float(statistic(data))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(data), size=(n_resamples, len(data)))
    stats = np.asarray([statistic(data[d]) for d in draws], dtype=float)
    stats = stats[np.isfinite(stats)]
    if len(stats) == 0:
        return (point, math.nan, math.nan)
    if centred:
        stats = stats - np.median(stats) + point
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return (point, float(low), float(high))
