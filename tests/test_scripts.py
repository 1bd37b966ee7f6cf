"""Script-aware analysis: Latin-script words are stemmed words, Chinese runs character n-grams and words.

Known answers on English and mixed profiles (``tests/data/mixed_script.jsonl``, written for these
tests: 12 experts, 22 needs, each with its relevant experts), renormalised block weights, surface forms
in the reasons, old artefacts, and the sklearn contract.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer

from matcher.matching import persist
from matcher.matching.estimator import build_matcher
from matcher.matching.vectorize import TextVectorizer
from matcher.quality import metrics
from matcher.text.normalise import normalise
from matcher.text.scripts import latin_tokens, script_views, stem
from tests.conftest import target

DATA = Path(__file__).parent / "data" / "mixed_script.jsonl"
#: The analysis of models saved before the Latin block (what ``__setstate__`` gives them).
OLD = {"vectorizer__split_scripts": False, "vectorizer__renormalise": False}


def load_set() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The experts as a targets frame, and the needs (``id, text, relevant``)."""
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    experts = pd.DataFrame([target("expert", r["id"], r["id"], [r["text"]], []) for r in rows if r["kind"] == "expert"])
    needs = pd.DataFrame([r for r in rows if r["kind"] == "need"])[["id", "text", "relevant"]]
    return experts, needs


def ranking_quality(scores: np.ndarray, experts: pd.DataFrame, needs: pd.DataFrame) -> dict[str, float]:
    """Mean nDCG@10 (binary gains), MRR@10 and hit@1 of a (needs, experts) score matrix; ties by id."""
    ids = experts["id"].to_numpy()
    ndcg, rr, hit = [], [], []
    for row, relevant in enumerate(needs["relevant"]):
        order = np.lexsort((ids, -scores[row]))
        ranked = [ids[j] for j in order if scores[row, j] > 0]
        ndcg.append(metrics.ndcg_at_k(ranked, dict.fromkeys(relevant, 1), 10))
        rr.append(metrics.reciprocal_rank(ranked, set(relevant), 10))
        hit.append(float(bool(ranked) and ranked[0] in relevant))
    return {"nDCG@10": float(np.mean(ndcg)), "MRR@10": float(np.mean(rr)), "hit@1": float(np.mean(hit))}


def compare(weighting: dict[str, str] | None = None) -> dict[str, dict[str, float]]:
    """The matcher with the script-aware defaults, the matcher with the old analysis, and a plain
    scikit-learn word TF-IDF (``TfidfVectorizer()``), on the mixed-script set; ``weighting`` overrides
    both matchers' term weighting."""
    experts, needs = load_set()
    results = {}
    for name, params in (("matcher", {}), ("matcher, old analysis", OLD)):
        model = build_matcher({**params, **(weighting or {})}).fit(experts)
        results[name] = ranking_quality(
            model.score(needs[["id", "text"]].assign(tags=[[]] * len(needs))), experts, needs
        )
    texts = [t[0] for t in experts["texts"]]
    tfidf = TfidfVectorizer().fit(texts)
    plain = (tfidf.transform(needs["text"]) @ tfidf.transform(texts).T).toarray()
    results["word TF-IDF"] = ranking_quality(plain, experts, needs)
    return results


# --------------------------------------------------------------------------------- analysis
def test_script_views_split_runs_and_keep_offsets() -> None:
    text = "swot分析 2023年 5g网络 第3届"
    cjk, latin = script_views(text)
    assert cjk == "    分析 2023年   网络 第3届"
    assert latin == "swot" + " " * 9 + "5g" + " " * 6
    assert len(cjk) == len(latin) == len(text)
    # a number standing alone takes the script of the nearest letter: before it, else after it
    assert script_views("1605 中毒")[0] == "1605 中毒"
    assert script_views("in 2020")[1] == "in 2020"
    assert script_views("2020 in review")[1] == "2020 in review"


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("We are analysing the analysis", ["analys", "analys"]),  # stop words dropped, one stem
        ("organizations and organisations", ["organis", "organis"]),  # -ize / -ise
        ("SWOT分析与PDCA", ["swot", "pdca"]),  # acronyms whole, no Chinese
        ("5G networks in 2020, ISO9001认证", ["5g", "network", "2020", "iso9001"]),  # digits kept whole
        ("2023年的计划", []),  # a number written against Chinese belongs to the Chinese run
    ],
)
def test_latin_tokens(text, terms) -> None:
    doc = normalise(text)
    found = latin_tokens(doc)
    assert [t for t, _, _ in found] == terms
    for term, start, end in found:  # offsets index the word as written
        assert stem(doc[start:end]) == term or doc[start:end] == term


