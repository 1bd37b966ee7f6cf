"""The matcher: known best matches, hard rules, determinism, reasons and the sklearn contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from matcher.matching.estimator import MATCH_COLUMNS, Matcher, build_matcher, params_of
from tests.conftest import target


def ids(results: list[dict]) -> list[str]:
    return [r["id"] for r in results]


@pytest.mark.parametrize(
    ("text", "expert", "resource", "project"),
    [
        ("我们机构分不清个案工作和个案管理，转介流程也不会做", "E01", "R01", None),
        ("社工站想开展小组工作，但不知道怎么设计和带领小组", "E02", None, None),
        ("回迁社区里失能老人多，居家养老服务怎么做", "E03", None, "P02"),
        ("學校裡有校園欺凌，想做兒童保護項目", "E05", None, "P01"),  # traditional characters
    ],
)
def test_known_best_match(toy_matcher, text, expert, resource, project) -> None:
    results = toy_matcher.recommend({"text": text}, k=3)
    assert results["expert"][0]["id"] == expert
    if resource:
        assert results["resource"][0]["id"] == resource
    if project:
        assert results["project"][0]["id"] == project


def test_empty_bio_expert_is_matchable_through_specialties(toy_matcher) -> None:
    results = toy_matcher.recommend({"text": "需要专家帮我们做战略规划"}, k=1, target_types=["expert"])
    assert ids(results["expert"]) == ["E04"]


def test_reasons_structure_and_spans(toy_matcher) -> None:
    need = {"text": "我們機構不會做個案管理(lǐ)，轉介怎么做？", "tags": ["个案管理"], "counties": ["雄县"]}
    best = toy_matcher.recommend(need, k=1, target_types=["expert"])["expert"][0]
    reasons = best["reasons"]
    assert set(reasons) >= {"terms", "tags", "region"}
    normalised = "我们机构不会做个案管理,转介怎么做?"
    terms = {t["term"]: t for t in reasons["terms"]}
    assert "个案管理" in terms and "转介" in terms
    for term in reasons["terms"]:
        assert term["weight"] > 0
        for start, end in term["spans"]:
            assert normalised[start:end] == term["term"]
    assert reasons["tags"] == ["个案管理"]
    assert reasons["region"] == {"match": True, "counties": ["雄县"]}
    assert sum(reasons["components"].values()) == pytest.approx(best["score"], abs=2e-6)


def test_tags_and_region_raise_the_score(toy_matcher) -> None:
    plain = toy_matcher.recommend({"text": "个案管理"}, k=1, target_types=["expert"])["expert"][0]
    tagged = toy_matcher.recommend(
        {"text": "个案管理", "tags": ["個案管理"], "counties": ["雄县"]}, k=1, target_types=["expert"]
    )["expert"][0]
    assert tagged["id"] == plain["id"] == "E01"
    assert tagged["score"] == pytest.approx(plain["score"] + 0.2 + 0.05, abs=2e-6)


def test_scores_are_comparable_across_needs(toy_matcher) -> None:
    strong = toy_matcher.recommend({"text": "个案管理与转介，个案会议督导"}, k=1)["expert"][0]["score"]
    weak = toy_matcher.recommend({"text": "想了解一下管理方面的东西"}, k=1)["expert"][0]["score"]
    assert strong > 0.3 > weak  # not normalised per need: a weak need's best match stays weak


# ---------------------------------------------------------------- hard rules
def test_unavailable_expert_is_never_recommended(toy_targets) -> None:
    toy_targets.loc[toy_targets["id"] == "E01", "available"] = False
    results = build_matcher().fit(toy_targets).recommend({"text": "个案管理"}, k=5)
    assert "E01" not in ids(results["expert"])


def test_fully_booked_expert_is_never_recommended(toy_targets) -> None:
    toy_targets.loc[toy_targets["id"] == "E01", "load"] = 3  # capacity 3
    results = build_matcher().fit(toy_targets).recommend({"text": "个案管理"}, k=5)
    assert "E01" not in ids(results["expert"])
    toy_targets.loc[toy_targets["id"] == "E01", "load"] = 2
    results = build_matcher().fit(toy_targets).recommend({"text": "个案管理"}, k=5)
    assert ids(results["expert"])[0] == "E01"


def test_conflict_of_interest_excludes_own_organisation(toy_targets) -> None:
    toy_targets.loc[toy_targets["id"] == "E01", "org_id"] = "O1"
    model = build_matcher().fit(toy_targets)
    assert "E01" not in ids(model.recommend({"text": "个案管理", "org_id": "O1"}, k=5)["expert"])
    assert ids(model.recommend({"text": "个案管理", "org_id": "O2"}, k=5)["expert"])[0] == "E01"
    assert "P01" not in ids(model.recommend({"text": "护苗行动", "org_id": "O9"}, k=5)["project"])


def test_county_filter(toy_matcher) -> None:
    results = toy_matcher.recommend({"text": "个案管理与小组工作"}, k=5, county="安新县")
    assert set(ids(results["expert"])) <= {"E03"}
    assert "R02" in ids(toy_matcher.recommend({"text": "办公场地"}, k=5, county="安新县")["resource"])  # serves all


def test_fewer_than_k_eligible_gives_fewer_results(toy_matcher) -> None:
    results = toy_matcher.recommend({"text": "个案管理"}, k=50, target_types=["resource"])
    assert len(results["resource"]) in (1, 2)
    assert toy_matcher.recommend({"text": "qwerty zxcvb"}, k=5, target_types=["project"])["project"] == []


def test_ties_are_broken_by_id() -> None:
    frame = pd.DataFrame([target("expert", i, i, ["个案管理"], ["个案管理"], capacity=1) for i in ("E9", "E1", "E5")])
    model = build_matcher().fit(frame)
    results = model.recommend({"text": "个案管理"}, k=3)["expert"]
    assert ids(results) == ["E1", "E5", "E9"]
    assert len({r["score"] for r in results}) == 1


# ---------------------------------------------------------------- batch path and contract
def test_match_rows_equal_recommend(toy_matcher) -> None:
    needs = pd.DataFrame(
        {
            "id": ["N1", "N2"],
            "text": ["个案管理转介", "校园欺凌"],
            "tags": [["个案管理"], []],
            "counties": [["雄县"], []],
            "org_id": [None, "O9"],
        }
    )
    rows = toy_matcher.match(needs, k=2)
    assert tuple(rows.columns) == MATCH_COLUMNS
    for need in needs.to_dict("records"):
        expected = toy_matcher.recommend(need, k=2)
        for target_type, results in expected.items():
            got = rows[(rows["need_id"] == need["id"]) & (rows["target_type"] == target_type)]
            assert got["target_id"].tolist() == ids(results)
            assert got["score"].tolist() == [r["score"] for r in results]
            assert got["rank"].tolist() == list(range(1, len(results) + 1))


def test_chunking_does_not_change_results(toy_matcher) -> None:
    needs = pd.DataFrame(
        {
            "id": [f"N{i}" for i in range(7)],
            "text": ["个案管理", "小组工作", "养老", "儿童保护", "战略规划", "办公场地", "护苗"],
        }
    )
    pd.testing.assert_frame_equal(toy_matcher.match(needs, chunk_size=2), toy_matcher.match(needs, chunk_size=500))


def test_score_matrix_shape_and_column_order(toy_matcher) -> None:
    scores = toy_matcher.score(pd.DataFrame({"id": ["N1"], "text": ["个案管理"]}), "expert")
    assert scores.shape == (1, 5)
    assert toy_matcher.targets("expert")["id"].tolist() == ["E01", "E02", "E03", "E04", "E05"]
    assert scores[0].argmax() == 0


@pytest.mark.parametrize("aggregation", ["concat", "max"])
def test_aggregations_find_the_right_expert(toy_targets, aggregation) -> None:
    model = build_matcher({"aggregation": aggregation}).fit(toy_targets)
    assert model.recommend({"text": "小组工作实务工作坊"}, k=1)["expert"][0]["id"] == "E02"


@pytest.mark.parametrize("aggregation", ["concat", "max"])
def test_text_rows_are_each_targets_own(toy_targets, aggregation) -> None:
    index = build_matcher({"aggregation": aggregation}).fit(toy_targets).index_["expert"]
    assert (len(index.owners) > len(index.ids)) == (aggregation == "max")  # a bio and specialties each
    for row in range(len(index.ids)):
        assert index.text_rows(row).tolist() == np.flatnonzero(index.owners == row).tolist()


def test_max_aggregation_uses_the_best_single_text() -> None:
    frame = pd.DataFrame(
        [
            target("expert", "E1", "a", ["个案管理", "养老 服务 社区 治理 品牌 筹资 财务 党建"], [], capacity=1),
            target("expert", "E2", "b", ["个案管理与养老"], [], capacity=1),
        ]
    )
    need = pd.DataFrame({"id": ["N"], "text": ["个案管理"]})
    cosine = {"tag_weight": 0, "region_weight": 0, "vectorizer__weighting": "tfidf"}
    concat = build_matcher(cosine).fit(frame)
    best = build_matcher({**cosine, "aggregation": "max"}).fit(frame)
    assert concat.score(need)[0, 0] < best.score(need)[0, 0] == pytest.approx(1.0, abs=1e-5)
    # the default Okapi BM25: the short exact text scores highest too, below 1 (saturation and length)
    concat = build_matcher({"tag_weight": 0, "region_weight": 0}).fit(frame)
    best = build_matcher({"tag_weight": 0, "region_weight": 0, "aggregation": "max"}).fit(frame)
    assert concat.score(need)[0, 0] < best.score(need)[0, 0] < 1.0


def test_sklearn_contract(toy_targets) -> None:
    model = build_matcher({"tag_weight": 0.3, "vectorizer__char_weight": 0.7})
    twin = clone(model)
    assert twin.get_params(deep=False).keys() == model.get_params(deep=False).keys()
    assert twin.get_params()["vectorizer__char_weight"] == 0.7
    fitted = model.fit(toy_targets)
    assert fitted is model and hasattr(model, "vectorizer_") and not hasattr(twin, "vectorizer_")
    assert model.vectorizer is not model.vectorizer_  # the parameter is not mutated by fit


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"aggregation": "mean"}, "aggregation"),
        ({"tag_weight": 0.9, "region_weight": 0.2}, "sum below 1"),
        ({"tag_weight": -0.1}, "non-negative"),
        ({"feedback_docs": -1}, "feedback_docs"),
        ({"feedback_terms": 0}, "feedback_terms"),
        ({"feedback_weight": 1.0}, "feedback_weight"),
    ],
)
def test_invalid_parameters(toy_targets, params, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_matcher(params).fit(toy_targets)


def test_unknown_parameter_is_named() -> None:
    with pytest.raises(ValueError, match="unknown parameter 'tag_wieght'"):
        build_matcher({"tag_wieght": 0.1})


def test_fit_validates_the_frame(toy_targets) -> None:
    with pytest.raises(ValueError, match="lacks the columns"):
        Matcher().fit(toy_targets.drop(columns=["texts"]))
    with pytest.raises(ValueError, match="duplicate expert id 'E01'"):
        Matcher().fit(pd.concat([toy_targets, toy_targets.iloc[:1]]))
    with pytest.raises(ValueError, match="no targets of type 'project'"):
        Matcher().fit(toy_targets[toy_targets["target_type"] == "expert"]).recommend(
            {"text": "x"}, target_types=["project"]
        )


def test_a_single_target_library() -> None:
    model = build_matcher().fit(pd.DataFrame([target("resource", "R1", "场地", ["会议场地"], [])]))
    assert ids(model.recommend({"text": "需要会议场地"}, k=10)["resource"]) == ["R1"]
    assert set(model.target_types_) == {"resource"}


def test_scores_are_rounded_and_deterministic(toy_matcher, toy_targets) -> None:
    need = pd.DataFrame({"id": ["N"], "text": ["个案管理与小组工作"]})
    a = toy_matcher.score(need)
    b = build_matcher().fit(toy_targets.sample(frac=1, random_state=3)).score(need)  # input order irrelevant
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.round(a, 6))


# ---------------------------------------------------------------- incremental updates
def test_update_targets_equals_a_model_built_with_the_same_vocabulary(toy_targets) -> None:
    model = build_matcher().fit(toy_targets)
    new = pd.DataFrame(
        [
            target(
                "expert", "E00", "孙悦", ["专长：个案管理", "个案管理与转介督导"], ["个案管理"], ["雄县"], capacity=2
            ),
            target(
                "expert", "E03", "王芳", ["专长：小组工作", "改做小组工作带领"], ["小组工作"], ["安新县"], capacity=2
            ),
        ]
    )
    model.update_targets(new, remove=[("project", "P02"), ("resource", "R02")])
    assert model.targets("expert")["id"].tolist() == ["E00", "E01", "E02", "E03", "E04", "E05"]
    assert model.n_targets_ == {"expert": 6, "resource": 1, "project": 1}
    results = model.recommend({"text": "小组工作带领"}, k=6)
    assert "E03" in ids(results["expert"][:2])
    assert ids(results["project"]) in ([], ["P01"]) and "R02" not in ids(results["resource"])
    # the same scores as scoring the updated texts with the original vocabulary
    need = pd.DataFrame({"id": ["N"], "text": ["个案管理与转介"]})
    scores = model.score(need, "expert")[0]
    vectors = model.vectorizer_.transform(["专长：个案管理\n个案管理与转介督导"])
    query = model.vectorizer_.transform_queries(model.vectorizer_.preprocess(["个案管理与转介"]))
    expected = (query @ vectors.T).toarray()[0, 0]
    assert scores[0] == pytest.approx(round(0.75 * expected, 6), abs=2e-6)


def test_update_targets_applies_changed_availability_and_load(toy_matcher, toy_targets) -> None:
    changed = toy_targets[toy_targets["id"] == "E01"].assign(load=3)
    toy_matcher.update_targets(changed)
    assert "E01" not in ids(toy_matcher.recommend({"text": "个案管理"}, k=5)["expert"])


@pytest.mark.parametrize("aggregation", ["concat", "max"])
def test_update_with_everything_equals_refit_on_same_vocabulary(toy_targets, aggregation) -> None:
    model = build_matcher({"aggregation": aggregation}).fit(toy_targets)
    needs = pd.DataFrame({"id": ["N1", "N2"], "text": ["个案管理转介", "养老服务"]})
    before = model.match(needs, k=3)
    model.update_targets(toy_targets.sample(frac=1, random_state=1))
    pd.testing.assert_frame_equal(model.match(needs, k=3), before)


def test_sync_targets_touches_only_what_changed(toy_targets) -> None:
    model = build_matcher().fit(toy_targets)
    assert model.sync_targets(toy_targets) == {"changed": 0, "removed": 0}
    edited = toy_targets[toy_targets["id"] != "P02"].copy()
    edited.loc[edited["id"] == "E01", "load"] = 3
    edited.loc[edited["id"] == "E02", "texts"] = pd.Series(
        [["专长：小组工作", "新增：社区治理与居民议事"]], index=edited.index[edited["id"] == "E02"]
    )
    assert model.sync_targets(edited) == {"changed": 2, "removed": 1}
    results = model.recommend({"text": "居民议事"}, k=5)
    assert ids(results["expert"])[0] == "E02" and "P02" not in ids(results.get("project", []))
    assert "E01" not in ids(model.recommend({"text": "个案管理"}, k=5)["expert"])
    assert model.sync_targets(edited) == {"changed": 0, "removed": 0}


def test_params_of_round_trips_through_build_matcher() -> None:
    model = build_matcher({"tag_weight": 0.3, "vectorizer__char_ngram_range": [1, 3]})
    params = params_of(model)
    assert params["tag_weight"] == 0.3 and params["vectorizer__char_ngram_range"] == [1, 3]
    assert params_of(build_matcher(params)) == params


# ------------------------------------------------------------- the two-pass top k of a block
@pytest.fixture(scope="module")
def generated() -> tuple[pd.DataFrame, pd.DataFrame]:
    """400 generated experts (some unavailable, booked or affiliated) and 120 generated needs."""
    from benchmarks.latency import Generator

    experts = Generator(0).experts(400)
    experts.loc[::17, "available"] = False
    experts.loc[5::23, "capacity"] = 0
    experts["org_id"] = [f"O{i % 7}" if i % 5 == 0 else None for i in range(len(experts))]
    needs = pd.DataFrame(Generator(1).needs(120))
    needs["org_id"] = [f"O{i % 7}" if i % 3 == 0 else None for i in range(len(needs))]
    needs.loc[::11, "counties"] = pd.Series([["雄县", "容城县"]] * len(needs.loc[::11]), index=needs.index[::11])
    needs.loc[7, "text"] = needs.loc[7, "text"] * 40  # a long need: many terms, a wider bound
    return experts, needs


@pytest.mark.parametrize(
    "params",
    [{}, {"vectorizer__weighting": "bm25", "tag_weight": 0.1, "min_score": 0.05}, {"feedback_docs": 5}],
)
@pytest.mark.parametrize(("k", "county"), [(10, None), (1, None), (3, "雄县")])
def test_two_pass_top_k_equals_the_exact_scores(generated, monkeypatch, params, k, county) -> None:
    """Approximate dense scores, then the candidates re-scored exactly: the same rows as scoring all."""
    from matcher.matching import index as index_module
    from matcher.matching import scoring

    experts, needs = generated
    model = build_matcher(params).fit(experts)
    monkeypatch.setattr(scoring, "PRUNE_MIN_TEXTS", 10**9)
    exact = model.match(needs, k=k, county=county, chunk_size=50)
    monkeypatch.setattr(scoring, "PRUNE_MIN_TEXTS", 1)
    monkeypatch.setattr(index_module, "_DENSE_FEATURES", 64)
    pruned = model.match(needs, k=k, county=county, chunk_size=50)
    assert len(exact) > 0
    pd.testing.assert_frame_equal(pruned, exact)
    for need in needs.iloc[:3].to_dict("records"):  # and the HTTP path agrees
        best = model.recommend(need, k=k, target_types=["expert"], county=county)["expert"]
        rows = pruned[pruned["need_id"] == need["id"]]
        assert rows["target_id"].tolist() == ids(best)
        assert rows["score"].tolist() == [r["score"] for r in best]


def test_the_dense_copy_is_not_pickled(generated) -> None:
    import pickle

    from matcher.matching import scoring

    model = build_matcher().fit(generated[0])
    model.index_["expert"].dense_common()
    assert "_dense" not in pickle.loads(pickle.dumps(model)).index_["expert"].__dict__
    assert scoring.PRUNE_MIN_TEXTS > 0


# ------------------------------------------------------------- pseudo-relevance feedback
def _feedback_library() -> pd.DataFrame:
    """Two profiles say 个案管理 with 督导 and 评估; a third says only 督导评估 and never 个案管理."""
    rows = [
        ("E1", "个案管理的督导与评估，个案管理流程"),
        ("E2", "个案管理与督导评估实务"),
        ("E3", "督导评估的方法与工具"),
        ("E4", "乡村振兴产业发展"),
    ]
    return pd.DataFrame(
        [target("expert", i, i, [text], [], []) for i, text in rows]
    )


def test_feedback_expands_a_need_with_its_best_profiles_terms() -> None:
    """Known answer: 个案管理 shares nothing with E3's text; the feedback from E1 and E2 (督导, 评估)
    gives E3 a score, and never E4, which shares nothing with either."""
    library = _feedback_library()
    need = {"id": "N1", "text": "个案管理"}
    plain = build_matcher({"min_score": 0.0}).fit(library).recommend(need, k=4)["expert"]
    expanded = build_matcher({"feedback_docs": 2, "feedback_weight": 0.5}).fit(library).recommend(need, k=4)["expert"]
    assert "E3" not in ids(plain)
    assert ids(expanded)[:2] == ids(plain)[:2] and "E3" in ids(expanded) and "E4" not in ids(expanded)
    for result in expanded:  # reasons list the need's own words only, never the expansion's
        assert all(term["spans"] for term in result["reasons"]["terms"])


def test_feedback_off_changes_nothing(toy_targets) -> None:
    needs = pd.DataFrame({"id": ["N1", "N2"], "text": ["个案管理转介", "校园欺凌"]})
    off = build_matcher({"feedback_docs": 0, "feedback_weight": 0.9}).fit(toy_targets).match(needs)
    pd.testing.assert_frame_equal(off, build_matcher().fit(toy_targets).match(needs))


def test_feedback_scores_a_need_alone_as_in_a_block(toy_targets) -> None:
    model = build_matcher({"feedback_docs": 3}).fit(toy_targets)
    needs = pd.DataFrame({"id": ["N1", "N2", "N3"], "text": ["个案管理转介", "校园欺凌", "小组工作坊"]})
    rows = model.match(needs, k=3)
    for need in needs.to_dict("records"):
        for target_type, results in model.recommend(need, k=3).items():
            got = rows[(rows["need_id"] == need["id"]) & (rows["target_type"] == target_type)]
            assert got["score"].tolist() == [r["score"] for r in results]
