"""The fitted target index: one :class:`TypeIndex` per target type, its rows the targets sorted by id.

The one place that maps a target type's external ids to matrix rows (``ids``, ``frame``) and holds what
scoring reads per target: text vectors and their inverted postings, tag and county matrices, and the
numbers the hard rules need (availability, free places, organisation). Also the targets frame's check
and the label (tag, county) vocabularies shared with the needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp

from matcher.inputs.frames import TARGET_COLUMNS
from matcher.inputs.library import TARGET_TYPES
from matcher.matching.names import NameIndex
from matcher.rules import free_places
from matcher.text.normalise import normalise

__all__ = ["GENERIC_MIN_TEXTS", "GENERIC_SHARE", "TypeIndex", "build_index", "check_targets", "label"]

#: The dense copy of the most common features' postings: at most this many features and bytes per
#: target type and process, and only features found in at least this share of the texts.
_DENSE_FEATURES = 512
_DENSE_BYTES = 64 * 2**20
_DENSE_SHARE = 0.05


@dataclass
class TypeIndex:
    """Everything needed to score one target type; rows are the targets of that type sorted by id."""

    frame: pd.DataFrame  # target metadata, rows in index order
    texts: sp.csr_matrix  # (n_texts, n_features) text vectors, rows of unit norm
    postings: sp.csr_matrix  # (n_features, n_texts) the same, transposed: an inverted index
    starts: np.ndarray | None  # (n_targets,) first text row of each target ("max" aggregation)
    owners: np.ndarray  # (n_texts,) target row of each text row
    docs: list[str]  # (n_texts,) normalised texts, for reasons
    tags: sp.csr_matrix  # (n_targets, n_tags) binary
    counties: sp.csr_matrix  # (n_targets, n_counties) binary
    free: np.ndarray  # (n_targets,) free places (:func:`matcher.rules.free_places`), inf when unlimited
    available: np.ndarray  # (n_targets,) bool
    org_ids: np.ndarray  # (n_targets,) object, None when no affiliation
    ids: np.ndarray  # (n_targets,) object: the external ids
    names: list[str]  # (n_targets,)
    tag_sets: list[set[str]]  # (n_targets,) normalised tags
    serves_all: np.ndarray  # (n_targets,) bool: no counties listed, so serves every county
    n_tags: np.ndarray  # (n_targets,) number of distinct tags
    load_fraction: np.ndarray  # (n_targets,) open engagements / capacity, 0 when unlimited
    latent: np.ndarray | None  # (n_texts, n_components) unit-norm latent vectors (semantic similarity)
    tags_t: sp.csr_matrix  # (n_tags, n_targets): ``tags`` transposed, for products with needs
    counties_t: sp.csr_matrix  # (n_counties, n_targets)
    name_index: NameIndex | None = None  # the targets' names, found in needs' texts

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_dense", None)  # rebuilt on first use
        return state

    def dense_common(self) -> tuple[np.ndarray, np.ndarray]:
        """The most common features' postings, then the tags and counties, as one dense float32 array.

        Built on first use (and again when the labels change). Returns ``(position, dense)``:
        ``position[f]`` is feature ``f``'s row in ``dense`` (-1 when it is not one of the common
        ones); ``dense`` has shape (n_common + n_tags + n_counties, n_texts), the tag and county rows
        last. A need's characters and common words are nearly all among the common features, and one
        dense product (BLAS) over them is far cheaper than walking their long posting lists; the few
        remaining features are left sparse.
        """
        cached = self.__dict__.get("_dense")
        if cached is None:
            lengths = np.diff(self.postings.indptr)
            n_texts = self.postings.shape[1]
            budget = min(_DENSE_FEATURES, _DENSE_BYTES // (4 * max(n_texts, 1)))
            common = np.argsort(-lengths, kind="stable")[:budget]
            common = np.sort(common[lengths[common] >= _DENSE_SHARE * n_texts])
            position = np.full(len(lengths), -1, dtype=np.int64)
            position[common] = np.arange(len(common))
            rows = [self.postings[common].toarray(), self.tags_t.toarray(), self.counties_t.toarray()]
            dense = np.vstack([r.astype(np.float32, copy=False) for r in rows])
            cached = self.__dict__["_dense"] = (position, dense)
        return cached

    def _transpose_labels(self) -> TypeIndex:
        self.__dict__.pop("_dense", None)
        self.tags_t = self.tags.T.tocsr()
        self.counties_t = self.counties.T.tocsr()
        return self

    def text_rows(self, target: int) -> np.ndarray:
        """The text rows of target row ``target`` (text rows are ordered by owner: one run of rows)."""
        if self.starts is None:
            return np.array([target])
        end = self.starts[target + 1] if target + 1 < len(self.starts) else len(self.owners)
        return np.arange(self.starts[target], end)

    def text_scores(self, vectors: sp.csr_matrix) -> np.ndarray:
        """Dot products of need vectors with every text row: array of shape (n_needs, n_texts).

        Each need gathers its features' posting rows and sums them in feature order (a sparse
        matrix-vector product), written straight into its dense row: a need scores the same alone or
        in a block, to the bit, and a block costs less than one sparse × sparse product, whose result
        is dense anyway (every need shares common characters with nearly every text).
        """
        dtype = np.result_type(vectors.dtype, self.postings.dtype)
        out = np.empty((vectors.shape[0], self.postings.shape[1]), dtype=dtype)
        indptr, indices, data = vectors.indptr, vectors.indices, vectors.data
        for row in range(vectors.shape[0]):
            start, end = indptr[row], indptr[row + 1]
            out[row] = self.postings[indices[start:end]].T @ data[start:end]
        return out


def build_index(
    frame: pd.DataFrame,
    docs: list[str],
    owners: np.ndarray,
    texts: sp.csr_matrix,
    *,
    several_texts: bool,
    tag_vocabulary: dict[str, int],
    county_vocabulary: dict[str, int],
    latent: np.ndarray | None,
) -> TypeIndex:
    """The index of one type: ``frame`` sorted by id, text rows ordered by owner row.

    ``several_texts``: each target keeps its texts apart (``aggregation="max"``), so ``starts`` marks
    each target's first text row; ``latent``: the texts' latent vectors, or None.
    """
    capacity = frame["capacity"].astype("Float64").to_numpy(dtype=float, na_value=np.inf)
    load = frame["load"].to_numpy(dtype=float)
    starts = None
    if several_texts:
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    tags = label_matrix(frame["tags"], tag_vocabulary)
    return TypeIndex(
        frame=frame,
        texts=texts,
        postings=texts.T.tocsr(),
        starts=starts,
        owners=owners,
        docs=docs,
        tags=tags,
        counties=label_matrix(frame["counties"], county_vocabulary),
        free=free_places(capacity, load),
        available=frame["available"].to_numpy(dtype=bool),
        org_ids=frame["org_id"].to_numpy(dtype=object),
        ids=frame["id"].to_numpy(dtype=object),
        names=frame["name"].tolist(),
        tag_sets=[{label(t) for t in tags} for tags in frame["tags"]],
        serves_all=np.asarray([len(c) == 0 for c in frame["counties"]], dtype=bool),
        n_tags=np.asarray(tags.sum(axis=1)).ravel(),
        load_fraction=load_fraction(frame, capacity),
        latent=latent,
        tags_t=sp.csr_matrix((0, 0)),
        counties_t=sp.csr_matrix((0, 0)),
        name_index=build_name_index(frame),
    )._transpose_labels()


def load_fraction(frame: pd.DataFrame, capacity: np.ndarray) -> np.ndarray:
    """Open engagements / capacity of experts (0 for other types and unlimited capacity)."""
    load = frame["load"].to_numpy(dtype=float)
    limited = np.isfinite(capacity) & (capacity > 0)
    if "target_type" in frame:
        limited &= (frame["target_type"] == "expert").to_numpy()
    return np.divide(load, capacity, out=np.zeros(len(frame)), where=limited)


@lru_cache(maxsize=1 << 16)
def label(value: str) -> str:
    """A tag or county normalised (:func:`matcher.text.normalise.normalise`), remembered: labels recur on every row."""
    return normalise(value)


def label_vocabulary(lists: pd.Series, known: dict[str, int] | None = None) -> dict[str, int]:
    """Normalised distinct values of a column of lists -> column index; new values go after ``known``."""
    vocabulary = dict(known or {})
    for value in sorted({label(v) for items in lists for v in items} - vocabulary.keys()):
        vocabulary[value] = len(vocabulary)
    return vocabulary


def label_matrix(lists: Sequence[list[str]] | pd.Series, vocabulary: dict[str, int]) -> sp.csr_matrix:
    """Binary (n_rows, len(vocabulary)) matrix of the known values of each row's list."""
    indptr, indices = [0], []
    for items in lists:
        indices.extend(sorted({vocabulary.get(label(v)) for v in items} - {None}))
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=float)
    return sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, len(vocabulary)))


