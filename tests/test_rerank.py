"""The re-ranker: time-honest training data, fallback, identical HTTP and batch paths, reasons, diversity."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from matcher import rerank
from matcher.library import load_libraries, needs_frame, targets_frame
from matcher.model import build_matcher
from matcher.rank import maximal_marginal_relevance
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def libs():
    return load_libraries(ROOT / "data")


@pytest.fixture(scope="module")
def cutoff(libs):
    return libs.decisions["decided_at"].quantile(0.4)


@pytest.fixture(scope="module")
def reranked(libs):
    """The default matcher fitted on the libraries, with its re-ranker fitted on every decision."""
    return build_matcher().fit(targets_frame(libs)).fit_reranker(libs)


def _coefficients(model) -> dict[str, np.ndarray]:
    reranker = model.reranker_
    return {t: np.r_[m.coef_[0], m.intercept_, reranker.calibration_[t]] for t, m in reranker.models_.items()}


def test_time_split_never_trains_on_later_decisions(libs, cutoff) -> None:
    model = build_matcher().fit(targets_frame(libs, until=cutoff))
    frame = rerank.training_frame(model, libs, cutoff)
    assert len(frame) and frame["decided_at"].max() <= cutoff
    before = _coefficients(model.fit_reranker(libs, until=cutoff))
    # rewrite history after the cutoff: flip every later decision and drop its ratings
    later = libs.decisions["decided_at"] > cutoff
    assert later.any()
    changed = libs.decisions.copy()
    changed.loc[later, "decision"] = changed.loc[later, "decision"].map(
        {"accepted": "rejected", "rejected": "accepted", "completed": "rejected"}
    )
    changed.loc[later, "rating"] = pd.NA
    altered = type(libs)(**{**libs.__dict__, "decisions": changed})
    after = _coefficients(model.fit_reranker(altered, until=cutoff))
    assert before.keys() == after.keys()
    for target_type in before:
        np.testing.assert_array_equal(before[target_type], after[target_type])
    assert model.reranker_.context_.stats == rerank.feedback_context(libs, cutoff).stats


def test_decision_features_use_only_the_past(libs) -> None:
    rows = rerank.decision_rows(libs)
    first = rows.sort_values("decided_at").groupby(["target_type", "target_id"]).head(1)
    unseen = first.loc[first["log_shown"] == 0]
    assert len(unseen) > 0.9 * len(first)  # the rest were first shown when the hard rules decided
    np.testing.assert_allclose(unseen["acceptance_rate"], 0.2)
    assert (unseen["familiarity"] == 0).all()
    shown = rows.sort_values(["decided_at", "id"]).groupby(["target_type", "target_id"])["log_shown"]
    assert (shown.diff().dropna() >= 0).all()
    assert rows["load_fraction"].between(0, 1, inclusive="left").all()  # fully booked rows are the hard rule's
    assert set(rows["gain"].unique()) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    assert not (rows["gain"] > 0).ne(rows["accepted"]).any()


def test_profiles_as_of_the_decision_do_not_leak_the_pair(libs) -> None:
    """An accepted need's title joins the expert's profile only after the acceptance."""
    model = build_matcher().fit(targets_frame(libs, history=False))
    rows = rerank.decision_rows(libs)
    accepted = rows.loc[rows["accepted"] & (rows["target_type"] == "expert")].head(40)
    honest = rerank.similarity_frame(model, libs, accepted)
    leaky = build_matcher().fit(targets_frame(libs)).pair_features(
        needs_frame(libs, list(dict.fromkeys(accepted["need_id"]))), accepted
    )
    assert (leaky["text"] > honest["text"] + 0.02).mean() > 0.5


def test_reranker_learns_the_designed_signs(reranked) -> None:
    reranker = reranked.reranker_
    assert reranker.summary()["reranked"] == ["expert", "project", "resource"]
    coef = dict(zip(rerank.FEATURES, reranker.models_["expert"].coef_[0], strict=True))
    assert coef["tags"] > 0 and coef["stage×academic"] > 0 > coef["stage×practitioner"]
    assert coef["load_fraction"] < 0
    assert reranker.calibration_["expert"][2] < 0  # shown lower, accepted less: position bias


def _with_reranker(model, reranker):
    twin = copy.copy(model)
    twin.reranker_ = reranker
    return twin


def test_too_little_feedback_keeps_the_weighted_sum(libs, reranked) -> None:
    frame = rerank.training_frame(reranked, libs, libs.decisions["decided_at"].quantile(0.1))
    starved = rerank.Reranker(min_decisions=10_000).fit(frame, frame["accepted"])
    assert starved.models_ == {} and starved.summary()["weighted_sum"] == ["expert", "project", "resource"]
    needs = needs_frame(libs, ["N0001", "N0002"])
    plain = _with_reranker(reranked, None).match(needs, k=5)
    pd.testing.assert_frame_equal(_with_reranker(reranked, starved).match(needs, k=5), plain)


def test_http_and_batch_paths_agree_with_a_reranker(libs, reranked) -> None:
    needs = needs_frame(libs, libs.needs["id"].iloc[:25].tolist())
    table = reranked.match(needs, k=5, chunk_size=7)
    for need in needs.to_dict("records"):
        results = reranked.recommend(need, k=5)
        for target_type, items in results.items():
            rows = table[(table["need_id"] == need["id"]) & (table["target_type"] == target_type)]
            assert rows["target_id"].tolist() == [r["id"] for r in items]
            assert rows["score"].tolist() == [r["score"] for r in items]


def test_reranked_scores_are_probabilities_with_reasons(libs, reranked) -> None:
    need = needs_frame(libs, ["N0002"]).to_dict("records")[0]
    results = reranked.recommend(need, k=5)["expert"]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    reasons = results[0]["reasons"]
    assert {"terms", "tags", "region", "components", "rerank"} <= set(reasons)
    assert reasons["rerank"]["model"] == "logistic" and 0 < len(reasons["rerank"]["features"]) <= 3
    assert all(f["feature"] in rerank.FEATURES and f["feature"] != "log_rank" for f in reasons["rerank"]["features"])
    assert sum(reasons["components"].values()) == pytest.approx(reasons["rerank"]["base"], abs=2e-6)


def test_gbdt_reranker_and_clone(libs, reranked) -> None:
    from sklearn.base import clone

    model = build_matcher({"reranker__method": "gbdt", "reranker__max_iter": 30})
    assert clone(model).get_params()["reranker__method"] == "gbdt"
    frame = rerank.training_frame(reranked, libs, libs.decisions["decided_at"].quantile(0.5))
    gbdt = clone(model.reranker).fit(frame, frame["accepted"], context=reranked.reranker_.context_)
    results = _with_reranker(reranked, gbdt).recommend(needs_frame(libs, ["N0003"]).to_dict("records")[0], k=3)
    assert results["expert"] and results["expert"][0]["reasons"]["rerank"]["model"] == "gbdt"


def test_expert_kind_from_title() -> None:
    assert rerank.expert_kind("副教授") == "academic"
    assert rerank.expert_kind("高级社工师") == "practitioner"
    assert rerank.expert_kind("注册会计师") == "specialist"


def test_maximal_marginal_relevance() -> None:
    scores = np.array([0.9, 0.89, 0.5])
    twins = np.array([[1.0, 0.95, 0.0], [0.95, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert maximal_marginal_relevance(scores, twins, 3, 0.0).tolist() == [0, 1, 2]
    assert maximal_marginal_relevance(scores, twins, 2, 0.5).tolist() == [0, 2]


def test_diversity_spreads_the_top_k(toy_targets) -> None:
    from tests.conftest import target

    clones = pd.DataFrame(
        [target("expert", f"E1{i}", "同队", ["个案管理与转介流程督导"], ["个案管理"], capacity=2) for i in range(3)]
    )
    frame = pd.concat([toy_targets, clones], ignore_index=True)
    need = {"text": "个案管理与转介流程督导"}
    plain = build_matcher().fit(frame).recommend(need, k=3, target_types=["expert"])["expert"]
    diverse = build_matcher({"diversity": 0.7}).fit(frame).recommend(need, k=3, target_types=["expert"])["expert"]
    assert sum(r["id"].startswith("E1") for r in plain) == 3
    assert sum(r["id"].startswith("E1") for r in diverse) < 3
