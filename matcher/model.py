"""The matcher estimator: fitted on the target libraries, it scores needs and explains its matches.

Data flow: targets frame -> normalise -> vectorise (one index per target type) -> for a block of needs,
one sparse product per target type -> scores (text, tags, region) -> hard rules -> top k -> reasons.
Only this module and :mod:`matcher.rank` know matrix rows; everything returned speaks in ids.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from matcher.library import NEED_COLUMNS, TARGET_COLUMNS, TARGET_TYPES
from matcher.rank import SCORE_DECIMALS, top_k
from matcher.text import normalise
from matcher.vectorize import TextVectorizer

logger = logging.getLogger(__name__)

__all__ = ["MATCH_COLUMNS", "Matcher"]

MATCH_COLUMNS = ("need_id", "target_type", "target_id", "rank", "score")
AGGREGATIONS = ("concat", "max")


@dataclass
class _TypeIndex:
    """Everything needed to score one target type; rows are the targets of that type sorted by id."""

    frame: pd.DataFrame  # target metadata, rows in index order
    texts: sp.csr_matrix  # (n_texts, n_features) text vectors, rows of unit norm
    postings: sp.csr_matrix  # (n_features, n_texts) the same, transposed: an inverted index
    starts: np.ndarray | None  # (n_targets,) first text row of each target ("max" aggregation)
    owners: np.ndarray  # (n_texts,) target row of each text row
    docs: list[str]  # (n_texts,) normalised texts, for reasons
    tags: sp.csr_matrix  # (n_targets, n_tags) binary
    counties: sp.csr_matrix  # (n_targets, n_counties) binary
    free: np.ndarray  # (n_targets,) free capacity, inf when unlimited
    available: np.ndarray  # (n_targets,) bool
    org_ids: np.ndarray  # (n_targets,) object, None when no affiliation
    ids: np.ndarray  # (n_targets,) object: the external ids
    names: list[str]  # (n_targets,)
    tag_sets: list[set[str]]  # (n_targets,) normalised tags
    serves_all: np.ndarray  # (n_targets,) bool: no counties listed, so serves every county
    tags_t: sp.csr_matrix  # (n_tags, n_targets): ``tags`` transposed, for products with needs
    counties_t: sp.csr_matrix  # (n_counties, n_targets)

    def _transpose_labels(self) -> _TypeIndex:
        self.tags_t = self.tags.T.tocsr()
        self.counties_t = self.counties.T.tocsr()
        return self

    def text_scores(self, vectors: sp.csr_matrix) -> np.ndarray:
        """Dot products of need vectors with every text row: array of shape (n_needs, n_texts).

        One need gathers its features' postings (a sparse matrix-vector product); a block of needs is
        one sparse product. Both sum in feature order, so a need scores the same either way, to the bit.
        """
        if vectors.shape[0] == 1:
            return np.asarray(self.postings[vectors.indices].T @ vectors.data).reshape(1, -1)
        return (vectors @ self.postings).toarray()


@dataclass
class _NeedBlock:
    """A block of needs, vectorised once for all target types."""

    ids: list[str]
    tags: list[list[str]]  # as given
    counties: list[list[str]]
    org_ids: list[str | None]
    docs: list[str]  # normalised texts
    vectors: sp.csr_matrix  # (n_needs, n_features)
    tag_matrix: sp.csr_matrix  # (n_needs, n_tags)
    county_matrix: sp.csr_matrix  # (n_needs, n_counties)
    n_tags: np.ndarray  # (n_needs,) number of distinct tags of each need
    words: list[str] | None = None  # the first need's known words of 2+ characters, for reasons


class Matcher(BaseEstimator):
    """Match needs to experts, resources and projects by text, tags and region.

    The score of a (need, target) pair is ``text_weight * text + tag_weight * tags + region_weight * region``
    with ``text_weight = 1 - tag_weight - region_weight``:

    * ``text``: cosine similarity of the vectorised texts (the profile texts concatenated, or the best
      single text with ``aggregation="max"``), in [0, 1];
    * ``tags``: the share of the need's tags that the target carries (0 when the need has none);
    * ``region``: 1 when the target serves one of the need's counties.

    Scores are not normalised per need, so a threshold means the same for every need of one model.
    Hard rules: targets scoring no more than ``min_score``, unavailable targets, targets with no free capacity and targets affiliated with the
    need's own organisation are never recommended; an optional county filter keeps the targets that
    serve that county (a target with no counties serves all). Ties are broken by id.

    Parameters
    ----------
    vectorizer : TextVectorizer or None
        The text vectoriser (cloned when fitting); None means ``TextVectorizer()``.
    aggregation : {"concat", "max"}
        How a profile's several texts are combined.
    tag_weight, region_weight : float
        Weights of the tag and region components; their sum must be below 1.
    min_score : float
        Only targets scoring above this are recommended (the default 0 drops targets that share
        nothing with the need).
    n_terms : int
        How many matched terms a match's reasons list.

    Attributes
    ----------
    vectorizer_ : TextVectorizer
        The fitted vectoriser.
    index_ : dict of str to _TypeIndex
        One index per target type present in the training frame.
    tag_vocabulary_ : dict of str to int
        Normalised tag -> column of the tag matrices.
    county_vocabulary_ : dict of str to int
        Normalised county -> column of the county matrices.
    feature_names_ : array of shape (n_features,)
        Feature names of the vectoriser (``char:…``, ``word:…``).
    feature_terms_, feature_is_word_ : arrays of shape (n_features,)
        Each feature's term, and whether it is a word (else a character n-gram).
    """

    def __init__(
        self,
        *,
        vectorizer: TextVectorizer | None = None,
        aggregation: str = "concat",
        tag_weight: float = 0.2,
        region_weight: float = 0.05,
        min_score: float = 0.0,
        n_terms: int = 5,
    ) -> None:
        self.vectorizer = vectorizer
        self.aggregation = aggregation
        self.tag_weight = tag_weight
        self.region_weight = region_weight
        self.min_score = min_score
        self.n_terms = n_terms

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.tag_weight < 0 or self.region_weight < 0 or self.tag_weight + self.region_weight >= 1:
            raise ValueError(
                "tag_weight and region_weight must be non-negative with a sum below 1, "
                f"got {self.tag_weight} and {self.region_weight}"
            )

    def fit(self, X: pd.DataFrame, y: object = None) -> Matcher:
        """Fit the vocabulary on the targets ``X`` and index them.

        Parameters
        ----------
        X : DataFrame with columns ``target_type, id, name, texts, tags, counties, org_id, capacity,
            load, available`` (see :func:`matcher.library.targets_frame`); ``texts`` is a list of
            strings per target.
        """
        self._check_params()
        frame = _check_targets(X)
        self.vectorizer_ = clone(self.vectorizer) if self.vectorizer is not None else TextVectorizer()
        per_type = {t: frame.loc[frame["target_type"] == t].reset_index(drop=True) for t in TARGET_TYPES}
        per_type = {t: f for t, f in per_type.items() if len(f)}
        documents = {t: self._documents(f) for t, f in per_type.items()}
        fit_docs = [d for docs, _ in documents.values() for d in docs]
        self.vectorizer_.fit_preprocessed(fit_docs)
        self.feature_names_ = self.vectorizer_.get_feature_names_out()
        self.feature_is_word_ = np.char.startswith(self.feature_names_.astype(str), "word:")
        self.feature_terms_ = np.asarray([name.split(":", 1)[1] for name in self.feature_names_], dtype=object)
        self.tag_vocabulary_ = _vocabulary(frame["tags"])
        self.county_vocabulary_ = _vocabulary(frame["counties"])
        self.index_ = {}
        for target_type, type_frame in per_type.items():
            docs, owners = documents[target_type]
            texts = self.vectorizer_.transform_preprocessed(docs)
            self.index_[target_type] = self._build_index(type_frame.drop(columns=["texts"]), docs, owners, texts)
        logger.info("fitted on %s targets, %d features", self.n_targets_, len(self.feature_names_))
        return self

    @property
    def n_targets_(self) -> dict[str, int]:
        """Number of indexed targets of each type."""
        check_is_fitted(self, "index_")
        return {t: len(index.frame) for t, index in self.index_.items()}

    def update_targets(self, X: pd.DataFrame | None = None, *, remove: Iterable[tuple[str, str]] = ()) -> Matcher:
        """Add or replace the targets of ``X`` and drop the ``(target_type, id)`` pairs of ``remove``.

        New and changed profiles are transformed with the fitted vocabulary and idf weights: no
        refit, so a new or edited target is matchable at once (``fit`` again to learn new words).
        Targets absent from ``X`` and ``remove`` are kept as they are.
        """
        check_is_fitted(self, "index_")
        frame = _check_targets(X) if X is not None and len(X) else None
        dropped = set(remove)
        if frame is not None:
            dropped |= set(zip(frame["target_type"], frame["id"], strict=True))
            self.tag_vocabulary_ = _vocabulary(frame["tags"], self.tag_vocabulary_)
            self.county_vocabulary_ = _vocabulary(frame["counties"], self.county_vocabulary_)
        for target_type in TARGET_TYPES:
            new = frame.loc[frame["target_type"] == target_type] if frame is not None else None
            old = self.index_.get(target_type)
            parts = []  # (metadata frame, docs, owner ids, text vectors)
            if old is not None:
                keep = ~np.asarray([(target_type, i) in dropped for i in old.frame["id"]], dtype=bool)
                rows = keep[old.owners]
                owner_ids = old.frame["id"].to_numpy(dtype=object)[old.owners[rows]]
                docs = [d for d, kept in zip(old.docs, rows, strict=True) if kept]
                parts.append((old.frame.loc[keep], docs, owner_ids, old.texts[np.flatnonzero(rows)]))
            if new is not None and len(new):
                new = new.reset_index(drop=True)
                docs, owners = self._documents(new)
                owner_ids = new["id"].to_numpy(dtype=object)[owners]
                parts.append(
                    (new.drop(columns=["texts"]), docs, owner_ids, self.vectorizer_.transform_preprocessed(docs))
                )
            merged = pd.concat([p[0] for p in parts], ignore_index=True) if parts else pd.DataFrame()
            if merged.empty:
                self.index_.pop(target_type, None)
                continue
            merged = merged.sort_values("id", kind="stable").reset_index(drop=True)
            position = {target_id: row for row, target_id in enumerate(merged["id"])}
            owners = np.asarray([position[i] for p in parts for i in p[2]], dtype=int)
            order = np.argsort(owners, kind="stable")
            docs = [d for p in parts for d in p[1]]
            texts = sp.vstack([p[3] for p in parts], format="csr")[order]
            self.index_[target_type] = self._build_index(merged, [docs[i] for i in order], owners[order], texts)
        for index in self.index_.values():  # the vocabularies may have grown
            index.tags = _binary(index.frame["tags"], self.tag_vocabulary_)
            index.counties = _binary(index.frame["counties"], self.county_vocabulary_)
            index._transpose_labels()
        return self

    def sync_targets(self, X: pd.DataFrame) -> dict[str, int]:
        """Make the index hold exactly the targets of ``X``, touching only what changed.

        New and changed targets (any field, compared by fingerprint) go through
        :meth:`update_targets`; targets missing from ``X`` are dropped. Returns the counts.
        """
        check_is_fitted(self, "index_")
        frame = _check_targets(X) if len(X) else X
        current = {
            (target_type, target_id): fingerprint
            for target_type, index in self.index_.items()
            for target_id, fingerprint in zip(index.frame["id"], index.frame["fingerprint"], strict=True)
        }
        keys = list(zip(frame["target_type"], frame["id"], strict=True)) if len(frame) else []
        changed = [current.get(key) != fp for key, fp in zip(keys, frame.get("fingerprint", []), strict=True)]
        removed = current.keys() - set(keys)
        if any(changed) or removed:
            self.update_targets(frame.loc[changed] if any(changed) else None, remove=removed)
        return {"changed": int(sum(changed)), "removed": len(removed)}

    def _documents(self, frame: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        """Normalised documents of the targets and the target row of each document."""
        preprocess = self.vectorizer_.preprocessor
        if self.aggregation == "concat":
            docs = [preprocess("\n".join(t for t in texts if t)) for texts in frame["texts"]]
            return docs, np.arange(len(frame))
        docs, owners = [], []
        for row, texts in enumerate(frame["texts"]):
            kept = [preprocess(t) for t in texts if t and t.strip()] or [""]
            docs.extend(kept)
            owners.extend([row] * len(kept))
        return docs, np.asarray(owners)

    def _build_index(
        self, frame: pd.DataFrame, docs: list[str], owners: np.ndarray, texts: sp.csr_matrix
    ) -> _TypeIndex:
        """The index of one type: ``frame`` sorted by id, text rows ordered by owner row."""
        capacity = frame["capacity"].astype("Float64").to_numpy(dtype=float, na_value=np.inf)
        load = frame["load"].to_numpy(dtype=float)
        starts = None
        if self.aggregation == "max":
            starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        return _TypeIndex(
            frame=frame,
            texts=texts,
            postings=texts.T.tocsr(),
            starts=starts,
            owners=owners,
            docs=docs,
            tags=_binary(frame["tags"], self.tag_vocabulary_),
            counties=_binary(frame["counties"], self.county_vocabulary_),
            free=capacity - load,
            available=frame["available"].to_numpy(dtype=bool),
            org_ids=frame["org_id"].to_numpy(dtype=object),
            ids=frame["id"].to_numpy(dtype=object),
            names=frame["name"].tolist(),
            tag_sets=[{normalise(t) for t in tags} for tags in frame["tags"]],
            serves_all=np.asarray([len(c) == 0 for c in frame["counties"]], dtype=bool),
            tags_t=sp.csr_matrix((0, 0)),
            counties_t=sp.csr_matrix((0, 0)),
        )._transpose_labels()

    # ------------------------------------------------------------------ scoring
    @property
    def target_types_(self) -> tuple[str, ...]:
        """The target types this model was fitted on, in canonical order."""
        check_is_fitted(self, "index_")
        return tuple(t for t in TARGET_TYPES if t in self.index_)

    def _needs(self, needs: pd.DataFrame | list[dict[str, Any]]) -> _NeedBlock:
        """Vectorise needs (a frame of ``NEED_COLUMNS`` or a list of such mappings) once for all types."""
        records = needs if isinstance(needs, list) else _check_needs(needs).to_dict("records")
        tags = [list(r.get("tags") or []) for r in records]
        counties = [list(r.get("counties") or []) for r in records]
        docs = self.vectorizer_.preprocess([str(r.get("text") or "") for r in records])
        return _NeedBlock(
            ids=[r.get("id") or "" for r in records],
            tags=tags,
            counties=counties,
            org_ids=[r.get("org_id") or None for r in records],
            docs=docs,
            vectors=self.vectorizer_.transform_preprocessed(docs),
            tag_matrix=_binary(tags, self.tag_vocabulary_),
            county_matrix=_binary(counties, self.county_vocabulary_),
            n_tags=np.asarray([len({normalise(t) for t in ts}) for ts in tags], dtype=float),
        )

    def _components(self, block: _NeedBlock, target_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Text, tag and region components, each of shape (n_needs, n_targets)."""
        index = self.index_[target_type]
        text = index.text_scores(block.vectors)
        if index.starts is not None:
            text = np.maximum.reduceat(text, index.starts, axis=1)
        np.clip(text, 0.0, 1.0, out=text)
        n_needs, n_targets = text.shape
        tags = np.zeros((n_needs, n_targets))
        region = np.zeros((n_needs, n_targets))
        if block.tag_matrix.nnz:
            overlap = (block.tag_matrix @ index.tags_t).toarray()
            np.divide(overlap, block.n_tags[:, None], out=tags, where=block.n_tags[:, None] > 0)
        if block.county_matrix.nnz:
            region = ((block.county_matrix @ index.counties_t).toarray() > 0).astype(float)
        return text, tags, region

    def _combine(self, text: np.ndarray, tags: np.ndarray, region: np.ndarray) -> np.ndarray:
        text_weight = 1.0 - self.tag_weight - self.region_weight
        scores = text_weight * text + self.tag_weight * tags + self.region_weight * region
        return np.round(scores, SCORE_DECIMALS)

    def _eligible(self, block: _NeedBlock, target_type: str, county: str | None) -> np.ndarray:
        """Boolean mask of shape (n_needs, n_targets): the hard rules of matching."""
        index = self.index_[target_type]
        allowed = index.available & (index.free > 0)
        if county:
            column = self.county_vocabulary_.get(normalise(county))
            serves = index.serves_all.copy()
            if column is not None:
                serves |= index.counties[:, column].toarray().ravel() > 0
            allowed = allowed & serves
        mask = np.repeat(allowed[None, :], len(block.ids), axis=0)
        for row, org_id in enumerate(block.org_ids):
            if org_id:
                mask[row] &= index.org_ids != org_id
        return mask

    def score(self, needs: pd.DataFrame, target_type: str = "expert") -> np.ndarray:
        """Scores of every need against every target of one type, hard rules not applied.

        Returns
        -------
        scores : array of shape (n_needs, n_targets)
            Columns follow the targets of ``target_type`` sorted by id (``targets(target_type)``).
        """
        check_is_fitted(self, "index_")
        self._check_type(target_type)
        return self._combine(*self._components(self._needs(needs), target_type))

    def targets(self, target_type: str) -> pd.DataFrame:
        """The fitted targets of one type, in the column order of :meth:`score`."""
        check_is_fitted(self, "index_")
        self._check_type(target_type)
        return self.index_[target_type].frame

    def _check_type(self, target_type: str) -> None:
        if target_type not in self.index_:
            raise ValueError(f"this model has no targets of type {target_type!r}; it has {list(self.index_)}")

    def _ranked(
        self, block: _NeedBlock, target_type: str, k: int, county: str | None
    ) -> tuple[list[np.ndarray], np.ndarray, tuple[np.ndarray, ...]]:
        components = self._components(block, target_type)
        scores = self._combine(*components)
        scores[~self._eligible(block, target_type, county) | (scores <= self.min_score)] = -np.inf
        return [top_k(row, k) for row in scores], scores, components

    def match(
        self,
        needs: pd.DataFrame,
        *,
        k: int = 10,
        target_types: list[str] | tuple[str, ...] | None = None,
        county: str | None = None,
        chunk_size: int = 500,
    ) -> pd.DataFrame:
        """Top ``k`` targets of each type for every need, as rows of a flat score table.

        Returns
        -------
        DataFrame with columns ``need_id, target_type, target_id, rank, score``, sorted by need
        (input order), target type (canonical order), rank; ``rank`` starts at 1.
        """
        check_is_fitted(self, "index_")
        types = self._requested(target_types)
        columns: dict[str, list[np.ndarray]] = {c: [] for c in MATCH_COLUMNS}
        for start in range(0, len(needs), chunk_size):
            block = self._needs(needs.iloc[start : start + chunk_size])
            ranked = {t: self._ranked(block, t, k, county)[:2] for t in types}
            for row, need_id in enumerate(block.ids):
                for target_type in types:
                    rows, scores = ranked[target_type][0][row], ranked[target_type][1]
                    columns["need_id"].append(np.full(len(rows), need_id, dtype=object))
                    columns["target_type"].append(np.full(len(rows), target_type, dtype=object))
                    columns["target_id"].append(self.index_[target_type].ids[rows])
                    columns["rank"].append(np.arange(1, len(rows) + 1))
                    columns["score"].append(scores[row, rows])
        if not columns["need_id"]:
            return pd.DataFrame({c: [] for c in MATCH_COLUMNS})
        return pd.DataFrame({c: np.concatenate(parts) for c, parts in columns.items()})

    def recommend(
        self,
        need: dict[str, Any],
        *,
        k: int = 5,
        target_types: list[str] | tuple[str, ...] | None = None,
        county: str | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Top ``k`` targets of each requested type for one need, with their reasons.

        Parameters
        ----------
        need : mapping with ``text`` and optionally ``id``, ``tags``, ``counties``, ``org_id``.

        Returns
        -------
        ``{target_type: [{"id", "name", "score", "reasons"}, ...]}``, best first. ``reasons`` holds
        ``terms`` (matched terms with their weight in the score and their ``[start, end)`` character
        spans in the normalised need text), ``tags`` (matched tags), ``region`` (``match`` and the
        need's ``counties``) and ``components`` (the text, tag and region parts of the score).
        """
        check_is_fitted(self, "index_")
        block = self._needs([need])
        results = {}
        for target_type in self._requested(target_types):
            ranked, scores, components = self._ranked(block, target_type, k, county)
            results[target_type] = [
                self._explain(block, target_type, int(target), float(scores[0, target]), components)
                for target in ranked[0]
            ]
        return results

    def _requested(self, target_types: list[str] | tuple[str, ...] | None) -> list[str]:
        if target_types is None:
            return [t for t in TARGET_TYPES if t in self.index_]
        for target_type in target_types:
            self._check_type(target_type)
        return [t for t in TARGET_TYPES if t in target_types]

    # ------------------------------------------------------------------ reasons
    def _explain(
        self, block: _NeedBlock, target_type: str, target: int, score: float, components: tuple[np.ndarray, ...]
    ) -> dict[str, Any]:
        index = self.index_[target_type]
        text, tags, region = (float(c[0, target]) for c in components)
        text_weight = 1.0 - self.tag_weight - self.region_weight
        rows = np.flatnonzero(index.owners == target)
        row = rows[0] if len(rows) == 1 else rows[np.argmax(index.text_scores(block.vectors)[0, rows])]
        return {
            "id": index.ids[target],
            "name": index.names[target],
            "score": score,
            "reasons": {
                "terms": self._terms(block, index.texts, row, text_weight),
                "tags": [t for t in dict.fromkeys(block.tags[0]) if normalise(t) in index.tag_sets[target]],
                "region": {"match": bool(region > 0), "counties": block.counties[0]},
                "components": {
                    "text": round(text_weight * text, SCORE_DECIMALS),
                    "tags": round(self.tag_weight * tags, SCORE_DECIMALS),
                    "region": round(self.region_weight * region, SCORE_DECIMALS),
                },
            },
        }

    def _terms(self, block: _NeedBlock, texts: sp.csr_matrix, row: int, scale: float) -> list[dict[str, Any]]:
        """The overlapping terms that contributed most to the text score of text ``row``, with spans.

        Words count as they are. A character n-gram of two or more characters is credited to the
        longest matched word that contains it, or stands as a term of its own when it lies inside a
        word of the need; n-grams that straddle two words (``清个`` in ``分不清个案``) mean nothing to a
        reader and are not shown, nor are single characters.
        """
        need = block.vectors
        start, end = texts.indptr[row], texts.indptr[row + 1]
        shared, at_need, at_text = np.intersect1d(
            need.indices, texts.indices[start:end], assume_unique=True, return_indices=True
        )
        values = need.data[at_need].astype(float) * texts.data[start:end][at_text] * scale
        terms = self.feature_terms_[shared]
        is_word = self.feature_is_word_[shared]
        words = dict(zip(terms[is_word], values[is_word], strict=True))
        if block.words is None:
            features = need.indices[self.feature_is_word_[need.indices]]
            block.words = [w for w in self.feature_terms_[features] if len(w) > 1]
        grams: dict[str, float] = {}
        for gram, value in zip(terms[~is_word], values[~is_word], strict=True):
            if len(gram) < 2:
                continue
            holder = max((w for w in words if gram in w), key=len, default=None)
            if holder is not None:
                words[holder] += value
            elif any(gram in word for word in block.words):
                grams[gram] = grams.get(gram, 0.0) + value
        best = sorted({**grams, **words}.items(), key=lambda item: (-item[1], item[0]))[: self.n_terms]
        return [
            {"term": term, "weight": round(float(weight), SCORE_DECIMALS), "spans": _spans(block.docs[0], term)}
            for term, weight in best
            if weight > 0
        ]


def _spans(doc: str, term: str) -> list[list[int]]:
    """Non-overlapping ``[start, end)`` spans of ``term`` in ``doc``."""
    spans, start = [], doc.find(term)
    while start >= 0:
        spans.append([start, start + len(term)])
        start = doc.find(term, start + len(term))
    return spans


def _vocabulary(lists: pd.Series, known: dict[str, int] | None = None) -> dict[str, int]:
    """Normalised distinct values of a column of lists -> column index; new values go after ``known``."""
    vocabulary = dict(known or {})
    for value in sorted({normalise(v) for items in lists for v in items} - vocabulary.keys()):
        vocabulary[value] = len(vocabulary)
    return vocabulary


def _binary(lists: Sequence[list[str]] | pd.Series, vocabulary: dict[str, int]) -> sp.csr_matrix:
    """Binary (n_rows, len(vocabulary)) matrix of the known values of each row's list."""
    rows, cols = [], []
    for row, items in enumerate(lists):
        for column in {vocabulary.get(normalise(v)) for v in items} - {None}:
            rows.append(row)
            cols.append(column)
    data = np.ones(len(rows), dtype=float)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(lists), len(vocabulary)))