def check_targets(X: pd.DataFrame) -> pd.DataFrame:
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
    frame["fingerprint"] = [fingerprint(row) for row in frame.itertuples(index=False)]
    return frame.sort_values(["target_type", "id"], kind="stable").reset_index(drop=True)


def build_name_index(frame: pd.DataFrame) -> NameIndex:
    """The name index of one type's targets (``frame`` in index row order); experts' names are people's."""
    person = bool(len(frame)) and frame["target_type"].iloc[0] == "expert" if "target_type" in frame else False
    return NameIndex(frame["name"].fillna("").astype(str).tolist(), person=person)


#: A word found in more than this share of the fitted profiles is generic (中心, 组织, 服务): it scores,
#: but it is neither evidence nor shown as a matched term.
GENERIC_SHARE = 0.2
#: Words are judged generic only in a library of at least this many profiles.
GENERIC_MIN_TEXTS = 50


def evidence_columns(terms: np.ndarray, is_word: np.ndarray, share: np.ndarray | None = None) -> np.ndarray:
    """1.0 for the word features that count as a matched word, else 0.0: words of two or more characters
    found in at most :data:`GENERIC_SHARE` of the fitted profiles (``share``, per feature)."""
    lengths = np.fromiter((len(t) for t in terms), dtype=np.int64, count=len(terms))
    keep = is_word & (lengths >= 2)
    if share is not None:
        keep &= share <= GENERIC_SHARE
    return keep.astype(np.float32)


def fingerprint(row: tuple) -> str:
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
