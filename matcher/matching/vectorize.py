"""Text vectorisers: scikit-learn transformers that turn profile and need texts into sparse vectors."""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import re
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import chain
from numbers import Integral

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_is_fitted

from matcher.text.normalise import normalise
from matcher.text.processes import fork_cores, limit_workers
from matcher.text.scripts import latin_terms, latin_tokens, script_views, stem, stop_word_set
from matcher.text.segment import prepare_segments, segment, segment_blocks, segmenter, text_blocks, tokenize

__all__ = ["BLOCKS", "WEIGHTINGS", "BM25Transformer", "TextVectorizer", "char_ngrams"]

WEIGHTINGS = ("tfidf", "bm25", "okapi")
#: The blocks of a vector, in column order.
BLOCKS = ("char", "word", "latin")

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


#: Code points are below this, so an n-gram of up to 3 characters packs into one int64 code.
_BASE = 0x110000
#: Documents counted at a time when fitting (bounds the temporary arrays).
_FIT_CHUNK = 20_000
#: From this many documents on, their new phrases are segmented in parallel first.
_PARALLEL_DOCS = 1000
#: From this many documents on, the word block counts their words with arrays (:func:`_word_codes`).
_BULK_DOCS = 32
#: Longest terms sorted by numpy rather than by Python (fixed-width strings of this many characters).
_NUMPY_SORT_CHARS = 16


def _fast_char_range(ngram_range: tuple[int, int]) -> bool:
    low, high = ngram_range
    return 1 <= low <= high <= 3


def _gram_code(term: str) -> int:
    code = 0
    for char in term:
        code = code * _BASE + ord(char)
    return code


def _gram_of(code: int) -> str:
    chars = []
    while code:
        code, char = divmod(code, _BASE)
        chars.append(chr(char))
    return "".join(reversed(chars))


def _gram_codes(terms: Sequence[str]) -> np.ndarray:
    """``[_gram_code(t) for t in terms]`` (terms of 1 to 3 characters) with arrays: int64 of shape (n_terms,)."""
    chars = np.asarray(terms, dtype="<U3").view(np.uint32).reshape(len(terms), 3).astype(np.int64)
    codes = np.zeros(len(terms), dtype=np.int64)
    for column in range(3):
        present = chars[:, column] != 0
        codes[present] = codes[present] * _BASE + chars[present, column]
    return codes


