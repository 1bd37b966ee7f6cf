"""Top-k selection: deterministic, ties by index, never padded."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.matching.rank import top_k


def test_best_first_and_ties_by_index() -> None:
    scores = np.array([0.2, 0.9, 0.5, 0.9, -np.inf, 0.5])
    assert top_k(scores, 3).tolist() == [1, 3, 2]
    assert top_k(scores, 10).tolist() == [1, 3, 2, 5, 0]  # fewer than k eligible: not padded


def test_ties_at_the_cut_are_broken_by_index() -> None:
    scores = np.array([0.5] * 6)
    assert top_k(scores, 2).tolist() == [0, 1]


def test_nothing_eligible() -> None:
    assert top_k(np.full(4, -np.inf), 2).tolist() == []


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be positive"):
        top_k(np.zeros(3), 0)


def test_matches_full_sort_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = np.round(rng.random(200), 2)
        scores[rng.random(200) < 0.2] = -np.inf
        expected = sorted(np.flatnonzero(np.isfinite(scores)), key=lambda i: (-scores[i], i))[:7]
        assert top_k(scores, 7).tolist() == expected
