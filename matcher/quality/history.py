"""Evaluation on the match history: a time split of the recorded decisions, and the sessions after it.

:func:`evaluate_history` fits the model (vocabulary, re-ranker, target histories) on what was known at
the cutoff; each later coordinator session is then re-ranked, and the targets the coordinator accepted
(graded by rating) are the relevant ones. Each method is compared with the plain character TF-IDF
baseline (:mod:`matcher.quality.baseline`) measured in the same run, each figure with a bootstrap
confidence interval (:mod:`matcher.quality.results`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from matcher.inputs.frames import needs_frame, targets_frame
from matcher.inputs.library import TARGET_TYPES, Libraries
from matcher.matching.estimator import Matcher, build_matcher
from matcher.matching.rerank import SIMILARITIES, decision_rows, served_scores, similarity_frame
from matcher.quality import metrics
from matcher.quality.baseline import plain_char_tfidf
from matcher.quality.known_item import without_reranker
from matcher.quality.results import result_row

__all__ = ["HISTORY_KS", "HISTORY_METHODS", "HistoryResult", "evaluate_history", "history_scores"]

HISTORY_METHODS = ("reranker", "fusion", "char_tfidf", "shown_order")
HISTORY_KS = (1, 3, 5, 10)


def _ranking_metrics(
    dataset: str, method: str, groups: list[tuple[np.ndarray, np.ndarray]], ks: Sequence[int], n_resamples: int
) -> list[dict]:
    """nDCG, precision, recall at each k, MAP and MRR over groups of (scores, gains), with CIs."""
    per: dict[tuple[str, int | None], list[float]] = {}
    for scores, gains in groups:
        order = np.lexsort((np.arange(len(scores)), -scores))
        ranked = list(order)
        gain_of = {i: float(g) for i, g in enumerate(gains)}
        relevant = {i for i, g in gain_of.items() if g > 0}
        for k in ks:
            per.setdefault(("nDCG", k), []).append(metrics.ndcg_at_k(ranked, gain_of, k))
            per.setdefault(("precision", k), []).append(metrics.precision_at_k(ranked, relevant, k))
            per.setdefault(("recall", k), []).append(metrics.recall_at_k(ranked, relevant, k))
        per.setdefault(("MAP", None), []).append(metrics.average_precision(ranked, relevant))
        per.setdefault(("MRR", None), []).append(metrics.reciprocal_rank(ranked, relevant))
    return [
        result_row(dataset, method, metric, k, metrics.bootstrap_ci(values, n_resamples=n_resamples), len(values))
        for (metric, k), values in per.items()
    ]


def _ordering_rows(
    dataset: str, method: str, frame: pd.DataFrame, scores: np.ndarray, n_resamples: int
) -> list[dict]:
    """Pairwise ordering loss of each target's rated decisions: all, clear-cut (gap >= 2), close (gap 1)."""
    rated = frame["accepted"].to_numpy() & (frame["gain"] > 0).to_numpy()
    rows = []
    for label, low, high in (("ordering_loss", 1, math.inf), ("ordering_loss_clear", 2, math.inf), ("ordering_loss_close", 1, 1)):
        losses = metrics.pairwise_ordering_loss(
            (frame.loc[rated, "target_type"] + ":" + frame.loc[rated, "target_id"]).tolist(),
            frame.loc[rated, "gain"].tolist(),
            scores[rated].tolist(),
            min_gap=low,
            max_gap=high,
        )
        values = list(losses.values())
        rows.append(result_row(dataset, method, label, None, metrics.bootstrap_ci(values, n_resamples=n_resamples), len(values)))
    return rows


@dataclass
class HistoryResult:
    """What :func:`evaluate_history` measured: the table, the per-pair scores and the fitted model."""

    rows: list[dict]
    frame: pd.DataFrame  # the test decisions with each method's score
    cutoff: pd.Timestamp
    model: Matcher