def _grams_of(codes: np.ndarray) -> np.ndarray:
    """``[_gram_of(c) for c in codes]`` with arrays: the n-grams as fixed-width strings (``<U3``)."""
    digits = np.stack([codes // (_BASE * _BASE), (codes // _BASE) % _BASE, codes % _BASE], axis=1)
    length = 1 + (codes >= _BASE).astype(np.int64) + (codes >= _BASE * _BASE)
    chars = np.zeros((len(codes), 3), dtype=np.uint32)
    for size in (1, 2, 3):  # left-aligned: the leading zero digits dropped
        rows = length == size
        chars[rows, :size] = digits[rows, 3 - size :]
    return chars.reshape(-1).view("<U3") if len(codes) else np.zeros(0, dtype="<U3")


def _word_codes(docs: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The words of ``segment(doc)`` for every doc, as ``(row, code)`` arrays in text order, and the words.

    Each distinct block of the texts (:func:`matcher.text.segment.text_blocks`) is segmented once
    (:func:`matcher.text.segment.segment_blocks`); the words of every block occurrence are then gathered with
    array operations. Returns ``rows`` and ``codes`` (int64, one entry per word) and ``words`` (object
    array: ``words[codes]`` are the words).
    """
    pieces: list[str] = []
    per_doc = np.empty(len(docs), dtype=np.int64)
    for row, doc in enumerate(docs):
        found = text_blocks(doc)
        pieces.extend(found)
        per_doc[row] = len(found)
    if not pieces:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=object)
    piece_codes, distinct = pd.factorize(np.asarray(pieces, dtype=object))
    segmented = segment_blocks(distinct.tolist())
    lengths = np.fromiter(map(len, segmented), dtype=np.int64, count=len(segmented))
    flat = np.empty(int(lengths.sum()), dtype=object)
    flat[:] = list(chain.from_iterable(segmented))
    word_codes, words = pd.factorize(flat)
    occurrence = lengths[piece_codes]  # words of each block occurrence
    ends = np.cumsum(occurrence)
    total = int(ends[-1])
    offsets = np.arange(total, dtype=np.int64) + np.repeat(np.cumsum(lengths)[piece_codes] - ends, occurrence)
    rows = np.repeat(np.repeat(np.arange(len(docs), dtype=np.int64), per_doc), occurrence)
    return rows, word_codes[offsets].astype(np.int64), np.asarray(words, dtype=object)


def _char_part(docs: list[str], ngram_range: tuple[int, int]) -> tuple[np.ndarray, sp.csr_matrix]:
    """The character n-grams of ``docs``: their distinct codes and the counts over them (CSR, one row a doc)."""
    rows, codes = _char_codes(docs, ngram_range)
    inverse, distinct = pd.factorize(codes)  # a hash table: cheaper than sorting every gram
    return distinct, _counts(rows, inverse, len(docs), len(distinct))


def _word_part(docs: list[str]) -> tuple[np.ndarray, sp.csr_matrix]:
    """The words of ``docs`` (:func:`_word_codes`): the distinct words and the counts over them."""
    rows, codes, words = _word_codes(docs)
    return words, _counts(rows, codes, len(docs), len(words))


#: From this many texts on, a fit counts the character and word blocks in parallel processes.
_PARALLEL_FIT_DOCS = 4000
#: What the forked counting processes read: ``(views, {block name: n-gram range or None})``.
_FIT_JOB: tuple[dict[str, list[str]], dict[str, tuple[int, int] | None]] | None = None


def _fit_cores() -> int:
    return fork_cores()


def _quiet_worker() -> None:
    """A counting process starts no processes of its own."""
    limit_workers(1)


def _count_chunk(bounds: tuple[int, int]) -> dict[str, tuple[np.ndarray, sp.csr_matrix]]:
    """In a forked process: the parts of the texts ``bounds`` of :data:`_FIT_JOB`, per block."""
    views, kinds = _FIT_JOB
    start, end = bounds
    return {
        name: _char_part(views[name][start:end], ngram) if name == "char" else _word_part(views[name][start:end])
        for name, ngram in kinds.items()
    }


def _char_codes(docs: list[str], ngram_range: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The character n-grams of ``docs`` that :func:`char_ngrams` takes, as ``(document, code)`` arrays.

    An n-gram is packed into one integer (its code points in base 0x110000): the same grams, counted
    with numpy instead of as Python strings. ``ngram_range`` within (1, 3).
    """
    low, high = ngram_range
    lengths = np.fromiter((len(d) + 1 for d in docs), dtype=np.int64, count=len(docs))
    text = "\x00".join(docs) + "\x00"  # a separator that is never part of a run
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
    present = np.flatnonzero(np.bincount(points))
    runs = np.zeros(int(present[-1]) + 1, dtype=bool)
    runs[present] = [_RUNS.fullmatch(chr(c)) is not None for c in present]
    in_run = runs[points]
    owner = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
    rows, codes = [], []
    for n in range(low, high + 1):
        size = len(points) - n + 1
        if size <= 0:
            continue
        valid = in_run[:size].copy()
        code = points[:size].copy()
        for offset in range(1, n):
            valid &= in_run[offset : offset + size]
            code *= _BASE
            code += points[offset : offset + size]
        at = np.flatnonzero(valid)
        rows.append(owner[at])
        codes.append(code[at])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(codes)


def _counts(rows: np.ndarray, columns: np.ndarray, n_rows: int, n_columns: int) -> sp.csr_matrix:
    """How often each ``(row, column)`` pair occurs: float64 CSR of shape (n_rows, n_columns), indices sorted."""
    if n_rows < _BULK_DOCS:  # the service's few needs: counted with numpy, half the time of a COO conversion
        key, counts = np.unique(np.asarray(rows, dtype=np.int64) * n_columns + columns, return_counts=True)
        owner = key // n_columns
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=n_rows), out=indptr[1:])
        return sp.csr_matrix((counts.astype(np.float64), key - owner * n_columns, indptr), shape=(n_rows, n_columns))
    ones = np.ones(len(rows), dtype=np.float64)
    matrix = sp.csr_matrix((ones, (rows, columns)), shape=(n_rows, n_columns))  # duplicates summed
    matrix.sum_duplicates()  # and indices sorted (a no-op when the conversion did both)
    return matrix


def _char_range(block: CountVectorizer) -> tuple[int, int] | None:
    """The n-gram range of a character block whose grams :func:`_char_codes` can count, else None."""
    analyzer = block.analyzer
    if isinstance(analyzer, partial) and analyzer.func is char_ngrams and not analyzer.args:
        ngram_range = tuple(analyzer.keywords.get("ngram_range", (1, 2)))
        if _fast_char_range(ngram_range):
            return ngram_range
    return None


def _alphabetical(terms: list[str]) -> tuple[list[int], np.ndarray]:
    """``order`` (the terms' positions, sorted by term) and ``rank`` (each term's place in that order).

    Distinct short terms are sorted by numpy (code point by code point, as Python compares strings).
    """
    if terms and max(map(len, terms)) <= _NUMPY_SORT_CHARS:
        order = np.argsort(np.asarray(terms, dtype=str), kind="stable").tolist()
    else:
        order = sorted(range(len(terms)), key=terms.__getitem__)
    rank = np.empty(len(terms), dtype=np.int64)
    rank[order] = np.arange(len(terms))
    return order, rank


def _limit(counts: sp.csr_matrix, min_df: float, max_df: float, max_features: int | None) -> np.ndarray:
    """Columns kept by ``CountVectorizer``'s pruning rules (document frequencies, then the most frequent)."""
    n_docs = counts.shape[0]
    high = max_df if isinstance(max_df, Integral) else max_df * n_docs
    low = min_df if isinstance(min_df, Integral) else min_df * n_docs
    if high < low:
        raise ValueError("max_df corresponds to < documents than min_df")
    dfs = np.bincount(counts.indices, minlength=counts.shape[1])
    mask = (dfs <= high) & (dfs >= low)
    if max_features is not None and mask.sum() > max_features:
        tfs = np.asarray(counts.sum(axis=0)).ravel()
        chosen = (-tfs[mask]).argsort()[:max_features]
        limited = np.zeros(len(dfs), dtype=bool)
        limited[np.where(mask)[0][chosen]] = True
        mask = limited
    kept = np.where(mask)[0]
    if len(kept) == 0:
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    return kept


def _fit_vocabulary(block: CountVectorizer, terms: list[str]) -> None:
    """Fit ``block`` with the vocabulary ``terms`` (column order) through scikit-learn's public ``fit``.

    ``fit`` on no documents with the vocabulary given checks every parameter and sets ``vocabulary_``;
    the parameter is then cleared again, so ``block`` holds what ``block.fit(docs)`` leaves: the learnt
    ``vocabulary_``, ``vocabulary=None`` and ``fixed_vocabulary_`` false.
    """
    block.set_params(vocabulary=terms).fit([])
    block.set_params(vocabulary=None)
    block.fixed_vocabulary_ = False


class BM25Transformer(TransformerMixin, BaseEstimator):
    """Okapi BM25 term weighting of a count matrix, as a scikit-learn transformer.

    A term ``t`` counted ``tf`` times in a document of ``dl`` counted terms weighs
    ``idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`` with
    ``idf(t) = ln(1 + (n - df(t) + 0.5) / (df(t) + 0.5))``: term frequency saturates (``k1``) and long
    documents are discounted (``b``). Rows are then L2-normalised when ``norm="l2"``, so that a dot
    product of two rows is a cosine in [0, 1] and comparable across needs.

    Parameters
    ----------
    k1 : float
        Term-frequency saturation (0 = binary).
    b : float
        Length normalisation, in [0, 1].
    norm : {"l2", None}
        Row normalisation of the output.

    Attributes
    ----------
    idf_ : array of shape (n_features,)
    avgdl_ : float
        Mean document length (counted terms) of the fitted documents.
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, norm: str | None = "l2") -> None:
        self.k1 = k1
        self.b = b
        self.norm = norm

    def fit(self, X: sp.spmatrix, y: object = None) -> BM25Transformer:
        """Learn idf and the mean document length from the count matrix ``X`` (n_documents, n_features)."""
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")
        X = sp.csr_matrix(X)
        n = X.shape[0]
        df = np.bincount(X.indices, minlength=X.shape[1])
        self.idf_ = np.log1p((n - df + 0.5) / (df + 0.5))
        lengths = np.asarray(X.sum(axis=1)).ravel()
        self.avgdl_ = float(lengths.mean()) if n and lengths.mean() > 0 else 1.0
        return self

    def saturate(self, tf: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The BM25 term-frequency part for counts ``tf`` in documents of ``lengths`` (same shape)."""
        return tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * lengths / self.avgdl_))

    def transform(self, X: sp.spmatrix) -> sp.csr_matrix:
        """Weight the count matrix ``X``: sparse array of shape (n_documents, n_features)."""
        check_is_fitted(self, "idf_")
        X = sp.csr_matrix(X, dtype=np.float64, copy=True)
        lengths = np.repeat(np.asarray(X.sum(axis=1)).ravel(), np.diff(X.indptr))
        X.data = self.saturate(X.data, lengths) * self.idf_[X.indices]
        return normalize(X) if self.norm == "l2" else X


