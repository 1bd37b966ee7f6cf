"""The text vectoriser is a well-behaved scikit-learn transformer."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from matcher.matching.vectorize import TextVectorizer, char_ngrams

DOCS = [
    "个案管理实务与转介",
    "小组工作实务工作坊",
    "居家养老與失能老人照護",
    "儿童保护与预防校园欺凌",
    "社区治理与居民议事",
]


def test_rows_have_unit_norm_and_similarity_in_unit_interval() -> None:
    vectorizer = TextVectorizer().fit(DOCS)
    X = vectorizer.transform(DOCS)
    assert X.shape == (5, vectorizer.n_features_out_)
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(axis=1)).A1, 1.0, rtol=1e-5)
    sims = (X @ X.T).toarray()
    assert sims.min() >= 0 and sims.max() <= 1 + 1e-5


def test_traditional_and_simplified_are_the_same_text() -> None:
    vectorizer = TextVectorizer().fit(DOCS)
    a, b = vectorizer.transform(["居家養老服務"]), vectorizer.transform(["居家养老服务"])
    assert (a != b).nnz == 0


def test_weights_select_blocks() -> None:
    char_only = TextVectorizer(word_weight=0).fit(DOCS)
    assert char_only.word_ is None and all(n.startswith("char:") for n in char_only.get_feature_names_out())
    word_only = TextVectorizer(char_weight=0).fit(DOCS)
    assert word_only.char_ is None and "word:个案管理" in set(word_only.get_feature_names_out())
    with pytest.raises(ValueError, match="not all zero"):
        TextVectorizer(char_weight=0, word_weight=0, latin_weight=0).fit(DOCS)


def test_weighted_mean_of_block_cosines() -> None:
    both = TextVectorizer(char_weight=3, word_weight=1).fit(DOCS)
    char = TextVectorizer(char_weight=1, word_weight=0).fit(DOCS)
    word = TextVectorizer(char_weight=0, word_weight=1).fit(DOCS)
    pair = ["个案管理实务", "个案管理与转介"]
    sim = lambda v: (v.transform(pair[:1]) @ v.transform(pair[1:]).T).toarray()[0, 0]  # noqa: E731
    assert sim(both) == pytest.approx(0.75 * sim(char) + 0.25 * sim(word), rel=1e-5)


def test_english_text_is_matched_by_words() -> None:
    docs = ["case management and referral", "group work practice", "elderly care at home"]
    vectorizer = TextVectorizer(char_weight=0).fit(docs)
    sims = (vectorizer.transform(["referral in case management"]) @ vectorizer.transform(docs).T).toarray()[0]
    assert sims.argmax() == 0 and sims[1] == 0


def test_sklearn_contract() -> None:
    vectorizer = TextVectorizer(char_ngram_range=(1, 3), word_weight=0.3)
    twin = clone(vectorizer)
    assert twin.get_params() == vectorizer.get_params()
    twin.set_params(char_weight=0.9)
    assert twin.char_weight == 0.9 and vectorizer.char_weight == 0.5
    with pytest.raises(NotFittedError):
        vectorizer.transform(DOCS)
    with pytest.raises(ValueError, match="single string"):
        TextVectorizer().fit("个案管理")


def test_grid_search_over_vectoriser_parameters() -> None:
    texts = ["个案管理转介", "个案会议与个案管理", "小组工作带领", "小组工作设计", "个案管理流程", "小组工作坊"] * 3
    labels = [0, 0, 1, 1, 0, 1] * 3
    search = GridSearchCV(
        Pipeline([("vec", TextVectorizer()), ("clf", LinearSVC())]),
        {"vec__char_weight": [0.2, 0.8], "vec__char_ngram_range": [(1, 1), (1, 2)]},
        cv=3,
    )
    search.fit(texts, labels)
    assert search.best_score_ == 1.0
    assert search.predict(["新的个案管理需求"])[0] == 0


def test_bm25_transformer_by_hand() -> None:
    from matcher.matching.vectorize import BM25Transformer

    counts = np.array([[2, 0, 1], [0, 1, 1]])  # lengths 3 and 2, avgdl 2.5
    bm25 = BM25Transformer(k1=1.0, b=0.5, norm=None).fit(counts)
    idf = np.log1p((2 - np.array([1, 1, 2]) + 0.5) / (np.array([1, 1, 2]) + 0.5))
    np.testing.assert_allclose(bm25.idf_, idf)
    weighted = bm25.transform(counts).toarray()
    tf_part = 2 * 2 / (2 + 1 * (0.5 + 0.5 * 3 / 2.5))
    assert weighted[0, 0] == pytest.approx(idf[0] * tf_part)
    assert weighted[1, 0] == 0
    unit = BM25Transformer().fit(counts).transform(counts)
    np.testing.assert_allclose(np.sqrt(unit.multiply(unit).sum(axis=1)).A1, 1.0)


@pytest.mark.parametrize("weighting", ["tfidf", "bm25"])
def test_fast_path_equals_the_sklearn_transformers(weighting) -> None:
    from sklearn.preprocessing import normalize

    vectorizer = TextVectorizer(weighting=weighting, char_weight=0.7, word_weight=0.3).fit(DOCS)
    fast = vectorizer.transform(DOCS).toarray()
    parts = []
    for name, weight in (("char", 0.7), ("word", 0.3)):
        counts = getattr(vectorizer, f"{name}_").transform(vectorizer.preprocess(DOCS))
        parts.append(normalize(vectorizer.weighting_[name].transform(counts)).toarray() * np.sqrt(weight))
    np.testing.assert_allclose(fast, np.hstack(parts), atol=1e-6)
    assert vectorizer.block_slices_["word"].start == len(vectorizer.char_.vocabulary_)


def test_unknown_weighting_is_named() -> None:
    with pytest.raises(ValueError, match="weighting"):
        TextVectorizer(weighting="bm42").fit(DOCS)


def test_okapi_scores_are_bm25_over_the_needs_largest_score() -> None:
    """``okapi``: need · target is, per block, sum idf·sat / ((k1 + 1) · sum idf), computed here by hand."""
    import math

    docs = ["个案管理", "个案管理与转介督导", "小组工作"]
    vectorizer = TextVectorizer(char_weight=1.0, word_weight=0.0, weighting="okapi", k1=0.5, b=1.0).fit(docs)
    targets = vectorizer.transform(docs)
    need = vectorizer.transform_queries(vectorizer.preprocess(["个案转介"]))
    grams = [char_ngrams(d) for d in docs]
    avgdl = sum(len(g) for g in grams) / len(grams)

    def idf(term: str) -> float:
        df = sum(term in set(g) for g in grams)
        return math.log1p((len(docs) - df + 0.5) / (df + 0.5))

    query = set(char_ngrams("个案转介"))  # 个 案 转 介 个案 案转 转介: 案转 is in no document
    rarest = max(idf(t) for g in grams for t in g)
    total = sum(idf(t) for t in query if any(t in g for g in grams)) + rarest * sum(
        not any(t in g for g in grams) for t in query
    )
    for row, doc_grams in enumerate(grams):
        expected = sum(
            idf(t) * doc_grams.count(t) * 1.5 / (doc_grams.count(t) + 0.5 * len(doc_grams) / avgdl)
            for t in query
            if t in doc_grams
        ) / (1.5 * total)
        assert (need @ targets[row].T).toarray()[0, 0] == pytest.approx(expected, rel=1e-5)
    scores = (need @ targets.T).toarray()[0]
    assert scores.argmax() == 1 and (scores >= 0).all() and (scores < 1).all()


def test_okapi_terms_the_library_lacks_keep_a_need_weak() -> None:
    docs = ["个案管理与转介督导", "小组工作实务", "养老服务"]
    vectorizer = TextVectorizer(weighting="okapi", k1=0.3, b=1.0).fit(docs)
    targets = vectorizer.transform(docs)
    plain = (vectorizer.transform_queries(["个案管理"]) @ targets.T).toarray()[0, 0]
    padded = (vectorizer.transform_queries(["个案管理 无人机航拍区块链"]) @ targets.T).toarray()[0, 0]
    assert plain > 2 * padded > 0
    twin = pickle.loads(pickle.dumps(vectorizer))
    assert (twin.transform_queries(["个案管理"]) != vectorizer.transform_queries(["个案管理"])).nnz == 0
    assert clone(vectorizer).get_params() == vectorizer.get_params()


# ------------------------------------------------------------- counting with arrays, in chunks
LIBRARY = [
    "社工站開展個案管理與小組工作，服務征遷安置居民2023年共120戶",
    "专长：儿童保护、校园欺凌预防；督导 swot分析 与 NGO 合作",
    "居家養老服務中心，失能老人照護，長者飯堂 第3届",
    "社区治理 居民议事 协商 社区营造计划 网格化管理",
    "心理援助 危机干预 哀伤辅导 自杀预防 情绪疏导",
    "乡村振兴 电商助农 返乡创业 合作社 集体经济",
    "",
    "政策解读 项目申报 绩效评估 第三方评估 标准化建设",
] * 6
QUERIES = ["个案管理 小组工作", "校园欺凌 心理援助 新词汇未见过", "ngo swot", "", "养老服务 第3届 2023年"] * 8


def _equal(a, b) -> bool:
    return a.shape == b.shape and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)


@pytest.mark.parametrize("weighting", ["okapi", "tfidf", "bm25"])
def test_words_counted_with_arrays_equal_the_analyser(weighting: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The word block counted over distinct blocks with numpy gives the vocabulary and vectors of the
    analyser counted word by word, for a library (fit) and for a block of needs (transform)."""
    docs = TextVectorizer().preprocess(LIBRARY)
    queries = TextVectorizer().preprocess(QUERIES)
    fast = TextVectorizer(weighting=weighting)
    X = fast.fit_transform_preprocessed(docs)
    Q = fast.transform_queries(queries)
    monkeypatch.setattr(TextVectorizer, "_bulk_words", lambda self, block: False)
    slow = TextVectorizer(weighting=weighting)
    assert _equal(X, slow.fit_transform_preprocessed(docs))
    assert fast.word_.vocabulary_ == slow.word_.vocabulary_ and fast.char_.vocabulary_ == slow.char_.vocabulary_
    assert _equal(Q, slow.transform_queries(queries))
    # one need alone (the service's path, word by word and gram by gram) is the same row as in a block
    assert all(_equal(Q[i], fast.transform_queries(queries[i : i + 1])) for i in range(len(queries)))


