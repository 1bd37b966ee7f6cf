"""Tags for free text: a multi-label classifier over the taxonomy.

A coordinator types a need in their own words and attaches no tags; the tag features of the matcher
then have nothing to work with. :class:`TagClassifier` infers them: one logistic regression per
taxonomy label over the need's character and word vectors (:class:`~matcher.matching.vectorize.TextVectorizer`),
fitted on the stored needs' tags and on the taxonomy's own labels, descriptions and keywords. A label
is inferred when its probability reaches ``threshold``; with ``threshold=None`` the threshold is
chosen at fit time by cross-validation (the best micro-F1 of out-of-fold probabilities over the
stored needs).

:func:`taxonomy_documents` turns the taxonomy into training rows and :func:`out_of_fold_tags` gives
each need the tags a classifier that never saw it would infer: what the re-ranker trains on, so it
learns from tags as they are in service, never from tags a classifier memorised.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from matcher.inputs.cells import split_list
from matcher.matching.vectorize import TextVectorizer

logger = logging.getLogger(__name__)

__all__ = ["THRESHOLDS", "TagClassifier", "out_of_fold_tags", "taxonomy_documents"]

#: The thresholds cross-validation chooses from when ``threshold`` is None.
THRESHOLDS = tuple(np.round(np.arange(0.10, 0.71, 0.05), 2))


def taxonomy_documents(taxonomy: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Training rows from the taxonomy: each label with its description, and each keyword alone.

    Returns ``(texts, tags)``: a label's own row (``label：description``) and one short row per
    keyword, each tagged with that label. Short keyword rows teach the classifier the few words a
    coordinator types.
    """
    texts: list[str] = []
    tags: list[list[str]] = []
    for row in taxonomy.itertuples(index=False):
        texts.append(f"{row.label}：{row.description}")
        tags.append([row.label])
        for keyword in split_list(row.keywords):
            texts.append(keyword)
            tags.append([row.label])
    return texts, tags


class TagClassifier(BaseEstimator):
    """Infer taxonomy tags of a text: one-vs-rest logistic regressions over character and word vectors.

    Parameters
    ----------
    vectorizer : TextVectorizer or None
        The text features (cloned when fitting); None means ``TextVectorizer(char_weight=1.0)``.
    C : float
        Inverse regularisation strength of each label's logistic regression.
    threshold : float or None
        A label is inferred when its probability is at least this; None chooses it by
        cross-validation at fit time (``threshold_``).
    max_tags : int
        At most this many labels per text, the most probable first.
    cv : int
        Folds of the cross-validation that chooses the threshold.
    random_state : int
        Seed of the folds.

    Attributes
    ----------
    classes_ : ndarray of shape (n_labels,)
        The labels, in column order of :meth:`predict_proba`.
    vectorizer_ : TextVectorizer
    coef_ : ndarray of shape (n_labels, n_features)
    intercept_ : ndarray of shape (n_labels,)
    threshold_ : float
        The threshold in use.
    cv_f1_ : float or None
        Out-of-fold micro-F1 at ``threshold_`` (None when the threshold was given).
    """

    def __init__(
        self,
        *,
        vectorizer: TextVectorizer | None = None,
        C: float = 10.0,
        threshold: float | None = None,
        max_tags: int = 2,
        cv: int = 5,
        random_state: int = 0,
    ) -> None:
        self.vectorizer = vectorizer
        self.C = C
        self.threshold = threshold
        self.max_tags = max_tags
        self.cv = cv
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"tagger threshold must be in (0, 1) or None, got {self.threshold}")
        if self.max_tags < 1:
            raise ValueError(f"tagger max_tags must be positive, got {self.max_tags}")
        if self.C <= 0:
            raise ValueError(f"tagger C must be positive, got {self.C}")

    def fit(self, X: Sequence[str], y: Sequence[Sequence[str]], *, cv_rows: Sequence[bool] | None = None) -> TagClassifier:
        """Fit on texts ``X`` and their label lists ``y``.

        ``cv_rows`` marks the rows that choose the threshold (the stored needs); the other rows (the
        taxonomy's own) are in every training fold. Default: every row.
        """
        self._check_params()
        texts, labels = list(X), [list(tags) for tags in y]
        if len(texts) != len(labels):
            raise ValueError(f"X has {len(texts)} texts but y has {len(labels)} label lists")
        self.classes_ = np.asarray(sorted({t for tags in labels for t in tags}), dtype=object)
        if len(self.classes_) == 0:
            raise ValueError("cannot fit a tag classifier without any labels")
        self._fit_all(texts, labels)
        self.cv_f1_ = None
        self.threshold_ = self.threshold
        if self.threshold is None:
            mask = np.ones(len(texts), dtype=bool) if cv_rows is None else np.asarray(cv_rows, dtype=bool)
            self.threshold_, self.cv_f1_ = self._choose_threshold(texts, labels, mask)
        return self

    def _fit_all(self, texts: list[str], labels: list[list[str]]) -> None:
        self.vectorizer_ = clone(self.vectorizer) if self.vectorizer is not None else TextVectorizer(char_weight=1.0)
        features = self.vectorizer_.fit_transform(texts)
        targets = self._indicator(labels)
        coef = np.zeros((len(self.classes_), features.shape[1]))
        intercept = np.full(len(self.classes_), -30.0)
        for j in range(len(self.classes_)):
            column = targets[:, j]
            if column.all():
                intercept[j] = 30.0
            elif column.any():
                model = LogisticRegression(C=self.C, max_iter=2000).fit(features, column)
                coef[j], intercept[j] = model.coef_[0], model.intercept_[0]
        self.coef_, self.intercept_ = coef, intercept

    def _indicator(self, labels: list[list[str]]) -> np.ndarray:
        position = {label: j for j, label in enumerate(self.classes_)}
        matrix = np.zeros((len(labels), len(self.classes_)), dtype=int)
        for row, tags in enumerate(labels):
            for tag in tags:
                if tag in position:
                    matrix[row, position[tag]] = 1
        return matrix

    def _choose_threshold(self, texts: list[str], labels: list[list[str]], mask: np.ndarray) -> tuple[float, float]:
        proba = _out_of_fold_proba(self, texts, labels, mask)
        truth = self._indicator([labels[i] for i in np.flatnonzero(mask)])
        best = (THRESHOLDS[0], -1.0)
        for threshold in THRESHOLDS:
            chosen = _pick(proba, threshold, self.max_tags)
            f1 = _micro_f1(truth, chosen)
            if f1 > best[1] + 1e-12:
                best = (float(threshold), f1)
        logger.info("tag threshold %.2f chosen by %d-fold cross-validation (micro-F1 %.3f)", best[0], self.cv, best[1])
        return best

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """Probability of each label: array of shape (n_texts, n_labels), columns as ``classes_``."""
        check_is_fitted(self, "coef_")
        features = self.vectorizer_.transform(list(X))
        logits = np.asarray(features @ self.coef_.T) + self.intercept_
        return 1.0 / (1.0 + np.exp(-logits))

    def infer(self, X: Sequence[str]) -> list[list[dict[str, Any]]]:
        """The inferred tags of each text, most probable first: ``[{"tag", "probability"}, ...]``."""
        proba = self.predict_proba(X)
        chosen = _pick(proba, self.threshold_, self.max_tags)
        result = []
        for row in range(len(proba)):
            columns = np.flatnonzero(chosen[row])
            columns = columns[np.lexsort((columns, -proba[row, columns]))]
            result.append([{"tag": str(self.classes_[j]), "probability": round(float(proba[row, j]), 4)} for j in columns])
        return result

    def predict(self, X: Sequence[str]) -> list[list[str]]:
        """The inferred labels of each text, most probable first."""
        return [[item["tag"] for item in tags] for tags in self.infer(X)]


