"""Matching: vectorisers, the estimator and its scoring, re-rankers, model versions, training."""