class TextVectorizer(TransformerMixin, BaseEstimator):
    """Script-aware text vectors: character n-grams, jieba words and stemmed Latin-script words.

    With ``split_scripts`` a text is split into runs by script (:func:`matcher.text.scripts.script_views`).
    The CJK runs (Han, kana, Hangul, with the digits written against them: ``2023年``) give the
    ``char`` block (character n-grams within runs, :func:`char_ngrams`) and the ``word`` block (the
    tokenizer's words, punctuation and stop words dropped). Everything else gives the ``latin`` block
    (:func:`matcher.text.scripts.latin_tokens`): words lower-cased, English stop words dropped, Snowball-stemmed
    (``analysing`` and ``analysis`` are one term), numbers and tokens with a digit (``2020``, ``5g``)
    kept whole, and no character n-grams: ``SWOT分析`` is ``latin:swot`` plus the n-grams and words of
    ``分析``. Without ``split_scripts`` (the analysis of models saved before it existed) Latin text goes
    through the character and word blocks like Chinese.

    Each block is TF-IDF or BM25 weighted, L2-normalised and scaled by the square root of its share of
    the weights. With ``renormalise`` the shares are taken over the blocks a text actually has, so
    every non-empty row has unit norm: an English-only text is not capped by its empty Chinese blocks,
    and a Chinese-only text scores as it did before the Latin block existed. Either way the dot product
    of two rows is a cosine in [0, 1]: the weighted mean of the blocks' cosines when both rows have the
    same blocks.

    Parameters
    ----------
    char_weight, word_weight, latin_weight : float
        Relative weights of the character, word and Latin-script blocks (at least one positive); a
        block of weight 0 is not built. ``latin_weight`` counts only with ``split_scripts``.
    split_scripts : bool
        Split texts by script (above); False analyses every script with the character and word blocks.
    latin_stem : str or None
        Snowball language of the Latin block's stemmer (``"english"``: with the English spelling
        variants of :func:`matcher.text.scripts.stem` joined), or None for no stemming.
    latin_stop_words : "english", None or list of str
        Words the Latin block drops (``"english"``: ``matcher/text/dict/stop_words_en.txt``).
    renormalise : bool
        Take each row's block shares over the blocks it has (above); False scales every block by its
        share of all the weights (the vectors of models saved before it existed).
    char_ngram_range, word_ngram_range : tuple of (int, int)
        n-gram ranges of the two blocks.
    min_df : int or float
        Passed to both blocks.
    weighting : {"tfidf", "bm25", "okapi"}
        Term weighting of both blocks: TF-IDF (``TfidfTransformer``, smooth idf), BM25 vectors
        compared by cosine (:class:`BM25Transformer`, with ``k1`` and ``b``), or Okapi BM25 as a search
        engine scores it (``okapi``): a target's terms carry the saturated term frequency, a need's
        distinct terms their idf, and the dot product of a need and a target is, per block, the BM25
        score over the need's largest possible one, ``sum_t idf(t) sat(t) / ((k1 + 1) sum_t idf(t))``,
        in [0, 1). Needs and targets are then vectorised differently: :meth:`transform_queries` for
        needs, :meth:`transform` for targets.
    sublinear_tf : bool
        With TF-IDF, use ``1 + log(tf)`` term frequencies.
    k1, b : float
        BM25 term-frequency saturation and length normalisation.
    max_features : int or None
        Vocabulary cap of each block (most frequent first); bounds memory on huge libraries.
    preprocessor : callable
        Applied once to every raw text before both blocks (default :func:`matcher.text.normalise.normalise`).
    tokenizer : callable
        Word segmenter of the word block (default :func:`matcher.text.segment.segment`).

    Attributes
    ----------
    char_, word_, latin_ : CountVectorizer or None
        The fitted vocabularies of the blocks (None when a block's weight is 0 or the fitted texts
        gave it no term, e.g. no Latin text at all).
    weights_ : dict of str to float
        Each fitted block's share of the fitted blocks' weights (summing to 1).
    weighting_ : dict of str to TfidfTransformer or BM25Transformer
        The fitted term weighting of each block.
    n_features_out_ : int
        Number of output columns, block after block in the order of :data:`BLOCKS`.
    segmenter_ : dict or None
        The word segmenter that cut the fitted texts (:func:`matcher.text.segment.segmenter`), None when the
        word block is not fitted or uses another tokenizer.
    """

    def __init__(
        self,
        *,
        char_weight: float = 0.5,
        word_weight: float = 0.5,
        latin_weight: float = 1.0,
        split_scripts: bool = True,
        latin_stem: str | None = "english",
        latin_stop_words: str | list[str] | None = "english",
        renormalise: bool = True,
        char_ngram_range: tuple[int, int] = (1, 2),
        word_ngram_range: tuple[int, int] = (1, 1),
        min_df: int | float = 1,
        weighting: str = "tfidf",
        sublinear_tf: bool = True,
        k1: float = 1.2,
        b: float = 0.75,
        max_features: int | None = None,
        preprocessor: Callable[[str], str] = normalise,
        tokenizer: Callable[[str], list[str]] = segment,
    ) -> None:
        self.char_weight = char_weight
        self.word_weight = word_weight
        self.latin_weight = latin_weight
        self.split_scripts = split_scripts
        self.latin_stem = latin_stem
        self.latin_stop_words = latin_stop_words
        self.renormalise = renormalise
        self.char_ngram_range = char_ngram_range
        self.word_ngram_range = word_ngram_range
        self.min_df = min_df
        self.weighting = weighting
        self.sublinear_tf = sublinear_tf
        self.k1 = k1
        self.b = b
        self.max_features = max_features
        self.preprocessor = preprocessor
        self.tokenizer = tokenizer

    def __setstate__(self, state: dict) -> None:
        """Artefacts saved before a parameter existed load with that parameter's default."""
        defaults = {
            "weighting": "tfidf",
            "k1": 1.2,
            "b": 0.75,
            # the analysis and scaling of models saved before the Latin block: they score as they did
            "latin_weight": 0.0,
            "split_scripts": False,
            "latin_stem": "english",
            "latin_stop_words": "english",
            "renormalise": False,
            "latin_": None,
            "segmenter_": None,  # models saved before it was recorded: not known
        }
        super().__setstate__({**defaults, **state})
        if "weights_" in state and "weighting_" not in state:  # TfidfVectorizer blocks: they hold idf_
            self.weighting_ = {n: getattr(self, f"{n}_") for n in self.weights_}

    def _block_weights(self) -> dict[str, float]:
        """The weight of each block to build (``latin`` only with ``split_scripts``)."""
        weights = {"char": self.char_weight, "word": self.word_weight}
        if self.split_scripts:
            weights["latin"] = self.latin_weight
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            named = " and ".join(f"{n}_weight" for n in weights)
            raise ValueError(f"{named} must be non-negative and not all zero, got {list(weights.values())}")
        return weights

    def _blocks(self) -> list[tuple[str, float, CountVectorizer]]:
        weights = self._block_weights()
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        total = sum(weights.values())
        common = dict(lowercase=False, min_df=self.min_df, max_features=self.max_features, dtype=np.float64)
        blocks = []
        if self.char_weight > 0:
            char = CountVectorizer(analyzer=partial(char_ngrams, ngram_range=tuple(self.char_ngram_range)), **common)
            blocks.append(("char", self.char_weight / total, char))
        if self.word_weight > 0:
            word = CountVectorizer(
                tokenizer=self.tokenizer,
                token_pattern=None,
                ngram_range=tuple(self.word_ngram_range),
                **common,
            )
            blocks.append(("word", self.word_weight / total, word))
        if weights.get("latin", 0) > 0:
            stop_word_set(self.latin_stop_words)  # a bad value raises here, naming the parameter
            if self.latin_stem is not None:
                stem("check", self.latin_stem)
            analyzer = partial(latin_terms, language=self.latin_stem, stop_words=self._stop_words())
            blocks.append(("latin", self.latin_weight / total, CountVectorizer(analyzer=analyzer, **common)))
        return blocks

    def _stop_words(self) -> str | tuple[str, ...] | None:
        """``latin_stop_words`` as the Latin analyser holds it (a list becomes a sorted tuple)."""
        words = self.latin_stop_words
        return words if words is None or isinstance(words, str) else tuple(sorted({str(w).lower() for w in words}))

    def _views(self, docs: list[str]) -> dict[str, list[str]]:
        """What each block analyses of ``docs``: with ``split_scripts``, the character and word blocks
        see only the CJK runs (the rest blanked, so offsets hold); the Latin block finds its words itself."""
        if not getattr(self, "split_scripts", False):
            return dict.fromkeys(BLOCKS, docs)
        cjk = [script_views(doc)[0] for doc in docs]
        return {"char": cjk, "word": cjk, "latin": docs}

    def _weighting(self) -> TfidfTransformer | BM25Transformer:
        if self.weighting in ("bm25", "okapi"):
            return BM25Transformer(k1=self.k1, b=self.b, norm="l2" if self.weighting == "bm25" else None)
        return TfidfTransformer(sublinear_tf=self.sublinear_tf)

    def preprocess(self, raw_documents: Iterable[str]) -> list[str]:
        """Apply the preprocessor to each raw text."""
        if isinstance(raw_documents, str):
            raise ValueError("expected an iterable of texts, got a single string")
        return [self.preprocessor(doc) for doc in raw_documents]

    def fit(self, raw_documents: Iterable[str], y: object = None) -> TextVectorizer:
        """Learn both vocabularies and term weights from ``raw_documents``."""
        self.fit_preprocessed(self.preprocess(raw_documents))
        return self

    def fit_preprocessed(self, docs: list[str]) -> TextVectorizer:
        """Fit on texts already passed through the preprocessor."""
        self._fit(docs)
        return self

    def fit_transform_preprocessed(self, docs: list[str]) -> sp.csr_matrix:
        """Fit on texts already passed through the preprocessor and return their vectors.

        The same vectors as ``fit_preprocessed(docs).transform_preprocessed(docs)``, but every text is
        analysed (segmented, cut into n-grams) and counted once.
        """
        return self._weigh(self._fit(docs))

    def _fit(self, docs: list[str]) -> list[sp.csr_matrix]:
        """Fit the blocks; return each fitted block's count matrix of ``docs``.

        With ``split_scripts`` a block that the texts give no term (no Latin text, or no Chinese) is
        left out, unless every block is empty; without it every block must have terms, as before.
        """
        self.char_ = self.word_ = self.latin_ = None
        self.weights_ = {}
        self.weighting_ = {}
        for cached in ("_analyzers", "_codes"):
            self.__dict__.pop(cached, None)
        counts, errors = [], []
        views = self._views(docs)
        blocks = self._blocks()
        counted = self._count_in_processes(blocks, views)
        for name, weight, block in blocks:
            try:
                matrix = self._fit_block(name, block, views[name], counted.get(name))
            except ValueError as error:  # empty vocabulary: every text blank or all stop words
                if not self.split_scripts:
                    raise ValueError(f"cannot fit the {name} block: {error}") from error
                errors.append(f"the {name} block: {error}")
                continue
            setattr(self, f"{name}_", block)
            self.weights_[name] = weight
            self.weighting_[name] = self._weighting().fit(matrix)
            counts.append(matrix)
        if not counts:
            raise ValueError(f"cannot fit {'; '.join(errors)}")
        self.segmenter_ = segmenter() if self.word_ is not None and self.tokenizer is segment else None
        if self.split_scripts:  # shares of the fitted blocks
            total = sum(self.weights_.values())
            self.weights_ = {name: weight / total for name, weight in self.weights_.items()}
        self.n_features_out_ = sum(len(b.vocabulary_) for b in self._fitted_blocks())
        return counts

    def _fit_block(
        self, name: str, block: CountVectorizer, docs: list[str], parts: list[tuple[np.ndarray, sp.csr_matrix]] | None = None
    ) -> sp.csr_matrix:
        """Fit ``block`` on ``docs`` as ``block.fit(docs)`` does; return the count matrix of ``docs``.

        The terms are counted with arrays (the character n-grams, :func:`_char_part`; the segmenter's
        words, :func:`_word_part`) or by the block's own analyser; the vocabulary is every term, sorted,
        pruned by ``min_df`` and ``max_features`` as ``CountVectorizer`` prunes (:func:`_limit`), and
        handed to ``block`` through scikit-learn's public ``fit`` (:func:`_fit_vocabulary`), which also
        checks the parameters first. ``parts``: the character or word block's counts of consecutive
        chunks of ``docs``, when :meth:`_count_in_processes` counted them.
        """
        _fit_vocabulary(block, [""])  # the parameters checked before any counting, as ``fit`` checks them
        fast = _char_range(block) if name == "char" else None
        if fast is not None:
            if parts is None:  # (distinct codes, counts over them) per chunk of documents
                parts = [_char_part(docs[start : start + _FIT_CHUNK], fast) for start in range(0, len(docs), _FIT_CHUNK)]
            codes = np.unique(np.concatenate([p[0] for p in parts])) if parts else np.zeros(0, dtype=np.int64)
            terms = _grams_of(codes).tolist()
            order, rank = _alphabetical(terms)
            chunks = []
            for distinct, matrix in parts:
                indices = rank[np.searchsorted(codes, distinct)][matrix.indices].astype(np.int32)
                matrix = sp.csr_matrix((matrix.data, indices, matrix.indptr), shape=(matrix.shape[0], len(terms)))
                matrix.sort_indices()
                chunks.append(matrix)
            counts = sp.vstack(chunks, format="csr") if chunks else sp.csr_matrix((0, 0))
        elif name == "word" and self._bulk_words(block):
            if parts is None:  # (distinct words, counts over them) per chunk of documents
                parts = [_word_part(docs[start : start + _FIT_CHUNK]) for start in range(0, len(docs), _FIT_CHUNK)]
            every = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=object)
            ids, distinct = pd.factorize(every)
            terms = distinct.tolist()
            order, rank = _alphabetical(terms)
            chunks, first = [], 0
            for words, matrix in parts:
                indices = rank[ids[first : first + len(words)]][matrix.indices].astype(np.int32)
                first += len(words)
                matrix = sp.csr_matrix((matrix.data, indices, matrix.indptr), shape=(matrix.shape[0], len(terms)))
                matrix.sort_indices()
                chunks.append(matrix)
            counts = sp.vstack(chunks, format="csr") if chunks else sp.csr_matrix((0, 0))
        else:  # the block's own analyser (public), term by term
            self._prepare_words(name, docs)
            analyze = block.build_analyzer()
            ids: dict[str, int] = {}
            rows, columns = [], []
            for row, doc in enumerate(docs):
                terms_of_doc = analyze(doc)
                columns.extend(ids.setdefault(term, len(ids)) for term in terms_of_doc)
                rows.extend([row] * len(terms_of_doc))
            terms = list(ids)
            order, rank = _alphabetical(terms)
            counts = _counts(
                np.asarray(rows, dtype=np.int64), rank[np.asarray(columns, dtype=np.int64)], len(docs), len(terms)
            )
        if not terms:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        kept = _limit(counts, block.min_df, block.max_df, block.max_features)
        if len(kept) < len(terms):
            counts = counts[:, kept]
        _fit_vocabulary(block, [terms[order[column]] for column in kept.tolist()])
        return sp.csr_matrix(counts)

    def _count_in_processes(
        self, blocks: list[tuple[str, float, CountVectorizer]], views: dict[str, list[str]]
    ) -> dict[str, list[tuple[np.ndarray, sp.csr_matrix]]]:
        """The character and word blocks' counts of many texts, chunk by chunk, in forked processes.

        One chunk per process (at most :data:`_FIT_CHUNK` texts), one process per core (bounded by
        :func:`matcher.text.processes.parallelism`); ``{}`` for few texts, one core, or no processes to be had,
        and the blocks are then counted in this process. The counts are the same either way.
        """
        kinds = {}
        for name, _, block in blocks:
            if name == "char" and _char_range(block) is not None:
                kinds[name] = _char_range(block)
            elif name == "word" and self._bulk_words(block):
                kinds[name] = None
        n_docs = len(views["char"])
        cores = _fit_cores()
        if not kinds or cores < 2 or n_docs < _PARALLEL_FIT_DOCS:
            return {}
        step = min(_FIT_CHUNK, -(-n_docs // cores))
        global _FIT_JOB
        _FIT_JOB = (views, kinds)
        segmenter()  # loaded once, before the fork
        try:
            with multiprocessing.get_context("fork").Pool(min(cores, -(-n_docs // step)), _quiet_worker) as pool:
                results = pool.map(_count_chunk, [(start, start + step) for start in range(0, n_docs, step)], chunksize=1)
        except (OSError, pickle.PicklingError):  # no processes to be had: counted here
            logging.getLogger(__name__).debug("counting in processes failed", exc_info=True)
            return {}
        finally:
            _FIT_JOB = None
        return {name: [result[name] for result in results] for name in kinds}

    def _bulk_words(self, block: CountVectorizer) -> bool:
        """Whether the word block's terms are :func:`matcher.text.segment.segment`'s words (so :func:`_word_codes` counts them)."""
        return self.tokenizer is segment and tuple(block.ngram_range) == (1, 1)

    def _prepare_words(self, name: str, docs: list[str]) -> None:
        """Before the word block analyses many ``docs``: their new phrases segmented in parallel processes."""
        if name == "word" and self.tokenizer is segment and len(docs) >= _PARALLEL_DOCS:
            prepare_segments(docs)

    def _fitted_names(self) -> list[str]:
        return [name for name in BLOCKS if getattr(self, f"{name}_", None) is not None]

    def _fitted_blocks(self) -> list[CountVectorizer]:
        return [getattr(self, f"{name}_") for name in self._fitted_names()]

    @property
    def block_slices_(self) -> dict[str, slice]:
        """The output columns of each fitted block: ``{"char": slice(0, n_char), "word": ...}``."""
        check_is_fitted(self, "weights_")
        slices, start = {}, 0
        for name in self._fitted_names():
            size = len(getattr(self, f"{name}_").vocabulary_)
            slices[name] = slice(start, start + size)
            start += size
        return slices

    def transform(self, raw_documents: Iterable[str]) -> sp.csr_matrix:
        """Vectorise texts: sparse array of shape (n_documents, n_features_out_), rows of unit norm."""
        check_is_fitted(self, "weights_")
        return self.transform_preprocessed(self.preprocess(raw_documents))

    def transform_preprocessed(self, docs: list[str]) -> sp.csr_matrix:
        """Vectorise texts already passed through the preprocessor.

        Equivalent to each block's counts weighted by its fitted transformer (TF-IDF or BM25),
        L2-normalised and scaled by the block weight, but computed in one pass from the fitted
        vocabularies and weights: one need is the service's hot path, where the estimators' input
        validation would cost more than the maths.
        """
        check_is_fitted(self, "weights_")
        views = self._views(docs)
        return self._weigh([self._block_counts(name, views[name]) for name in self._fitted_names()])

    def transform_queries(self, docs: list[str]) -> sp.csr_matrix:
        """Vectorise needs (texts already passed through the preprocessor) to score against targets.

        The same as :meth:`transform_preprocessed` except with ``weighting="okapi"``, where a need's
        distinct terms carry their idf, normalised so that the dot product with a target vector is the
        block-weighted BM25 score over the need's largest possible one, in [0, 1).
        """
        check_is_fitted(self, "weights_")
        if self.weighting != "okapi":
            return self.transform_preprocessed(docs)
        views = self._views(docs)
        counted = [self._block_counts(name, views[name], unknown=True) for name in self._fitted_names()]
        unknown = np.concatenate([c[1] for c in counted])  # (block, row): distinct terms not in the vocabulary
        return self._weigh([c[0] for c in counted], queries=True, unknown=unknown)

    def _block_counts(
        self, name: str, docs: list[str], *, unknown: bool = False
    ) -> sp.csr_matrix | tuple[sp.csr_matrix, np.ndarray]:
        """Counts of the fitted block's terms in ``docs``: CSR of shape (n_docs, block vocabulary).

        With ``unknown``, also the number of distinct terms of each doc that are not in the vocabulary:
        ``(counts, array of shape (n_docs,))``.
        """
        block = getattr(self, f"{name}_")
        size = len(block.vocabulary_)
        # a few texts (the service's one need): the analyser and the vocabulary, dearer per text but
        # without the arrays' fixed cost
        fast = _char_range(block) if name == "char" and len(docs) >= _BULK_DOCS else None
        if fast is not None:
            rows, codes = _char_codes(docs, fast)
            known, columns = self._code_columns()
            at = np.minimum(np.searchsorted(known, codes), max(len(known) - 1, 0))
            hit = known[at] == codes if len(known) else np.zeros(len(codes), dtype=bool)
            counts = _counts(rows[hit], columns[at[hit]], len(docs), size)
            if not unknown:
                return counts
            missed = np.unique(np.c_[rows[~hit], codes[~hit]], axis=0)[:, 0] if (~hit).any() else np.zeros(0, int)
            return counts, np.bincount(missed, minlength=len(docs)).astype(np.float64)
        if name == "word" and len(docs) >= _BULK_DOCS and self._bulk_words(block):
            rows, codes, words = _word_codes(docs)
            vocabulary = block.vocabulary_
            known = np.fromiter((vocabulary.get(w, -1) for w in words), dtype=np.int64, count=len(words))
            columns = known[codes]
            hit = columns >= 0
            counts = _counts(rows[hit], columns[hit], len(docs), size)
            if not unknown:
                return counts
            missed = np.unique(rows[~hit] * max(len(words), 1) + codes[~hit]) // max(len(words), 1)
            return counts, np.bincount(missed, minlength=len(docs)).astype(np.float64)
        self._prepare_words(name, docs)
        analyze, vocabulary = self._analyzer(name), block.vocabulary_
        rows, columns = [], []
        missing = np.zeros(len(docs))
        for row, doc in enumerate(docs):
            unseen = set()
            for term in analyze(doc):
                column = vocabulary.get(term)
                if column is not None:
                    rows.append(row)
                    columns.append(column)
                elif unknown:
                    unseen.add(term)
            missing[row] = len(unseen)
        counts = _counts(np.asarray(rows, dtype=np.int64), np.asarray(columns, dtype=np.int64), len(docs), size)
        return (counts, missing) if unknown else counts

    def prepare_transform(self) -> TextVectorizer:
        """Build now what :meth:`transform` builds on first use (the character vocabulary's n-gram codes).

        For processes forked after this call to share it rather than each build its own.
        """
        check_is_fitted(self, "weights_")
        if getattr(self, "char_", None) is not None and _char_range(self.char_) is not None:
            self._code_columns()
        return self

    def _code_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """The character vocabulary as sorted n-gram codes and their columns (built on first use)."""
        if "_codes" not in self.__dict__:
            vocabulary = self.char_.vocabulary_
            codes = _gram_codes(list(vocabulary))
            columns = np.fromiter(vocabulary.values(), dtype=np.int64, count=len(vocabulary))
            order = np.argsort(codes)
            self.__dict__["_codes"] = (codes[order], columns[order])
        return self.__dict__["_codes"]

    def _weigh(
        self, counts: list[sp.csr_matrix], *, queries: bool = False, unknown: np.ndarray | None = None
    ) -> sp.csr_matrix:
        """Weighted, normalised vectors from each fitted block's count matrix (same rows).

        With ``weighting="okapi"``, targets (``queries=False``) get the saturated term frequencies and
        needs (``queries=True``) the idf of their distinct terms over ``(k1 + 1)`` times their sum, times
        the block's weight (a term not in the vocabulary, counted per (block, row) in ``unknown``, adds
        the largest idf of its block to that sum: what the library lacks still counts as unmatched);
        otherwise both get each block at unit norm times the square root of its weight. With
        ``renormalise``, a need's block shares are taken over the blocks it has.

        Every step is within a row, so many rows are weighed :data:`_FIT_CHUNK` at a time: the same
        vectors, with float64 temporaries of one chunk rather than of the whole library.
        """
        n_docs = counts[0].shape[0]
        if n_docs > _FIT_CHUNK:
            parts = []
            for start in range(0, n_docs, _FIT_CHUNK):
                rows = slice(start, min(start + _FIT_CHUNK, n_docs))
                part = None if unknown is None else unknown.reshape(len(counts), n_docs)[:, rows].ravel()
                parts.append(self._weigh([c[rows] for c in counts], queries=queries, unknown=part))
            return sp.vstack(parts, format="csr")
        names = self._fitted_names()
        joined = sp.hstack(counts, format="csr") if len(counts) > 1 else sp.csr_matrix(counts[0])
        joined.sort_indices()
        offsets = np.cumsum([0] + [m.shape[1] for m in counts])
        columns = joined.indices.astype(np.int32)
        data = joined.data.astype(np.float64)
        rows = np.repeat(np.arange(n_docs, dtype=np.int64), np.diff(joined.indptr))
        segment = rows + np.searchsorted(offsets[1:], columns, side="right") * n_docs  # (block, row)
        weightings = [self.weighting_[n] for n in names]
        idf = np.concatenate([w.idf_ for w in weightings])
        n_segments = n_docs * len(names)
        if self.weighting == "okapi":
            return self._okapi(joined, data, columns, segment, idf, names, queries, unknown)
        if isinstance(weightings[0], BM25Transformer):
            lengths = np.bincount(segment, weights=data, minlength=n_segments)
            relative = lengths / np.repeat([w.avgdl_ for w in weightings], n_docs)
            k1, b = weightings[0].k1, weightings[0].b
            data = data * (k1 + 1) / (data + k1 * (1 - b + b * relative[segment]))
        elif getattr(weightings[0], "sublinear_tf", False):
            np.log(data, out=data)
            data += 1.0
        data *= idf[columns] if len(columns) else data
        # each block of each row to unit norm, times the square root of the block's weight
        norms = np.sqrt(np.bincount(segment, weights=data * data, minlength=n_segments))
        if getattr(self, "renormalise", False):  # shares over the blocks each row has
            present = (norms > 0).reshape(len(names), n_docs)
            weights = np.asarray([self.weights_[n] for n in names])[:, None]
            totals = (present * weights).sum(axis=0)
            shares = weights / np.where(totals > 0, totals, 1.0)
            scale = np.sqrt(shares).ravel() / np.where(norms > 0, norms, 1.0)
        else:
            scale = np.repeat([np.sqrt(self.weights_[n]) for n in names], n_docs) / np.where(norms > 0, norms, 1.0)
        data *= scale[segment]
        shape = (n_docs, int(offsets[-1]))
        indptr = joined.indptr.astype(np.int64)
        return sp.csr_matrix((data.astype(np.float32), columns, indptr), shape=shape)

    def _okapi(
        self,
        joined: sp.csr_matrix,
        data: np.ndarray,
        columns: np.ndarray,
        segment: np.ndarray,
        idf: np.ndarray,
        names: list[str],
        queries: bool,
        unknown: np.ndarray | None,
    ) -> sp.csr_matrix:
        """The ``okapi`` vectors of :meth:`_weigh`: saturated tf for targets, normalised idf for needs."""
        n_docs = joined.shape[0]
        n_segments = n_docs * len(names)
        weightings = [self.weighting_[n] for n in names]
        k1, b = weightings[0].k1, weightings[0].b
        if queries:
            data = idf[columns].copy() if len(columns) else data
            totals = np.bincount(segment, weights=data, minlength=n_segments)
            if unknown is not None:
                rarest = np.repeat([w.idf_.max(initial=0.0) for w in weightings], n_docs)
                totals = totals + unknown * rarest
            weights = np.asarray([self.weights_[n] for n in names])[:, None]
            if getattr(self, "renormalise", False):  # shares over the blocks the need has
                present = (totals > 0).reshape(len(names), n_docs)
                sums = (present * weights).sum(axis=0)
                share = (weights / np.where(sums > 0, sums, 1.0)).ravel()
            else:
                share = np.repeat(weights.ravel(), n_docs)
            totals *= k1 + 1
            data *= (share / np.where(totals > 0, totals, 1.0))[segment]
        else:
            lengths = np.bincount(segment, weights=data, minlength=n_segments)
            relative = lengths / np.repeat([w.avgdl_ for w in weightings], n_docs)
            data = data * (k1 + 1) / (data + k1 * (1 - b + b * relative[segment]))
        indptr = joined.indptr.astype(np.int64)
        return sp.csr_matrix((data.astype(np.float32), columns, indptr), shape=joined.shape)

    def _analyzer(self, name: str) -> Callable[[str], list[str]]:
        analyzers = self.__dict__.setdefault("_analyzers", {})
        if name not in analyzers:
            analyzers[name] = getattr(self, f"{name}_").build_analyzer()
        return analyzers[name]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_analyzers", None)  # rebuilt on first use
        state.pop("_codes", None)
        return state

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Feature names, prefixed with their block: ``char:个案``, ``word:个案管理``."""
        check_is_fitted(self, "weights_")
        names = []
        for name in self._fitted_names():
            names.extend(f"{name}:{term}" for term in getattr(self, f"{name}_").get_feature_names_out())
        return np.asarray(names, dtype=object)

    def surface_terms(self, doc: str) -> dict[int, list[tuple[str, int, int]]]:
        """Where each feature of ``doc`` (a preprocessed text) is written in it, as the tokeniser found it.

        Returns ``{feature column: [(surface, start, end), ...]}`` in text order, with
        ``doc[start:end] == surface``: a Latin term's surface is the word as written (``analysing``
        for the stem ``analys``), a word's the word, an n-gram's the n-gram; word n-grams span their
        words. Only the features the fitted vocabularies know are listed.
        """
        check_is_fitted(self, "weights_")
        found: dict[int, list[tuple[str, int, int]]] = {}
        for name, columns in self.block_slices_.items():
            vocabulary = getattr(self, f"{name}_").vocabulary_
            for term, start, end in self._term_spans(name, self._views([doc])[name][0]):
                column = vocabulary.get(term)
                if column is not None:
                    found.setdefault(columns.start + column, []).append((doc[start:end], start, end))
        return found

    def _term_spans(self, name: str, view: str) -> list[tuple[str, int, int]]:
        """The terms block ``name`` takes from ``view``, each with its ``(start, end)`` in the text."""
        block = getattr(self, f"{name}_")
        if name == "latin":
            keywords = block.analyzer.keywords
            return latin_tokens(view, keywords["language"], keywords["stop_words"])
        if name == "char":
            low, high = block.analyzer.keywords.get("ngram_range", (1, 2))
            return [
                (run.group()[i : i + n], run.start() + i, run.start() + i + n)
                for run in _RUNS.finditer(view)
                for n in range(low, min(high, len(run.group())) + 1)
                for i in range(len(run.group()) - n + 1)
            ]
        if self.tokenizer is segment:
            words = tokenize(view)  # the words of segment(), with their offsets
        else:  # a custom tokenizer gives no offsets: each word is found after the previous one
            words, at = [], 0
            for word in self.tokenizer(view):
                start = view.find(word, at)
                if start >= 0:
                    words.append((word, start, start + len(word)))
                    at = start + len(word)
        low, high = block.ngram_range
        return [
            (" ".join(w for w, _, _ in words[i : i + n]), words[i][1], words[i + n - 1][2])
            for n in range(low, high + 1)
            for i in range(len(words) - n + 1)
        ]
