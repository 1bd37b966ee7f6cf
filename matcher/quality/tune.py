"""Hyper-parameter search on a labelled benchmark, with scikit-learn's search tools and an nDCG scorer.

:class:`BenchRanker` wraps a matcher (its vectoriser, fusion and ``judged__`` re-ranker parameters: the
``--params`` keys) and the re-ranker learnt from judgments (:class:`matcher.matching.judgments.JudgedReranker`,
as ``matcher train --judgments`` fits it) as one estimator whose rows are the benchmark's needs, so
``GridSearchCV`` cross-validates it over needs: the re-ranker of each fold is trained on the other
folds' judgements only. The matcher itself learns nothing from the judgements (it is fitted on the
targets), so its fitted index and the candidates' features are computed once per setting of the
matcher's own parameters and shared between folds and re-ranker settings. Each fold is scored as
``matcher batch --model`` serves it: the base score's best ``depth`` candidates, re-scored, capped to
the evidence.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GridSearchCV, KFold

from matcher.matching.estimator import Matcher, build_matcher
from matcher.matching.judgments import JUDGED_FEATURES, candidate_frame, target_idf
from matcher.matching.rerank import cap_to_evidence, evidence
from matcher.quality import metrics
from matcher.quality.benchmark import Bench

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_GRID", "BenchRanker", "ndcg_scorer", "tune"]

# What `matcher tune` searches by default: vectoriser, fusion and re-ranker parameters.
DEFAULT_GRID: list[dict[str, list[Any]]] = [
    {
        "matcher__vectorizer__char_weight": [1.0, 3.0],
        "matcher__vectorizer__k1": [0.3, 1.2],
        "matcher__feedback_docs": [0, 5],
        "rerank": [False],
    },
    {
        "matcher__vectorizer__char_weight": [1.0, 3.0],
        "matcher__judged__max_leaf_nodes": [15, 31],
        "matcher__judged__min_samples_leaf": [40, 200],
        "matcher__judged__evidence_margin": [0.05, 1.0],
        "rerank": [True],
    },
]


class BenchRanker(BaseEstimator):
    """A matcher, optionally followed by the re-ranker learnt from judgments, as one estimator.

    ``fit(X)`` and ``score(X)`` take an array of shape (n_needs, 1) of need ids of ``bench``.

    Parameters
    ----------
    bench : Bench
        The benchmark (shared, never copied).
    matcher : Matcher or None
        Its parameters are searched as ``matcher__...`` (the ``--params`` keys, ``matcher__judged__…``
        for the re-ranker's); None = the default.
    rerank : bool
        Re-rank the candidates with the re-ranker learnt from the training folds' judgments.
    depth : int
        Candidates per need scored (``matcher batch --k``); training adds the judged ones.
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
        k: int = 10,
    ) -> None:
        self.bench = bench
        self.matcher = matcher
        self.rerank = rerank
        self.depth = depth
        self.k = k

    def _matcher(self) -> Matcher:
        return self.matcher if self.matcher is not None else build_matcher()

    def _candidates(self) -> pd.DataFrame:
        """The candidates of every need with their features, once per setting of the matcher's own parameters."""
        matcher = self._matcher()
        own = {k: v for k, v in matcher.get_params(deep=True).items() if not k.startswith("judged")}
        key = (repr(sorted(own.items(), key=str)), self.depth)
        cache = self.bench.__dict__.setdefault("_candidates", {})
        if key not in cache:
            model = matcher.fit(self.bench.targets())
            judged = [(n, "expert", e, float(g)) for n, q in self.bench.qrels.items() for e, g in q.items()]
            judgments = pd.DataFrame(judged, columns=["need_id", "target_type", "target_id", "grade"])
            idf = target_idf(model)
            cache[key] = (candidate_frame(model, self.bench.need_frame(), judgments, self.depth, idf), idf)
        return cache[key]

    def fit(self, X: np.ndarray, y: object = None) -> BenchRanker:
        """Fit the re-ranker on the candidates of the needs ``X`` (their judgements only)."""
        candidates, idf = self._candidates()
        train = candidates.loc[candidates["need_id"].isin(set(np.asarray(X).ravel()))]
        self.model_ = None
        if self.rerank:
            self.model_ = clone(self._matcher().judged).fit(train, train["grade"].to_numpy(dtype=float), idf=idf)
        return self

    def run(self, X: np.ndarray) -> pd.DataFrame:
        """Scores of the retrieved candidates of the needs ``X``, as served: ``need_id, expert_id, score``."""
        candidates, _ = self._candidates()
        part = candidates.loc[candidates["need_id"].isin(set(np.asarray(X).ravel())) & candidates["retrieved"]]
        scores = part["base"].to_numpy(dtype=float)
        if self.model_ is not None and "expert" in self.model_.models_:
            matrix = part[list(JUDGED_FEATURES)].to_numpy(dtype=float)
            served = np.round(self.model_.predict_proba("expert", matrix), 6)
            found = evidence({c: part[c].to_numpy() for c in ("words", "tags", "text")})
            for rows in part.groupby("need_id", sort=False).indices.values():
                served[rows] = cap_to_evidence(served[rows], scores[rows], found[rows], self.model_.evidence_margin)
            scores = served
        return part[["need_id", "target_id"]].rename(columns={"target_id": "expert_id"}).assign(score=scores)

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
    grid: dict[str, list[Any]] | list[dict[str, list[Any]]] | None = None,
    *,
    n_splits: int = 5,
    depth: int = 100,
    seed: int = 0,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Grid search over ``grid`` (default :data:`DEFAULT_GRID`) with ``n_splits``-fold CV over needs.

    Returns the best parameters in the ``--params`` format (flat ``get_params`` keys, the re-ranker's as
    ``judged__…``; ``rerank`` is dropped: whether judgments are given is the user's choice) and the
    full results table.
    """
    grid = grid or DEFAULT_GRID
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
    table = pd.DataFrame(search.cv_results_)
    table["params"] = [repr(p) for p in table["params"]]
    keep = [c for c in table.columns if c.startswith(("param_", "mean_test", "std_test", "rank_test", "split"))]
    table = table[["params", *keep]].sort_values("rank_test_score", kind="stable")
    return params, table.reset_index(drop=True)
