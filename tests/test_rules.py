"""The hard rules, written once in matcher.rules: free places, conflict of interest, the eligibility mask."""

from __future__ import annotations

import math

import numpy as np

from matcher.rules import conflict_of_interest, eligible, free_places, may_serve


def test_free_places_unlimited_and_overbooked() -> None:
    assert free_places(3, 1) == 2.0 and free_places(None, 5) == math.inf and free_places(float("nan"), 5) == math.inf
    assert free_places(1, 2) == -1.0 and not may_serve(True, free_places(1, 2)) and not may_serve(False, 1.0)
    np.testing.assert_array_equal(free_places(np.array([3.0, np.inf, np.nan]), np.array([3, 1, 0])), [0.0, np.inf, np.inf])


def test_conflict_of_interest_needs_an_organisation() -> None:
    assert conflict_of_interest("O1", "O1") and not conflict_of_interest("O1", "O2")
    assert not conflict_of_interest(None, None) and not conflict_of_interest("", "")


def test_eligible_masks_each_rule() -> None:
    available = np.array([True, False, True, True])
    free = np.array([1.0, 1.0, 0.0, np.inf])
    orgs = np.array(["O1", None, None, "O2"], dtype=object)
    mask = eligible(available, free, orgs, ["O2", None, ""])
    np.testing.assert_array_equal(mask, [[True, False, False, False], [True, False, False, True], [True, False, False, True]])
