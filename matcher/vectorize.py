"""Text vectorisers: scikit-learn transformers that turn profile and need texts into sparse vectors."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import partial

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from matcher.text import normalise, segment

__all__ = ["TextVectorizer", "char_ngrams"]

_RUNS = re.compile(r"[^\W_]+")


def char_ngrams(doc: str, ngram_range: tuple[int, int] = (1, 2)) -> list[str]:
    """Character n-grams of ``doc`` taken within runs of letters and digits.

    Spaces and punctuation separate runs and never form part of an n-gram, so they carry no weight.
    """
    low, high = ngram_range
    grams: list[str] = []
    for run in _RUNS.findall(doc):
        length = len(run)
        for n in range(low, min(high, length) + 1):
            grams.extend(run[i : i + n] for i in range(length - n + 1))
    return grams


class TextVectorizer(TransformerMixin, BaseEstimator):
    """Character n-gram TF-IDF and jieba word TF-IDF, weighted and joined.

    Character n-grams are taken within runs of letters and digits (:func:`char_ngrams`); words come
    from the tokenizer, with punctuation and stop words dropped.

    Each block is L2-normalised and scaled by the square root of its share of the weights, so the
    dot product of two output rows is the weighted mean of the two blocks' cosine similarities
    and lies in [0, 1].

    Parameters
    ----------
    char_weight, word_weight : float
        Relative weights of the character and word blocks (at least one positive).
    char_ngram_range, word_ngram_range : tuple of (int, int)
        n-gram ranges of the two blocks.
    min_df : int or float
        Passed to both TF-IDF blocks.
    sublinear_tf : bool
        Use ``1 + log(tf)`` term frequencies.
    max_features : int or None
        Vocabulary cap of each block (most frequent first); bounds memory on huge libraries.
    preprocessor : callable
        Applied once to every raw text before both blocks (default :func:`matcher.text.normalise`).
    tokenizer : callable
        Word segmenter of the word block (default :func:`matcher.text.segment`).

    Attributes
    ----------
    char_ : TfidfVectorizer or None
        The fitted character block (None when ``char_weight`` is 0).
    word_ : TfidfVectorizer or None
        The fitted word block (None when ``word_weight`` is 0).
    n_features_out_ : int
        Number of output columns.
    """

    def __init__(
        self,
        *,
        char_weight: float = 0.5,
        word_weight: float = 0.5,
        char_ngram_range: tuple[int, int] = (1, 2),
        word_ngram_range: tuple[int, int] = (1, 1),
        min_df: int | float = 1,
        sublinear_tf: bool = True,
        max_features: int | None = None,
        preprocessor: Callable[[str], str] = normalise,
        tokenizer: Callable[[str], list[str]] = segment,
    ) -> None:
        self.char_weight = char_weight
        self.word_weight = word_weight
        self.char_ngram_range = char_ngram_range
        self.word_ngram_range = word_ngram_range
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.max_features = max_features
        self.preprocessor = preprocessor
        self.tokenizer = tokenizer

    def _blocks(self) -> list[tuple[str, float, TfidfVectorizer]]:
        if self.char_weight < 0 or self.word_weight < 0 or self.char_weight + self.word_weight <= 0:
            raise ValueError(
                "char_weight and word_weight must be non-negative and not both zero, "
                f"got {self.char_weight} and {self.word_weight}"
            )
        total = self.char_weight + self.word_weight
        common = dict(
            lowercase=False,
            min_df=self.min_df,
            sublinear_tf=self.sublinear_tf,
            max_features=self.max_features,
            dtype=np.float32,
        )
        blocks = []
        if self.char_weight > 0:
            char = TfidfVectorizer(analyzer=partial(char_ngrams, ngram_range=tuple(self.char_ngram_range)), **common)
            blocks.append(("char", self.char_weight / total, char))
        if self.word_weight > 0:
            word = TfidfVectorizer(
                tokenizer=self.tokenizer,
                token_pattern=None,
                ngram_range=tuple(self.word_ngram_range),
                **common,
            )
            blocks.append(("word", self.word_weight / total, word))
        return blocks

    def preprocess(self, raw_documents: Iterable[str]) -> list[str]:
        """Apply the preprocessor to each raw text."""
        if isinstance(raw_documents, str):
            raise ValueError("expected an iterable of texts, got a single string")
        return [self.preprocessor(doc) for doc in raw_documents]

    def fit(self, raw_documents: Iterable[str], y: object = None) -> TextVectorizer:
        """Learn both vocabularies and idf weights from ``raw_documents``."""
        self.fit_preprocessed(self.preprocess(raw_documents))
        return self

    def fit_preprocessed(self, docs: list[str]) -> TextVectorizer:
        """Fit on texts already passed through the preprocessor."""
        self.char_ = self.word_ = None
        self.weights_ = {}
        self.__dict__.pop("_analyzers", None)
        for name, weight, block in self._blocks():
            try:
                block.fit(docs)
            except ValueError as error:  # empty vocabulary: every text blank or all stop words
                raise ValueError(f"cannot fit the {name} block: {error}") from error
            setattr(self, f"{name}_", block)
            self.weights_[name] = weight
        self.n_features_out_ = sum(len(b.vocabulary_) for b in self._fitted_blocks())
        return self

    def _fitted_blocks(self) -> list[TfidfVectorizer]:
        return [b for b in (self.char_, self.word_) if b is not None]

    def transform(self, raw_documents: Iterable[str]) -> sp.csr_matrix:
        """Vectorise texts: sparse array of shape (n_documents, n_features_out_), rows of unit norm."""
        check_is_fitted(self, "weights_")
        return self.transform_preprocessed(self.preprocess(raw_documents))

    def transform_preprocessed(self, docs: list[str]) -> sp.csr_matrix:
        """Vectorise texts already passed through the preprocessor.

        Equivalent to each block's ``TfidfVectorizer.transform``, L2-normalised and scaled by the
        block weight, but computed in one pass from the fitted vocabularies and idf weights: one need
        is the service's hot path, where the estimators' input validation would cost more than the maths.
        """
        check_is_fitted(self, "weights_")
        names = [n for n in ("char", "word") if getattr(self, f"{n}_") is not None]
        blocks = [(getattr(self, f"{n}_"), self._analyzer(n), self.weights_[n]) for n in names]
        offsets = np.cumsum([0] + [len(b[0].vocabulary_) for b in blocks])
        indptr, indices, counts, segments = [0], [], [], []
        for doc in docs:
            for number, (block, analyze, _) in enumerate(blocks):
                vocabulary, offset, row = block.vocabulary_, offsets[number], {}
                for term in analyze(doc):
                    column = vocabulary.get(term)
                    if column is not None:
                        row[column + offset] = row.get(column + offset, 0) + 1
                indices.extend(row)
                counts.extend(row.values())
                segments.extend([len(indptr) - 1 + number * len(docs)] * len(row))
            indptr.append(len(indices))
        columns = np.asarray(indices, dtype=np.int32)
        data = np.asarray(counts, dtype=np.float64)
        if self.sublinear_tf:
            np.log(data, out=data)
            data += 1.0
        data *= np.concatenate([b[0].idf_ for b in blocks])[columns] if len(columns) else data
        # each block of each row to unit norm, times the square root of the block's weight
        segment = np.asarray(segments, dtype=np.int64)
        norms = np.sqrt(np.bincount(segment, weights=data * data, minlength=len(docs) * len(blocks)))
        scale = np.repeat([np.sqrt(b[2]) for b in blocks], len(docs)) / np.where(norms > 0, norms, 1.0)
        data *= scale[segment]
        shape = (len(docs), int(offsets[-1]))
        matrix = sp.csr_matrix((data.astype(np.float32), columns, np.asarray(indptr, dtype=np.int64)), shape=shape)
        matrix.sort_indices()
        return matrix

    def _analyzer(self, name: str) -> Callable[[str], list[str]]:
        analyzers = self.__dict__.setdefault("_analyzers", {})
        if name not in analyzers:
            analyzers[name] = getattr(self, f"{name}_").build_analyzer()
        return analyzers[name]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_analyzers", None)  # rebuilt on first use
        return state

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Feature names, prefixed with their block: ``char:个案``, ``word:个案管理``."""
        check_is_fitted(self, "weights_")
        names = []
        for name in ("char", "word"):
            block = getattr(self, f"{name}_")
            if block is not None:
                names.extend(f"{name}:{term}" for term in block.get_feature_names_out())
        return np.asarray(names, dtype=object)