def _check_targets(X: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"Matcher.fit expects a DataFrame of targets, not {type(X).__name__}")
    missing = [c for c in TARGET_COLUMNS if c not in X.columns]
    if missing:
        raise ValueError(f"the targets frame lacks the columns {missing}")
    unknown = sorted(set(X["target_type"]) - set(TARGET_TYPES))
    if unknown:
        raise ValueError(f"unknown target_type {unknown[0]!r}; expected one of {TARGET_TYPES}")
    if X.empty:
        raise ValueError("cannot fit on an empty targets frame")
    frame = X.loc[:, list(TARGET_COLUMNS)].copy()
    frame["id"] = frame["id"].astype(str)
    duplicated = frame.duplicated(["target_type", "id"])
    if duplicated.any():
        first = frame.loc[duplicated].iloc[0]
        raise ValueError(f"duplicate {first['target_type']} id {first['id']!r}")
    frame["capacity"] = pd.array(frame["capacity"], dtype="Int64")
    frame["load"] = frame["load"].fillna(0).astype(int)
    frame["available"] = frame["available"].fillna(True).astype(bool)
    frame["org_id"] = frame["org_id"].where(frame["org_id"].notna() & (frame["org_id"] != ""), None)
    frame["fingerprint"] = [_fingerprint(row) for row in frame.itertuples(index=False)]
    return frame.sort_values(["target_type", "id"], kind="stable").reset_index(drop=True)


