"""Matching: vectorisers, the estimator and its scoring, names, tags, re-rankers, grades, model versions."""
