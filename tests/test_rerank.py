"""The re-ranker: time-honest training data, fallback, identical HTTP and batch paths, reasons, diversity."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from matcher.inputs.frames import needs_frame, targets_frame
from matcher.inputs.library import load_libraries
from matcher.matching import rerank
from matcher.matching.estimator import build_matcher
from matcher.matching.rank import maximal_marginal_relevance
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def libs():
    return load_libraries(ROOT / "data")


@pytest.fixture(scope="module")
def cutoff(libs):
    return libs.decisions["decided_at"].quantile(0.4)


@pytest.fixture(scope="module")
def reranked(libs):
    """The default matcher fitted as ``matcher train`` fits it, its re-ranker serving every type (no gate)."""
    model = build_matcher({"reranker__gate": False}).fit(targets_frame(libs))
    return model.fit_tagger(needs_frame(libs), libs.taxonomy).fit_reranker(libs)


@pytest.fixture(scope="module")
def gated(libs):
    """The default matcher fitted as ``matcher train`` fits it: the gate decides which types are re-ranked."""
    model = build_matcher().fit(targets_frame(libs))
    return model.fit_tagger(needs_frame(libs), libs.taxonomy).fit_reranker(libs)


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
    for target_type, model in reranker.models_.items():
        coef = dict(zip(rerank.FEATURES, model.coef_[0], strict=True))
        assert all(coef[name] >= 0 for name in rerank.SIMILARITIES), target_type  # monotone in the evidence
        assert coef["tags"] + coef["jaccard"] > 0, target_type
        assert reranker.calibration_[target_type][0] > 0  # the calibration keeps the model's order
        assert reranker.calibration_[target_type][2] < 0  # shown lower, accepted less: position bias
    coef = dict(zip(rerank.FEATURES, reranker.models_["expert"].coef_[0], strict=True))
    assert coef["stage×academic"] > 0 > coef["stage×practitioner"]
    assert coef["load_fraction"] < 0


def test_the_gate_serves_a_type_only_when_it_beats_the_base_score(gated) -> None:
    verdicts = gated.reranker_.gate_
    reranker = gated.reranker_
    assert set(verdicts) == {"expert", "project", "resource"}
    for target_type, verdict in verdicts.items():
        assert verdict["why"]
        enough = verdict["sessions"] >= reranker.gate_min_needs
        beats = enough and verdict["gain"] > reranker.gate_min_gain and verdict["gain_ci"][0] > -0.01
        assert verdict["serves"] is bool(beats)
        assert (target_type in reranker.models_) is bool(beats)
    # on today's simulated history the experts have enough later needs to be judged (the verdict, either way,
    # is checked above); projects have too few and the weighted sum serves them (and says why)
    assert verdicts["expert"]["sessions"] >= 30
    assert not verdicts["project"]["serves"] and "later needs" in verdicts["project"]["why"]
    assert reranker.summary()["gate"] == verdicts


def test_the_gate_serves_a_reranker_that_truly_beats_the_base_score() -> None:
    """Synthetic decisions driven by tag overlap, which the base score barely weighs: the gate lets it serve."""
    rng = np.random.default_rng(0)
    n_sessions, per = 120, 6
    rows = []
    for session in range(n_sessions):
        jaccard = rng.random(per)
        for j in range(per):
            rows.append(
                {
                    "target_type": "expert",
                    "target_id": f"E{session * per + j:04d}",
                    "session": f"s{session}",
                    "text": 0.3 + 0.05 * rng.random(),
                    "jaccard": jaccard[j],
                    "accepted": bool(jaccard[j] == jaccard.max()),
                    "log_rank": float(np.log(j + 1)),
                }
            )
    frame = pd.DataFrame(rows)
    for name in rerank.SIMILARITIES:
        if name not in frame:
            frame[name] = 0.0
    frame["words"] = 1.0
    frame["text_share"] = frame["text"]
    for name in ("load_fraction", "acceptance_rate", "log_shown", "familiarity"):
        frame[name] = 0.0
    frame["stage"], frame["kind"] = "", "academic"
    frame["gain"] = np.where(frame["accepted"], 3.0, 0.0)
    frame["base"] = np.round(0.75 * frame["text"], 6)
    train, later = frame.iloc[: len(frame) // 2], frame.iloc[len(frame) // 2 :]
    reranker = rerank.Reranker(evidence_margin=0.1).fit(train, train["accepted"])
    verdict = rerank.gate(reranker, later)["expert"]
    assert verdict["serves"] and verdict["gain"] > 0.2 and verdict["sessions"] == n_sessions // 2


def test_more_evidence_never_lowers_the_score(libs, reranked) -> None:
    """Monotone in every similarity, for the logistic and the gradient-boosting re-ranker alike."""
    frame = rerank.training_frame(reranked, libs, libs.decisions["decided_at"].quantile(0.5))
    gbdt = rerank.Reranker(method="gbdt", max_iter=40).fit(frame, frame["accepted"], context=reranked.reranker_.context_)
    rng = np.random.default_rng(1)
    matrix = rerank.feature_matrix(frame.sample(300, random_state=1), rank=False)
    for reranker in (reranked.reranker_, gbdt):
        for target_type in reranker.models_:
            before = reranker.predict_proba(target_type, matrix)
            for name in rerank.SIMILARITIES:
                raised = matrix.copy()
                raised[:, rerank.FEATURES.index(name)] += rng.uniform(0.01, 0.5, len(matrix))
                after = reranker.predict_proba(target_type, raised)
                assert (after >= before - 1e-12).all(), (reranker.method, target_type, name)


def test_history_moves_the_log_odds_by_at_most_the_cap(libs, reranked) -> None:
    reranker = reranked.reranker_
    frame = rerank.training_frame(reranked, libs, libs.decisions["decided_at"].quantile(0.5))
    matrix = rerank.feature_matrix(frame, rank=False)
    for target_type in reranker.models_:
        reference = matrix.copy()
        history = list(rerank.HISTORY)
        reference[:, history] = reranker.means_[target_type][history]
        slope = reranker.calibration_[target_type][0]
        moved = reranker._logits(target_type, matrix) - reranker._logits(target_type, reference)
        assert np.abs(moved).max() <= slope * reranker.history_cap + 1e-9


def test_cap_to_evidence_by_hand() -> None:
    scores = np.array([0.30, 0.90, 0.80, 0.70])
    base = np.array([0.40, 0.38, 0.20, 0.05])
    has_evidence = np.array([True, True, True, False])
    capped = rerank.cap_to_evidence(scores, base, has_evidence, margin=0.05)
    # 1 may pass 0 (bases within 0.05); 2 may not pass 0 or 1; 3 has no evidence: below every other
    np.testing.assert_allclose(capped, [0.30, 0.90, 0.299999, 0.299998])
    assert list(np.lexsort((np.arange(4), -capped))) == [1, 0, 2, 3]
    np.testing.assert_array_equal(rerank.cap_to_evidence(scores, base, np.ones(4, bool), margin=1.0), scores)


def test_a_candidate_without_evidence_never_ranks_above_one_with_evidence(libs, reranked) -> None:
    needs = needs_frame(libs, libs.needs["id"].iloc[:40].tolist())
    typed = needs.assign(tags=None)  # the same needs as typed free text: tags inferred
    short = pd.DataFrame({"id": list("abc"), "text": ["心语小屋", "swot分析", "想借一间能坐50人的培训教室"], "tags": [[]] * 3})
    seen_without = 0
    for frame in (needs, typed, short):
        block = reranked._needs(frame)
        for target_type in reranked.target_types_:
            rankings, _ = reranked._ranked(block, target_type, reranked.rerank_depth, None, explain=True)
            for ranking in rankings:
                if ranking.features is None:
                    continue
                columns = {n: ranking.features[:, rerank.FEATURES.index(n)] for n in rerank.SIMILARITIES}
                has_evidence = rerank.evidence(columns)
                seen_without += int((~has_evidence).sum())
                scores = ranking.scores
                assert list(scores) == sorted(scores, reverse=True)
                if has_evidence.any() and (~has_evidence).any():
                    assert scores[~has_evidence].max() < scores[has_evidence].min()
                # and never above a candidate at least as evidenced whose base score is clearly higher
                margin = reranked.reranker_.evidence_margin
                for i in range(len(scores)):
                    clearly = (ranking.base >= ranking.base[i] + margin) & (has_evidence | ~has_evidence[i])
                    assert (scores[clearly] > scores[i]).all()
    assert seen_without > 0  # the rule was exercised


def test_tags_absent_are_inferred_and_an_empty_list_is_kept(reranked) -> None:
    text = "我们机构刚成立，分不清个案工作和个案管理，想请专家指导转介流程"
    inferred = reranked.infer_tags([text])[0]
    assert inferred and inferred[0]["tag"] == "个案管理" and 0 < inferred[0]["probability"] <= 1
    absent = reranked.recommend({"text": text}, k=5, target_types=["expert"])["expert"]
    empty = reranked.recommend({"text": text, "tags": []}, k=5, target_types=["expert"])["expert"]
    assert any(r["reasons"]["tags"] == ["个案管理"] for r in absent)
    assert all(r["reasons"]["tags"] == [] and r["reasons"]["components"]["tags"] == 0 for r in empty)
    given = reranked.recommend({"text": text, "tags": ["个案管理"]}, k=5, target_types=["expert"])["expert"]
    assert [r["id"] for r in given] == [r["id"] for r in absent]


def test_tag_threshold_is_chosen_by_cross_validation(libs, reranked) -> None:
    from sklearn.base import clone

    from matcher.matching.tagging import THRESHOLDS

    tagger = reranked.tagger_
    assert tagger.threshold_ in THRESHOLDS and 0.4 < tagger.cv_f1_ <= 1
    assert clone(reranked).get_params()["tagger__threshold"] is None
    fixed = build_matcher({"tagger__threshold": 0.9}).fit(targets_frame(libs)).fit_tagger(needs_frame(libs), libs.taxonomy)
    assert fixed.tagger_.threshold_ == 0.9 and fixed.tagger_.cv_f1_ is None
    assert sum(map(len, fixed.tagger_.predict(libs.needs["description"].iloc[:50]))) < sum(
        map(len, tagger.predict(libs.needs["description"].iloc[:50]))
    )


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
    factors = reasons["rerank"]["features"]
    assert all(f["feature"] in rerank.FEATURES and f["feature"] != "log_rank" for f in factors)
    assert len({f["label"] for f in factors}) == len(factors)  # each factor once
    for factor in factors:
        assert factor["label"] == rerank.feature_label(factor["feature"], factor["value"])
        if factor["feature"] == "region":  # the label says what the card says
            assert factor["label"] == ("地区一致" if reasons["region"]["match"] else "地区不同")
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


def test_manifest_and_models_list_say_which_types_are_reranked_and_why(tmp_path, monkeypatch) -> None:
    import json

    from click.testing import CliRunner

    from matcher.cli import cli
    from matcher.jobs.training import train_version

    models = tmp_path / "models"
    version = train_version(
        data=ROOT / "data", models=models, database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}", evaluate=False
    )
    manifest = json.loads((models / version / "manifest.json").read_text(encoding="utf-8"))
    summary = manifest["metrics"]["reranker"]
    assert set(summary["gate"]) == {"expert", "project", "resource"}
    assert manifest["metrics"]["tagger"]["labels"] == 22
    monkeypatch.setenv("MATCHER_MODELS_DIR", str(models))
    listed = CliRunner().invoke(cli, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    for target_type, verdict in summary["gate"].items():
        served = "re-ranked" if target_type in summary["reranked"] else "base score"
        assert f"{target_type}: {served} ({verdict['why']})" in listed.output
