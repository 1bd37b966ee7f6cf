"""The plain baselines every method is measured against, in the same run: character TF-IDF and
textbook BM25 over character n-grams, nothing else."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from matcher.matching.vectorize import BM25Transformer

__all__ = ["plain_char_bm25", "plain_char_tfidf"]


def plain_char_tfidf(documents: Sequence[str]) -> TfidfVectorizer:
    """The baseline: scikit-learn ``TfidfVectorizer(analyzer="char", ngram_range=(1, 2))``, nothing else."""
    return TfidfVectorizer(analyzer="char", ngram_range=(1, 2)).fit(documents)


def plain_char_bm25(
    documents: Sequence[str], *, k1: float = 1.2, b: float = 0.75
) -> Callable[[Sequence[str]], np.ndarray]:
    """Textbook Okapi BM25 over character 1- and 2-grams, with its usual ``k1`` 1.2 and ``b`` 0.75 and
    Lucene's idf (:class:`~matcher.matching.vectorize.BM25Transformer`): a query's score for a document
    is the sum, over the query's distinct grams, of idf × the gram's saturated frequency in the document.

    Returns the scorer: queries -> array of shape (n_queries, n_documents).
    """
    counts = CountVectorizer(analyzer="char", ngram_range=(1, 2)).fit(documents)
    matrix = counts.transform(documents)
    postings = BM25Transformer(k1=k1, b=b, norm=None).fit(matrix).transform(matrix).T.tocsr()

    def score(queries: Sequence[str]) -> np.ndarray:
        found = counts.transform(queries)
        found.data[:] = 1.0  # each distinct gram once
        return (found @ postings).toarray()

    return score
