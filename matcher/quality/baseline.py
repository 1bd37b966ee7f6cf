"""The plain baseline every method is measured against, in the same run: character TF-IDF, nothing else."""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["plain_char_tfidf"]


def plain_char_tfidf(documents: Sequence[str]) -> TfidfVectorizer:
    """The baseline: scikit-learn ``TfidfVectorizer(analyzer="char", ngram_range=(1, 2))``, nothing else."""
    return TfidfVectorizer(analyzer="char", ngram_range=(1, 2)).fit(documents)
