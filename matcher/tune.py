"""Hyper-parameter search on a labelled benchmark, with scikit-learn's search tools and an nDCG scorer.

:class:`BenchRanker` wraps a matcher (its vectoriser and fusion parameters) and the benchmark's learned
re-ranker as one estimator whose rows are the benchmark's needs, so ``GridSearchCV`` cross-validates it
over needs: the re-ranker of each fold is trained on the other folds' judgements only. The matcher
itself learns nothing from the judgements (it is fitted on the targets), so its fitted index and the
candidates' features are computed once per parameter setting and shared between folds.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, KFold

from matcher import metrics
from matcher.evaluate import BENCH_FEATURES, Bench, bench_candidates, bench_reranker
from matcher.model import Matcher, build_matcher

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_GRID", "BenchRanker", "ndcg_scorer", "tune"]

# What `matcher tune` searches by default: vectoriser, fusion and re-ranker parameters.
DEFAULT_GRID: dict[str, list[Any]] = {
    "matcher__vectorizer__weighting": ["tfidf", "bm25"],
    "matcher__vectorizer__char_weight": [0.5, 0.8, 1.0],
    "matcher__vectorizer__char_ngram_range": [(1, 2), (1, 3)],
    "rerank": [False, True],
}


class BenchRanker(BaseEstimator):
    """A matcher, optionally followed by the benchmark's learned re-ranker, as one estimator.

    ``fit(X)`` and ``score(X)`` take an array of shape (n_needs, 1) of need ids of ``bench``.

    Parameters
    ----------
    bench : Bench
        The benchmark (shared, never copied).
    matcher : Matcher or None
        Its parameters are searched as ``matcher__...`` (the ``--params`` keys); None = the default.
    rerank : bool
        Re-rank the candidates with the learned model.
    depth : int
        Candidates per need (the matcher's best, plus the judged ones when training).
    learning_rate, max_iter, max_leaf_nodes, min_samples_leaf : the re-ranker's gradient boosting.
    k : int
        The k of the nDCG@k this estimator's ``score`` reports.
    """

    def __init__(
        self,
        *,
        bench: Bench | None = None,
        matcher: Matcher | None = None,
        rerank: bool = True,
        depth: int = 100,
        learning_rate: float = 0.05,
        max_iter: int = 300,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 40,
        k: int = 10,
    ) -> None:
        self.bench = bench
        self.matcher = matcher
        self.rerank = rerank
        self.depth = depth
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.k = k

    def _candidates(self) -> pd.DataFrame:
        """The candidates of every need with their features, computed once per matcher setting."""
        matcher = self.matcher if self.matcher is not None else build_matcher()
        key = (repr(sorted(matcher.get_params(deep=True).items(), key=str)), self.depth)
        cache = self.bench.__dict__.setdefault("_candidates", {})
        if key not in cache:
            model = matcher.fit(self.bench.targets())
            cache[key] = bench_candidates(model, self.bench, self.depth)
        return cache[key]

    def fit(self, X: np.ndarray, y: object = None) -> BenchRanker:
        """Fit the re-ranker on the candidates of the needs ``X`` (their judgements only)."""
        candidates = self._candidates()
        train = candidates.loc[candidates["need_id"].isin(set(np.asarray(X).ravel()))]
        self.model_ = None
        if self.rerank:
            params = dict(
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf,
            )
            features = train[list(BENCH_FEATURES)].to_numpy(dtype=float)
            self.model_ = bench_reranker(**params).fit(features, train["label"].to_numpy(dtype=float))
        return self

    def run(self, X: np.ndarray) -> pd.DataFrame:
        """Scores of the candidates of the needs ``X``: ``need_id, expert_id, score``."""
        candidates = self._candidates()
        part = candidates.loc[candidates["need_id"].isin(set(np.asarray(X).ravel()))]
        scores = part["score"].to_numpy(dtype=float)
        if self.model_ is not None:
            scores = self.model_.predict(part[list(BENCH_FEATURES)].to_numpy(dtype=float))
        scores = np.where(part["retrieved"], scores, scores - 1000.0)  # judged-only extras rank last
        return part[["need_id", "expert_id"]].assign(score=scores)

    def score(self, X: np.ndarray, y: object = None) -> float:
        """Mean nDCG@k over the needs ``X`` that have a relevant expert."""
        return ndcg_scorer(self, X, y)


def ndcg_scorer(estimator: BenchRanker, X: np.ndarray, y: object = None) -> float:
    """The search's scorer: mean nDCG@``estimator.k`` over the judged needs of ``X`` (ties by id)."""
    run = estimator.run(X)
    qrels = estimator.bench.qrels
    values = []
    for need_id, group in run.groupby("need_id", sort=False):
        gains = qrels.get(need_id, {})
        if not any(g > 0 for g in gains.values()):
            continue
        ranked = [e for _, e in sorted(zip(-group["score"], group["expert_id"], strict=True))]
        values.append(metrics.ndcg_at_k(ranked, gains, estimator.k))
    return float(np.mean(values)) if values else 0.0


def tune(
    bench: Bench,
    grid: dict[str, list[Any]] | None = None,
    *,
    n_splits: int = 5,
    depth: int = 100,
    seed: int = 0,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Grid search over ``grid`` (default :data:`DEFAULT_GRID`) with ``n_splits``-fold CV over needs.

    Returns the best matcher parameters in the ``--params`` format (flat ``get_params`` keys; the
    re-ranker's are kept apart, under ``"bench_reranker"``) and the full results table.
    """
    grid = dict(grid or DEFAULT_GRID)
    needs = np.asarray(bench.needs["id"], dtype=object).reshape(-1, 1)
    search = GridSearchCV(
        BenchRanker(bench=bench, matcher=build_matcher(), depth=depth),
        grid,
        scoring=ndcg_scorer,
        cv=KFold(n_splits=n_splits, shuffle=True, random_state=seed),
        refit=False,
        error_score="raise",
    )
    search.fit(needs)
    best = search.cv_results_["params"][search.best_index_]
    params = {
        key.removeprefix("matcher__"): list(value) if isinstance(value, tuple) else value
        for key, value in best.items()
        if key.startswith("matcher__")
    }
    reranker = {key: value for key, value in best.items() if not key.startswith("matcher__")}
    table = pd.DataFrame(search.cv_results_)
    table["params"] = [repr(p) for p in table["params"]]
    keep = [c for c in table.columns if c.startswith(("param_", "mean_test", "std_test", "rank_test", "split"))]
    table = table[["params", *keep]].sort_values("rank_test_score", kind="stable")
    return {**params, "bench_reranker": reranker}, table.reset_index(drop=True)
