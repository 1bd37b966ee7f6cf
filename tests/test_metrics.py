"""Each metric against an example computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from matcher.quality import metrics

RANKED = ["E1", "E2", "E3", "E4", "E5"]
RELEVANT = {"E2", "E4", "E9"}  # E9 is never ranked


@pytest.mark.parametrize(("k", "expected"), [(1, 0.0), (2, 0.5), (4, 0.5), (5, 0.4), (10, 0.2)])
def test_precision_at_k(k, expected) -> None:
    assert metrics.precision_at_k(RANKED, RELEVANT, k) == pytest.approx(expected)


@pytest.mark.parametrize(("k", "expected"), [(1, 0.0), (2, 1 / 3), (5, 2 / 3)])
def test_recall_at_k(k, expected) -> None:
    assert metrics.recall_at_k(RANKED, RELEVANT, k) == pytest.approx(expected)
    assert metrics.recall_at_k(RANKED, set(), k) == 0.0


def test_ndcg_at_k_by_hand() -> None:
    gains = {"E2": 3, "E4": 1, "E9": 2}
    # DCG@5 = 3/log2(3) + 1/log2(5); ideal = 3/1 + 2/log2(3) + 1/log2(4)
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    ideal = 3 + 2 / math.log2(3) + 1 / 2
    assert metrics.ndcg_at_k(RANKED, gains, 5) == pytest.approx(dcg / ideal)
    assert metrics.ndcg_at_k(["E2", "E9", "E4"], gains, 3) == pytest.approx(1.0)
    assert metrics.ndcg_at_k(RANKED, {"E1": 0}, 5) == 0.0
    with pytest.raises(ValueError, match="positive"):
        metrics.ndcg_at_k(RANKED, gains, 0)


def test_average_precision_and_reciprocal_rank() -> None:
    # hits at ranks 2 and 4: (1/2 + 2/4) / 3 relevant
    assert metrics.average_precision(RANKED, RELEVANT) == pytest.approx((0.5 + 0.5) / 3)
    assert metrics.reciprocal_rank(RANKED, RELEVANT) == 0.5
    assert metrics.reciprocal_rank(RANKED, {"E4"}, k=3) == 0.0
    assert metrics.average_precision(RANKED, set()) == 0.0


def test_coverage_and_exposure_gini() -> None:
    lists = [["E1", "E2"], ["E1", "E3"], ["E1"]]
    assert metrics.catalogue_coverage(lists, ["E1", "E2", "E3", "E4"]) == 0.75
    # counts 3, 1, 1, 0 -> sorted 0, 1, 1, 3: 2 * (0 + 2 + 3 + 12) / (4 * 5) - 5 / 4 = 0.45
    assert metrics.exposure_gini(lists, ["E1", "E2", "E3", "E4"]) == pytest.approx(0.45)
    assert metrics.gini([2, 2, 2]) == pytest.approx(0.0)
    assert metrics.gini([0, 0, 5]) == pytest.approx(2 / 3)


def test_pair_ratio_counts_ties_half() -> None:
    pairs = [(2, 1, 0.9, 0.1), (0, 2, 0.8, 0.3), (1, 0, 0.5, 0.5), (1, 1, 0.0, 1.0)]
    # right 1 + 0.5, wrong 1 + 0.5; the equal-label pair is skipped
    assert metrics.pair_ratio(pairs) == pytest.approx(1.0)
    assert metrics.pair_ratio([(2, 1, 0.9, 0.1), (1, 0, 0.6, 0.2)]) == math.inf


def test_pairwise_ordering_loss_by_hand() -> None:
    # expert A: needs rated 5, 3, 1 scored 0.2, 0.5, 0.1
    # pairs (5,3) gap 2 wrong; (5,1) gap 4 right; (3,1) gap 2 right -> loss 2 / 8
    target_ids = ["A", "A", "A", "B", "B", "C"]
    ratings = [5, 3, 1, 4, 3, 5]
    scores = [0.2, 0.5, 0.1, 0.3, 0.3, 0.9]
    losses = metrics.pairwise_ordering_loss(target_ids, ratings, scores)
    assert losses == {"A": pytest.approx(0.25), "B": pytest.approx(0.5)}  # B: a tie counts half; C has no pair
    clear = metrics.pairwise_ordering_loss(target_ids, ratings, scores, min_gap=2)
    assert clear == {"A": pytest.approx(0.25)}
    close = metrics.pairwise_ordering_loss(target_ids, ratings, scores, max_gap=1)
    assert close == {"B": pytest.approx(0.5)}


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible() -> None:
    values = np.r_[np.zeros(50), np.ones(50)]
    point, low, high = metrics.bootstrap_ci(values, n_resamples=500, seed=1)
    assert point == 0.5 and low < 0.5 < high and high - low < 0.3
    assert metrics.bootstrap_ci(values, n_resamples=500, seed=1) == (point, low, high)
    ratio = metrics.bootstrap_ci(np.c_[np.ones(10), np.full(10, 2.0)], lambda d: d[:, 0].sum() / d[:, 1].sum())
    assert ratio == (0.5, 0.5, 0.5)
    assert all(math.isnan(v) for v in metrics.bootstrap_ci([]))