def _pick(proba: np.ndarray, threshold: float, max_tags: int) -> np.ndarray:
    """Boolean (n, n_labels): labels at or above ``threshold``, at most ``max_tags`` per row (most probable)."""
    chosen = proba >= threshold
    if proba.shape[1] > max_tags:
        kth = -np.sort(-proba, axis=1)[:, max_tags - 1]
        chosen &= proba >= kth[:, None]
    return chosen


def _micro_f1(truth: np.ndarray, chosen: np.ndarray) -> float:
    hits = float((truth.astype(bool) & chosen).sum())
    predicted, actual = float(chosen.sum()), float(truth.sum())
    return 2 * hits / (predicted + actual) if predicted + actual else 0.0


def _out_of_fold_proba(tagger: TagClassifier, texts: list[str], labels: list[list[str]], mask: np.ndarray) -> np.ndarray:
    """Probabilities for the rows of ``mask``, each from a clone fitted without that row's fold.

    Rows outside ``mask`` are in every training fold. Columns follow ``tagger.classes_``.
    """
    rows = np.flatnonzero(mask)
    fixed = np.flatnonzero(~mask)
    proba = np.zeros((len(rows), len(tagger.classes_)))
    n_splits = min(tagger.cv, len(rows))
    if n_splits < 2:
        return proba
    folds = KFold(n_splits=n_splits, shuffle=True, random_state=tagger.random_state)
    for train, test in folds.split(rows):
        train_rows = np.r_[rows[train], fixed]
        fold = clone(tagger).set_params(threshold=0.5)
        fold.fit([texts[i] for i in train_rows], [labels[i] for i in train_rows])
        part = fold.predict_proba([texts[i] for i in rows[test]])
        position = {label: j for j, label in enumerate(fold.classes_)}
        for j, label in enumerate(tagger.classes_):
            if label in position:
                proba[test, j] = part[:, position[label]]
    return proba


def out_of_fold_tags(
    tagger: TagClassifier, texts: Sequence[str], tags: Sequence[Sequence[str]], taxonomy: pd.DataFrame
) -> list[list[str]]:
    """The tags each of ``texts`` gets from a classifier fitted without it (``tagger.cv`` folds).

    The taxonomy's rows are in every fold; the threshold is the fitted ``tagger``'s ``threshold_``.
    """
    check_is_fitted(tagger, "threshold_")
    extra_texts, extra_tags = taxonomy_documents(taxonomy)
    all_texts = [*texts, *extra_texts]
    all_tags = [*[list(t) for t in tags], *extra_tags]
    mask = np.r_[np.ones(len(texts), dtype=bool), np.zeros(len(extra_texts), dtype=bool)]
    template = clone(tagger)
    template.classes_ = tagger.classes_
    proba = _out_of_fold_proba(template, all_texts, all_tags, mask)
    chosen = _pick(proba, tagger.threshold_, tagger.max_tags)
    result = []
    for row in range(len(texts)):
        columns = np.flatnonzero(chosen[row])
        columns = columns[np.lexsort((columns, -proba[row, columns]))]
        result.append([str(tagger.classes_[j]) for j in columns])
    return result