def history_scores(
    model: Matcher,
    libs: Libraries,
    test: pd.DataFrame,
    cutoff: pd.Timestamp,
    *,
    need_tags: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Scores of each test decision's pair by every method of ``HISTORY_METHODS``.

    The re-ranker scores as it serves (:func:`matcher.matching.rerank.served_scores`): target histories frozen
    at the cutoff (its training), the live load at decision time, profiles as of the decision's period,
    every candidate taken as shown first, and the evidence cap within each session. ``need_tags`` (need
    id -> tags) replaces the stored tags: the needs as typed free text, with inferred tags.
    """
    frame = test.copy()
    similarities = similarity_frame(model, libs, frame, need_tags=need_tags)
    frame[list(SIMILARITIES)] = similarities.to_numpy()
    text_weight = 1.0 - model.tag_weight - model.region_weight
    frame["fusion"] = np.round(
        text_weight * frame["text"] + model.tag_weight * frame["tags"] + model.region_weight * frame["region"], 6
    )
    frame["base"] = frame["fusion"]
    frame["reranker"] = frame["fusion"]
    reranker = model.reranker_
    if reranker is not None:
        for target_type in reranker.models_:
            mask = (frame["target_type"] == target_type).to_numpy()
            frame.loc[mask, "reranker"] = served_scores(reranker, target_type, frame.loc[mask])
    profiles = targets_frame(libs, until=cutoff)
    documents = {
        (t, i): "\n".join(x for x in texts if x)
        for t, i, texts in zip(profiles["target_type"], profiles["id"], profiles["texts"], strict=True)
    }
    baseline = plain_char_tfidf(list(documents.values()))
    need_text = needs_frame(libs).set_index("id")["text"]
    left = baseline.transform(need_text.reindex(frame["need_id"]).fillna("").tolist())
    right = baseline.transform([documents.get(key, "") for key in zip(frame["target_type"], frame["target_id"], strict=True)])
    frame["char_tfidf"] = np.asarray(left.multiply(right).sum(axis=1)).ravel()
    frame["shown_order"] = -frame["rank"].astype(float)
    return frame


def evaluate_history(
    libs: Libraries,
    params: dict[str, Any] | None = None,
    *,
    test_share: float = 0.25,
    n_resamples: int = 1000,
) -> HistoryResult:
    """Fit on the decisions before a cutoff and rank the coordinator sessions after it.

    The cutoff is the time by which ``1 - test_share`` of the accept/reject decisions were made. The
    matcher's vocabulary, its tag classifier (on the needs created by then), the re-ranker (with its
    gate) and the target histories are fitted on what was known then. Each later session (the targets
    shown to a coordinator for one need) is a ranking task; the relevance of a target is its rating
    when accepted (3 without one), 0 when rejected. Methods: ``reranker`` (the model as it serves),
    ``fusion`` (its base score), ``char_tfidf`` (plain character TF-IDF cosine) and ``shown_order``
    (the order the simulator showed, a reference that knew the hidden relevance). Sessions without any
    acceptance carry no ranking signal and are left out.

    Datasets: ``history`` (stored needs, all types), ``history/<type>`` (each target type), and
    ``history_free_text`` and ``history_free_text/<type>``: the same needs as typed free text, tags
    removed and inferred by the classifier fitted before the cutoff.
    """
    rows_all = decision_rows(libs)
    if rows_all.empty:
        raise ValueError("the libraries hold no decisions to evaluate on")
    cutoff = rows_all["decided_at"].quantile(1 - test_share)
    model = build_matcher(params).fit(targets_frame(libs, until=cutoff))
    model.fit_tagger(needs_frame(libs, libs.needs.loc[libs.needs["created_at"] <= cutoff, "id"].tolist()), libs.taxonomy)
    model.fit_reranker(libs, until=cutoff)
    test = rows_all.loc[rows_all["decided_at"] > cutoff].reset_index(drop=True)
    frame = history_scores(model, libs, test, cutoff)
    later = needs_frame(libs, list(dict.fromkeys(test["need_id"])))
    inferred = dict(zip(later["id"], model.infer_tags(later["text"].tolist()), strict=True))
    free = history_scores(model, libs, test, cutoff, need_tags={i: [t["tag"] for t in v] for i, v in inferred.items()})
    result = _history_rows("history", frame, n_resamples, ordering=True)
    result += _history_rows("history_free_text", free, n_resamples)
    for target_type in TARGET_TYPES:
        for dataset, part in ((f"history/{target_type}", frame), (f"history_free_text/{target_type}", free)):
            chosen = part.loc[part["target_type"] == target_type]
            if len(chosen):
                result += _history_rows(dataset, chosen, n_resamples, ks=(5,))
    result += _exposure_rows(model, libs, test, n_resamples)
    return HistoryResult(rows=result, frame=frame, cutoff=cutoff, model=model)


def _history_rows(
    dataset: str, frame: pd.DataFrame, n_resamples: int, *, ordering: bool = False, ks: Sequence[int] = HISTORY_KS
) -> list[dict]:
    """Ranking metrics of each method over the sessions of ``frame``, and the re-ranker's paired gain."""
    result = []
    sessions = [g for _, g in frame.groupby("session", sort=True) if (g["gain"] > 0).any() and len(g) > 1]
    for method in HISTORY_METHODS:
        groups = [(g[method].to_numpy(dtype=float), g["gain"].to_numpy(dtype=float)) for g in sessions]
        result += _ranking_metrics(dataset, method, groups, ks, n_resamples)
        if ordering and method != "shown_order":
            result += _ordering_rows(dataset, method, frame, frame[method].to_numpy(dtype=float), n_resamples)
    # the gain of re-ranking over the base score, per session, with its own interval
    differences = []
    for g in sessions:
        gains = dict(enumerate(g["gain"]))
        ndcg = {}
        for method in ("reranker", "fusion"):
            scores = g[method].to_numpy(dtype=float)
            ndcg[method] = metrics.ndcg_at_k(list(np.lexsort((np.arange(len(scores)), -scores))), gains, 5)
        differences.append(ndcg["reranker"] - ndcg["fusion"])
    result.append(
        result_row(dataset, "reranker-fusion", "nDCG", 5, metrics.bootstrap_ci(differences, n_resamples=n_resamples), len(differences))
    )
    return result


def _exposure_rows(model: Matcher, libs: Libraries, test: pd.DataFrame, n_resamples: int, k: int = 5) -> list[dict]:
    """Catalogue coverage and exposure Gini of the top ``k`` experts for the test period's needs."""
    needs = needs_frame(libs, list(dict.fromkeys(test["need_id"])))
    catalogue = model.targets("expert")
    catalogue = catalogue.loc[catalogue["available"], "id"].tolist()
    rows = []
    fusion = without_reranker(model)
    for method, scorer in (("reranker", model), ("fusion", fusion)):
        table = scorer.match(needs, k=k, target_types=["expert"])
        lists = [g["target_id"].tolist() for _, g in table.groupby("need_id", sort=False)]
        coverage = metrics.bootstrap_ci(
            np.arange(len(lists)), lambda d, ls=lists: metrics.catalogue_coverage([ls[int(i)] for i in d], catalogue), n_resamples=n_resamples,
            centred=True,
        )
        gini = metrics.bootstrap_ci(
            np.arange(len(lists)), lambda d, ls=lists: metrics.exposure_gini([ls[int(i)] for i in d], catalogue), n_resamples=n_resamples,
            centred=True,
        )
        rows.append(result_row("history", method, "coverage", k, coverage, len(lists)))
        rows.append(result_row("history", method, "exposure_gini", k, gini, len(lists)))
    return rows