def test_no_character_ngrams_on_latin_text() -> None:
    vectorizer = TextVectorizer().fit(["SWOT分析与项目评估", "PDCA循环管理", "case management"])
    names = set(vectorizer.get_feature_names_out())
    assert {"latin:swot", "latin:pdca", "latin:manag", "char:分析", "word:分析"} <= names
    assert not {n for n in names if n.startswith(("char:", "word:")) and any("a" <= c <= "z" for c in n[5:])}
    assert "char:sw" not in names and "char:wo" not in names and "char:ot" not in names


def test_swot_in_chinese_matches_swot() -> None:
    experts, _ = load_set()
    model = build_matcher().fit(experts)
    best = model.recommend({"text": "我们想做SWOT", "tags": []}, k=1)["expert"][0]
    assert best["id"] == "E03"
    assert [t["term"] for t in best["reasons"]["terms"]] == ["swot"]


# --------------------------------------------------------------------------- renormalisation
def test_english_only_text_reaches_cosine_one() -> None:
    docs = ["个案管理与转介", "居家养老服务", "case management and referral", "group work practice"]
    vectorizer = TextVectorizer(char_weight=3.0, word_weight=0.5).fit(docs)
    X = vectorizer.transform(docs)
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(axis=1)).A1, 1.0, rtol=1e-5)
    same = (vectorizer.transform(["case management and referral"]) @ X.T).toarray()[0]
    assert same[2] == pytest.approx(1.0, abs=1e-5)
    old = TextVectorizer(char_weight=3.0, word_weight=0.5, renormalise=False).fit(docs)
    capped = (old.transform(["case management and referral"]) @ old.transform(docs).T).toarray()[0]
    assert capped[2] == pytest.approx(old.weights_["latin"], abs=1e-5)  # what renormalising lifts


def test_chinese_only_texts_score_as_without_the_latin_block() -> None:
    docs = ["个案管理实务与转介", "小组工作实务工作坊", "居家养老与失能老人照护", "case management"]
    pair = ["个案管理实务", "个案管理与转介"]
    with_latin = TextVectorizer(char_weight=3.0, word_weight=0.5).fit(docs)
    without = TextVectorizer(char_weight=3.0, word_weight=0.5, latin_weight=0).fit(docs)
    sim = lambda v: (v.transform(pair[:1]) @ v.transform(pair[1:]).T).toarray()[0, 0]  # noqa: E731
    assert sim(with_latin) == pytest.approx(sim(without), abs=1e-6)


def test_mixed_text_similarity_stays_in_unit_interval() -> None:
    experts, needs = load_set()
    vectorizer = TextVectorizer(char_weight=3.0, word_weight=0.5).fit([t[0] for t in experts["texts"]])
    sims = (vectorizer.transform(needs["text"]) @ vectorizer.transform([t[0] for t in experts["texts"]]).T).toarray()
    assert sims.min() >= 0 and sims.max() <= 1 + 1e-5


def test_block_cosines_of_the_reranker_are_cosines() -> None:
    experts, _ = load_set()
    model = build_matcher({"vectorizer__weighting": "tfidf"}).fit(experts)  # symmetric vectors: cosines
    pairs = pd.DataFrame({"need_id": "n", "target_type": "expert", "target_id": ["E10", "E03"]})
    need = pd.DataFrame({"id": ["n"], "text": ["data analysis 项目评估"], "tags": [[]]})
    features = model.pair_features(need, pairs)
    assert features["word"].between(0, 1).all() and features["char"].between(0, 1).all()
    english_only = model.pair_features(need.assign(text="data analysis"), pairs.iloc[:1])
    vectorizer = model.vectorizer_
    a, b = vectorizer.transform(["data analysis"]), vectorizer.transform([experts["texts"][9][0]])
    assert english_only["word"].iloc[0] == pytest.approx((a @ b.T).toarray()[0, 0], abs=1e-5)