@pytest.mark.parametrize("weighting", ["okapi", "tfidf"])
def test_fit_in_chunks_gives_the_same_vectors(weighting: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from matcher.matching import vectorize

    docs = TextVectorizer().preprocess(LIBRARY)
    queries = TextVectorizer().preprocess(QUERIES)
    whole = TextVectorizer(weighting=weighting)
    X, Q = whole.fit_transform_preprocessed(docs), whole.transform_queries(queries)
    monkeypatch.setattr(vectorize, "_FIT_CHUNK", 7)  # counted and weighed 7 texts at a time
    chunked = TextVectorizer(weighting=weighting)
    assert _equal(X, chunked.fit_transform_preprocessed(docs))
    assert chunked.get_feature_names_out().tolist() == whole.get_feature_names_out().tolist()
    assert _equal(Q, chunked.transform_queries(queries))
    assert chunked.segmenter_ == whole.segmenter_ and chunked.segmenter_["name"] in ("rjieba", "jieba")


def test_counting_in_processes_gives_the_same_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    from matcher.matching import vectorize

    docs = TextVectorizer().preprocess(LIBRARY * 3)
    serial = TextVectorizer()
    monkeypatch.setattr(vectorize, "_fit_cores", lambda: 1)
    X = serial.fit_transform_preprocessed(docs)
    monkeypatch.setattr(vectorize, "_fit_cores", lambda: 2)  # whatever this machine and its threads allow
    monkeypatch.setattr(vectorize, "_PARALLEL_FIT_DOCS", 10)
    seen = []
    original = TextVectorizer._count_in_processes

    def spy(self, *args):
        seen.append(original(self, *args))
        return seen[-1]

    monkeypatch.setattr(TextVectorizer, "_count_in_processes", spy)
    parallel = TextVectorizer()
    assert _equal(X, parallel.fit_transform_preprocessed(docs))
    assert set(seen[0]) == {"char", "word"} and len(seen[0]["char"]) == 2  # two processes counted a half each
    assert parallel.get_feature_names_out().tolist() == serial.get_feature_names_out().tolist()


@pytest.mark.parametrize("params", [{}, {"min_df": 2}, {"max_features": 40}, {"word_ngram_range": (1, 2), "min_df": 2}])
def test_each_block_is_fitted_as_by_scikit_learn(params: dict) -> None:
    """Every block's vocabulary and counts are those of ``CountVectorizer.fit_transform`` on its texts."""
    docs = TextVectorizer().preprocess(LIBRARY)
    vectorizer = TextVectorizer(**params)
    vectorizer.fit_preprocessed(docs)
    views = vectorizer._views(docs)
    for name in ("char", "word", "latin"):
        block = getattr(vectorizer, f"{name}_")
        if block is None:
            continue
        reference = clone(block)
        expected = reference.fit_transform(views[name])
        assert block.vocabulary_ == reference.vocabulary_
        assert block.vocabulary is None and block.fixed_vocabulary_ is False
        assert (block.transform(views[name]) != expected).nnz == 0


def test_counts_of_a_few_texts_equal_the_bulk_path() -> None:
    """The service's few-needs counting (numpy) gives the same CSR as the bulk path (a COO conversion)."""
    from matcher.matching.vectorize import _BULK_DOCS, _counts

    rng = np.random.default_rng(0)
    rows = rng.integers(0, 3, 200)
    columns = rng.integers(0, 50, 200)
    few = _counts(rows, columns, 3, 50)
    bulk = _counts(rows, columns, _BULK_DOCS + 8, 50)[:3]
    assert few.has_canonical_format
    assert np.array_equal(few.indptr, bulk.indptr) and np.array_equal(few.indices, bulk.indices)
    assert np.array_equal(few.data, bulk.data) and few.data.sum() == 200
    assert _counts(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 2, 5).shape == (2, 5)