def _fingerprint(row: tuple) -> str:
    """A digest of everything about a target that matching uses."""
    capacity = None if pd.isna(row.capacity) else int(row.capacity)
    fields = (
        row.name,
        list(row.texts),
        list(row.tags),
        list(row.counties),
        row.org_id,
        capacity,
        int(row.load),
        bool(row.available),
    )
    return hashlib.blake2b(repr(fields).encode(), digest_size=12).hexdigest()


def _check_needs(needs: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(needs, pd.DataFrame):
        raise TypeError(f"expected a DataFrame of needs, not {type(needs).__name__}")
    frame = needs.reset_index(drop=True).copy()
    for column in NEED_COLUMNS:
        if column not in frame.columns:
            frame[column] = [[] for _ in range(len(frame))] if column in ("tags", "counties") else None
    frame["text"] = frame["text"].fillna("").astype(str)
    frame["org_id"] = frame["org_id"].where(frame["org_id"].notna() & (frame["org_id"] != ""), None)
    return frame


def build_matcher(params: dict[str, Any] | None = None) -> Matcher:
    """The default matcher, with ``params`` (flat ``get_params`` keys, nested with ``__``) applied.

    Raises
    ------
    ValueError
        Naming an unknown parameter and listing the valid ones.
    """
    matcher = Matcher(vectorizer=TextVectorizer())
    params = dict(params or {})
    valid = matcher.get_params(deep=True)
    for key in params:
        if key not in valid:
            raise ValueError(f"unknown parameter {key!r}; valid parameters: {', '.join(sorted(valid))}")
    return matcher.set_params(**params)