# ------------------------------------------------------------------------- known answers
def test_known_answers_on_english_and_mixed_profiles() -> None:
    experts, needs = load_set()
    model = build_matcher().fit(experts)
    scores = model.score(needs[["id", "text"]].assign(tags=[[]] * len(needs)))
    ids = experts["id"].to_numpy()
    best = {need: ids[np.lexsort((ids, -row))[0]] for need, row in zip(needs["id"], scores, strict=True)}
    wrong = {
        n: b for n, b, relevant in zip(needs["id"], best.values(), needs["relevant"], strict=True) if b not in relevant
    }
    assert not wrong
    # an English-only need finds the English-profiled expert with a cosine near 1 on its own words
    english = model.recommend({"text": "Case management and referral", "tags": []}, k=2)["expert"]
    assert english[0]["id"] == "E01"


def test_reasons_show_the_words_as_written() -> None:
    experts, _ = load_set()
    model = build_matcher().fit(experts)
    need = "We keep analysing the data of our surveys: an analysis"
    best = model.recommend({"text": need, "tags": []}, k=1)["expert"][0]
    assert best["id"] == "E10"
    doc = normalise(need)
    terms = {t["term"]: t["spans"] for t in best["reasons"]["terms"]}
    assert "analysing" in terms and "surveys" in terms  # as typed, never the stems analys / survey
    assert not {"analys", "survey", "analysi"} & set(terms)
    for term, spans in terms.items():  # each span indexes the term as shown
        assert spans and all(doc[start:end] == term for start, end in spans)
    assert terms["analysing"] == [[doc.index("analysing"), doc.index("analysing") + 9]]


def test_the_new_analysis_beats_the_old_and_a_plain_word_tfidf() -> None:
    # under the former defaults (TF-IDF cosines, characters 3.0 against words 0.5), where Latin character
    # n-grams did the harm the issue measured
    results = compare({"vectorizer__weighting": "tfidf", "vectorizer__word_weight": 0.5})
    assert results["matcher"]["hit@1"] == 1.0
    assert results["matcher"]["MRR@10"] > results["matcher, old analysis"]["MRR@10"]
    assert results["matcher"]["MRR@10"] > results["word TF-IDF"]["MRR@10"]
    # the shipped defaults (Okapi BM25) rank every need's expert first, the old analysis at best as well
    results = compare()
    assert results["matcher"]["hit@1"] == 1.0
    assert results["matcher"]["MRR@10"] >= results["matcher, old analysis"]["MRR@10"]
    assert results["matcher"]["MRR@10"] > results["word TF-IDF"]["MRR@10"]


# ------------------------------------------------------------------------- persistence and sklearn
def test_pickle_round_trip_and_sklearn_contract() -> None:
    experts, needs = load_set()
    vectorizer = TextVectorizer(latin_weight=2.0, latin_stop_words=["data"], latin_stem=None)
    twin = clone(vectorizer)
    assert twin.get_params() == vectorizer.get_params()
    assert {"latin_weight", "latin_stem", "latin_stop_words", "split_scripts", "renormalise"} <= set(twin.get_params())
    texts = [t[0] for t in experts["texts"]]
    fitted = vectorizer.fit(texts)
    assert "latin:data" not in set(fitted.get_feature_names_out())
    assert "latin:analysis" in set(fitted.get_feature_names_out())  # no stemming
    loaded = pickle.loads(pickle.dumps(fitted))
    assert (loaded.transform(needs["text"]) != fitted.transform(needs["text"])).nnz == 0
    with pytest.raises(ValueError, match="Snowball"):
        TextVectorizer(latin_stem="klingon").fit(texts)
    with pytest.raises(ValueError, match="latin_stop_words"):
        TextVectorizer(latin_stop_words="german").fit(texts)


def test_an_old_artefact_loads_and_scores_as_before() -> None:
    """``vectorizer_before_scripts.pkl`` was pickled by the code before the Latin block (fitted on this set's
    experts with char_weight 3, word_weight 0.5), ``.npz`` holds the vectors it gave this set's needs: it
    loads with the old analysis and scaling and gives the same vectors, to the bit."""
    import scipy.sparse as sp

    _, needs = load_set()
    loaded = persist.unpickle(DATA.parent / "vectorizer_before_scripts.pkl")  # pickled before the move too
    assert loaded.split_scripts is False and loaded.renormalise is False and loaded.latin_ is None
    expected = sp.load_npz(DATA.parent / "vectorizer_before_scripts.npz")
    got = loaded.transform(needs["text"])
    assert got.shape == expected.shape and (got != expected).nnz == 0
    assert "char:sw" in set(loaded.get_feature_names_out())  # the old analysis, kept
    assert clone(loaded).get_params()["split_scripts"] is False  # params_of() rebuilds the same settings
