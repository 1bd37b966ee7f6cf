"""The matcher estimator: fitted on the target libraries, it scores needs and explains its matches.

Data flow: targets frame -> normalise -> vectorise (one index per target type, :mod:`matcher.matching.index`)
-> for a block of needs, one sparse product per target type -> scores (text, tags, region,
:mod:`matcher.matching.scoring`) -> hard rules (:mod:`matcher.rules`) -> top k -> re-ranking, diversity
-> reasons (:mod:`matcher.matching.reasons`). This module holds the scikit-learn estimator: parameters,
fitting, the public methods and the re-ranking of each need's best targets. Only the matching modules
and :mod:`matcher.matching.rank` know matrix rows; everything returned speaks in ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_is_fitted

from matcher.inputs.library import TARGET_TYPES
from matcher.matching.index import (
    GENERIC_MIN_TEXTS,
    TypeIndex,
    build_index,
    build_name_index,
    check_targets,
    evidence_columns,
    label,
    label_matrix,
    label_vocabulary,
    load_fraction,
)
from matcher.matching.judgments import JudgedReranker, candidate_frame, target_idf
from matcher.matching.names import mask_organisation
from matcher.matching.rank import SCORE_DECIMALS, maximal_marginal_relevance, top_k
from matcher.matching.reasons import ReasonsMixin
from matcher.matching.rerank import SIMILARITIES, Reranker, cap_to_evidence, evidence, fit_reranker
from matcher.matching.scoring import NeedBlock, Ranking, ScoringMixin, check_needs, tags_absent
from matcher.matching.tagging import TagClassifier, taxonomy_documents
from matcher.matching.vectorize import TextVectorizer
from matcher.text.normalise import normalise, normalise_many

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PARAMS", "MATCH_COLUMNS", "Matcher", "build_matcher"]

MATCH_COLUMNS = ("need_id", "target_type", "target_id", "rank", "score")
AGGREGATIONS = ("concat", "max")


class Matcher(ScoringMixin, ReasonsMixin, BaseEstimator):
    """Match needs to experts, resources and projects by text, tags and region.

    The score of a (need, target) pair is ``text_weight * text + tag_weight * tags + region_weight * region``
    with ``text_weight = 1 - tag_weight - region_weight``:

    * ``text``: cosine similarity of the vectorised texts (the profile texts concatenated, or the best
      single text with ``aggregation="max"``), in [0, 1]; with ``semantic_weight`` > 0 it is
      ``(1 - semantic_weight) * sparse cosine + semantic_weight * latent (TruncatedSVD) cosine``;
    * ``tags``: the share of the need's tags that the target carries (0 when the need has none);
    * ``region``: 1 when the target serves one of the need's counties.

    After :meth:`fit_reranker` (``matcher train`` calls it when there is enough feedback), the best
    ``rerank_depth`` targets of that weighted sum are re-scored by the :class:`~matcher.matching.rerank.Reranker`:
    the score becomes the predicted probability that a coordinator accepts the target when shown
    first. A target type with too little feedback keeps the weighted sum. With ``diversity`` > 0 the
    top k is then picked by maximal marginal relevance (scores are unchanged, only the order).

    Scores are not normalised per need, so a threshold means the same for every need of one model.
    Hard rules: targets scoring no more than ``min_score`` (by the weighted sum), unavailable targets,
    targets with no free capacity and targets affiliated with the need's own organisation are never
    recommended; an optional county filter keeps the targets that serve that county (a target with no
    counties serves all). Ties are broken by id.

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
    semantic_weight : float
        Share of the latent semantic (TruncatedSVD) cosine in ``text``, in [0, 1); 0 fits no SVD.
    semantic_components : int
        Dimensions of the latent space.
    reranker : Reranker or None
        The re-ranker's parameters; fitted by :meth:`fit_reranker`, never by :meth:`fit`.
    rerank_depth : int
        How many of the weighted sum's best targets the re-ranker (and diversity) reconsider.
    diversity : float
        Maximal marginal relevance trade-off in [0, 1): 0 ranks by score alone; higher values push
        down targets whose profiles resemble those already ranked above them.
    name_weight : float
        Weight of a target's name (a project's or resource's name, its brand, an expert's name) found
        in the need's text: the text component becomes ``min(1, text + name_weight)`` for that target.
        The need's own organisation's name is never matched (see :mod:`matcher.matching.names`).
    tagger : TagClassifier or None
        The tag classifier's parameters; fitted by :meth:`fit_tagger`, never by :meth:`fit`. A need
        whose ``tags`` are absent (None) gets the tags it infers; a list, even empty, is used as given.
    judged : JudgedReranker or None
        The parameters of the re-ranker learnt from labelled judgments; fitted by :meth:`fit_judgments`
        (``matcher train --judgments``), never by :meth:`fit`. It then takes the place of ``reranker_``.
    feedback_docs : int
        Pseudo-relevance feedback (RM3-style): each need is expanded, per target type, with the terms
        of its ``feedback_docs`` best-scoring texts of that type, then scored again; 0 (the default)
        expands nothing. It costs one more scoring pass over every text of the type.
    feedback_terms : int
        How many of the feedback texts' heaviest terms expand the need.
    feedback_weight : float
        Share of the expansion in the expanded need, in [0, 1): ``(1 - w) * need + w * expansion``,
        the expansion scaled to the need's L1 norm (so it keeps the need's score range).

    Attributes
    ----------
    vectorizer_ : TextVectorizer
        The fitted vectoriser.
    index_ : dict of str to TypeIndex
        One index per target type present in the training frame.
    tag_vocabulary_ : dict of str to int
        Normalised tag -> column of the tag matrices.
    county_vocabulary_ : dict of str to int
        Normalised county -> column of the county matrices.
    feature_names_ : array of shape (n_features,)
        Feature names of the vectoriser (``char:…``, ``word:…``).
    feature_terms_, feature_is_word_ : arrays of shape (n_features,)
        Each feature's term, and whether it is a word (else a character n-gram).
    semantic_ : TruncatedSVD or None
        The latent space, when ``semantic_weight`` > 0.
    reranker_ : Reranker or None
        The fitted re-ranker (None until :meth:`fit_reranker`).
    tagger_ : TagClassifier or None
        The fitted tag classifier (None until :meth:`fit_tagger`: needs without tags then have none).
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
        semantic_weight: float = 0.0,
        semantic_components: int = 100,
        reranker: Reranker | None = None,
        rerank_depth: int = 50,
        diversity: float = 0.0,
        tagger: TagClassifier | None = None,
        name_weight: float = 0.5,
        judged: JudgedReranker | None = None,
        feedback_docs: int = 0,
        feedback_terms: int = 20,
        feedback_weight: float = 0.3,
    ) -> None:
        self.vectorizer = vectorizer
        self.aggregation = aggregation
        self.tag_weight = tag_weight
        self.region_weight = region_weight
        self.min_score = min_score
        self.n_terms = n_terms
        self.semantic_weight = semantic_weight
        self.semantic_components = semantic_components
        self.reranker = reranker
        self.rerank_depth = rerank_depth
        self.diversity = diversity
        self.tagger = tagger
        self.name_weight = name_weight
        self.judged = judged
        self.feedback_docs = feedback_docs
        self.feedback_terms = feedback_terms
        self.feedback_weight = feedback_weight

    def __setstate__(self, state: dict) -> None:
        """Artefacts saved before a parameter existed load with that parameter's default."""
        defaults = {
            "semantic_weight": 0.0,
            "semantic_components": 100,
            "reranker": None,
            "rerank_depth": 50,
            "diversity": 0.0,
            "semantic_": None,
            "reranker_": None,
            "tagger": None,
            "tagger_": None,
            "name_weight": 0.0,  # saved before names were a field: scored as they were
            "judged": None,
            "feedback_docs": 0,
            "feedback_terms": 20,
            "feedback_weight": 0.3,
        }
        super().__setstate__({**defaults, **state})
        if "feature_terms_" in self.__dict__ and "evidence_columns_" not in self.__dict__:
            self.evidence_columns_ = evidence_columns(self.feature_terms_, self.feature_is_word_)
        for index in self.__dict__.get("index_", {}).values():
            if "name_index" not in index.__dict__:
                index.name_index = build_name_index(index.frame)
            if not hasattr(index, "latent"):
                index.latent = None
                index.n_tags = np.asarray(index.tags.sum(axis=1)).ravel()
                capacity = index.frame["capacity"].astype("Float64").to_numpy(dtype=float, na_value=np.inf)
                index.load_fraction = load_fraction(index.frame, capacity)

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.tag_weight < 0 or self.region_weight < 0 or self.tag_weight + self.region_weight >= 1:
            raise ValueError(
                "tag_weight and region_weight must be non-negative with a sum below 1, "
                f"got {self.tag_weight} and {self.region_weight}"
            )
        if not 0 <= self.semantic_weight < 1:
            raise ValueError(f"semantic_weight must be in [0, 1), got {self.semantic_weight}")
        if not 0 <= self.diversity < 1:
            raise ValueError(f"diversity must be in [0, 1), got {self.diversity}")
        if self.rerank_depth < 1:
            raise ValueError(f"rerank_depth must be positive, got {self.rerank_depth}")
        if not 0 <= self.name_weight <= 1:
            raise ValueError(f"name_weight must be in [0, 1], got {self.name_weight}")
        if self.feedback_docs < 0 or self.feedback_terms < 1:
            raise ValueError(
                "feedback_docs must be 0 or more and feedback_terms 1 or more, "
                f"got {self.feedback_docs} and {self.feedback_terms}"
            )
        if not 0 <= self.feedback_weight < 1:
            raise ValueError(f"feedback_weight must be in [0, 1), got {self.feedback_weight}")

    def fit(self, X: pd.DataFrame, y: object = None) -> Matcher:
        """Fit the vocabulary on the targets ``X`` and index them.

        Parameters
        ----------
        X : DataFrame with columns ``target_type, id, name, texts, tags, counties, org_id, capacity,
            load, available`` (see :func:`matcher.inputs.frames.targets_frame`); ``texts`` is a list of
            strings per target.
        """
        self._check_params()
        frame = check_targets(X)
        self.vectorizer_ = clone(self.vectorizer) if self.vectorizer is not None else TextVectorizer()
        per_type = {t: frame.loc[frame["target_type"] == t].reset_index(drop=True) for t in TARGET_TYPES}
        per_type = {t: f for t, f in per_type.items() if len(f)}
        documents = {t: self._documents(f) for t, f in per_type.items()}
        fit_docs = [d for docs, _ in documents.values() for d in docs]
        vectors = self.vectorizer_.fit_transform_preprocessed(fit_docs)  # each text analysed once
        bounds = np.cumsum([0] + [len(docs) for docs, _ in documents.values()])
        self.feature_names_ = self.vectorizer_.get_feature_names_out()
        names = self.feature_names_.astype(str)  # words: jieba words and Latin-script words
        self.feature_is_word_ = np.char.startswith(names, "word:") | np.char.startswith(names, "latin:")
        self.feature_terms_ = np.asarray([name.split(":", 1)[1] for name in self.feature_names_], dtype=object)
        self.char_columns_ = np.zeros(len(self.feature_names_), dtype=np.float32)
        self.char_columns_[self.vectorizer_.block_slices_.get("char", slice(0, 0))] = 1.0
        share = None
        if vectors.shape[0] >= GENERIC_MIN_TEXTS:
            share = np.bincount(vectors.indices, minlength=len(self.feature_names_)) / vectors.shape[0]
        self.evidence_columns_ = evidence_columns(self.feature_terms_, self.feature_is_word_, share)
        self.tag_vocabulary_ = label_vocabulary(frame["tags"])
        self.county_vocabulary_ = label_vocabulary(frame["counties"])
        self.reranker_ = None
        self.tagger_ = None
        texts = {t: vectors[bounds[i] : bounds[i + 1]] for i, t in enumerate(documents)}
        self.semantic_ = None
        if self.semantic_weight > 0:
            stacked = sp.vstack(list(texts.values()), format="csr")
            n_components = max(1, min(self.semantic_components, stacked.shape[1] - 1, stacked.shape[0] - 1))
            self.semantic_ = TruncatedSVD(n_components=n_components, random_state=0).fit(stacked)
        self.index_ = {}
        for target_type, type_frame in per_type.items():
            docs, owners = documents[target_type]
            self.index_[target_type] = self._build_index(
                type_frame.drop(columns=["texts"]), docs, owners, texts[target_type]
            )
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
        frame = check_targets(X) if X is not None and len(X) else None
        dropped = set(remove)
        if frame is not None:
            dropped |= set(zip(frame["target_type"], frame["id"], strict=True))
            self.tag_vocabulary_ = label_vocabulary(frame["tags"], self.tag_vocabulary_)
            self.county_vocabulary_ = label_vocabulary(frame["counties"], self.county_vocabulary_)
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
            index.tags = label_matrix(index.frame["tags"], self.tag_vocabulary_)
            index.counties = label_matrix(index.frame["counties"], self.county_vocabulary_)
            index._transpose_labels()
        return self

    def sync_targets(self, X: pd.DataFrame) -> dict[str, int]:
        """Make the index hold exactly the targets of ``X``, touching only what changed.

        New and changed targets (any field, compared by fingerprint) go through
        :meth:`update_targets`; targets missing from ``X`` are dropped. Returns the counts.
        """
        check_is_fitted(self, "index_")
        frame = check_targets(X) if len(X) else X
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
            joined = ["\n".join(t for t in texts if t) for texts in frame["texts"]]
            docs = normalise_many(joined) if preprocess is normalise else [preprocess(d) for d in joined]
            return docs, np.arange(len(frame))
        docs, owners = [], []
        for row, texts in enumerate(frame["texts"]):
            kept = [preprocess(t) for t in texts if t and t.strip()] or [""]
            docs.extend(kept)
            owners.extend([row] * len(kept))
        return docs, np.asarray(owners)

    def _build_index(
        self, frame: pd.DataFrame, docs: list[str], owners: np.ndarray, texts: sp.csr_matrix
    ) -> TypeIndex:
        """The index of one type (:func:`matcher.matching.index.build_index`): ``frame`` sorted by id,
        text rows ordered by owner row."""
        return build_index(
            frame,
            docs,
            owners,
            texts,
            several_texts=self.aggregation == "max",
            tag_vocabulary=self.tag_vocabulary_,
            county_vocabulary=self.county_vocabulary_,
            latent=self._latent(texts),
        )

    def _latent(self, vectors: sp.csr_matrix) -> np.ndarray | None:
        """Unit-norm latent vectors of shape (n_rows, n_components), or None without a latent space."""
        if getattr(self, "semantic_", None) is None:
            return None
        latent = np.asarray(vectors @ self.semantic_.components_.T, dtype=np.float64)
        norms = np.linalg.norm(latent, axis=1, keepdims=True)
        return latent / np.where(norms > 0, norms, 1.0)

    # ------------------------------------------------------------------ scoring
    @property
    def target_types_(self) -> tuple[str, ...]:
        """The target types this model was fitted on, in canonical order."""
        check_is_fitted(self, "index_")
        return tuple(t for t in TARGET_TYPES if t in self.index_)

    def _needs(self, needs: pd.DataFrame | list[dict[str, Any]]) -> NeedBlock:
        """Vectorise needs (a frame of ``NEED_COLUMNS`` or a list of such mappings) once for all types.

        A need whose ``tags`` are absent (None) gets the tags :meth:`infer_tags` infers from its text.
        """
        records = needs if isinstance(needs, list) else check_needs(needs).to_dict("records")
        texts = [str(r.get("text") or "") for r in records]
        tags = [None if tags_absent(r.get("tags")) else list(r.get("tags")) for r in records]
        missing = [row for row, given in enumerate(tags) if given is None]
        if missing:
            inferred = self.infer_tags([texts[row] for row in missing])
            for row, found in zip(missing, inferred, strict=True):
                tags[row] = [item["tag"] for item in found]
        counties = [list(r.get("counties") or []) for r in records]
        org_names = [r.get("org_name") if isinstance(r.get("org_name"), str) else None for r in records]
        # the need's own organisation's name says nothing of what it needs: blanked out (same length)
        docs = [mask_organisation(doc, org) for doc, org in zip(self.vectorizer_.preprocess(texts), org_names, strict=True)]
        vectors = self.vectorizer_.transform_queries(docs)
        return NeedBlock(
            ids=[r.get("id") or "" for r in records],
            tags=tags,
            counties=counties,
            org_ids=[r.get("org_id") or None for r in records],
            docs=docs,
            vectors=vectors,
            tag_matrix=label_matrix(tags, self.tag_vocabulary_),
            county_matrix=label_matrix(counties, self.county_vocabulary_),
            n_tags=np.asarray([len({label(t) for t in ts}) for ts in tags], dtype=float),
            latent=self._latent(vectors),
            org_names=org_names,
        )

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
        self, block: NeedBlock, target_type: str, k: int, county: str | None, *, explain: bool = False
    ) -> tuple[list[Ranking], tuple[np.ndarray, ...]]:
        """The top ``k`` of each need of the block, and the components (each (n_needs, n_targets))."""
        reranker = self._reranker_for(target_type)
        if reranker is None and self.diversity == 0 and not explain:
            return self._top(block, target_type, k, county), ()
        components = self._components(block, target_type)
        base = self._combine(*components)
        base[base <= self.min_score] = -np.inf
        self._exclude(base, block, self.index_[target_type], county)
        rankings = []
        for need in range(len(block.ids)):
            row = base[need]
            if reranker is None and self.diversity == 0:
                rows = top_k(row, k)
                rankings.append(Ranking(rows, row[rows], row[rows]))
                continue
            rows = top_k(row, max(k, self.rerank_depth))
            scores, features = row[rows], None
            if reranker is not None and len(rows):
                similarities = self._similarities(block, need, target_type, rows, components)
                features = reranker.serving_matrix(self, block, need, target_type, rows, row[rows], similarities)
                scores = np.round(reranker.predict_proba(target_type, features), SCORE_DECIMALS)
                scores = cap_to_evidence(scores, row[rows], evidence(similarities), reranker.evidence_margin)
                order = np.lexsort((rows, -scores))
                rows, scores, features = rows[order], scores[order], features[order]
            if self.diversity > 0 and len(rows) > 1:
                texts = self.index_[target_type].texts[self._first_rows(target_type, rows)]
                if self.vectorizer_.weighting == "okapi":  # target vectors are saturated counts: compare by cosine
                    texts = normalize(texts)
                similarity = (texts @ texts.T).toarray()
                order = maximal_marginal_relevance(scores, similarity, k, self.diversity)
                rows, scores = rows[order], scores[order]
                features = features[order] if features is not None else None
            rows, scores = rows[:k], scores[:k]
            effects = None
            if explain and features is not None:
                effects = reranker.contributions(target_type, features[:k])
                features = features[:k]
            rankings.append(Ranking(rows, scores, row[rows], features, effects))
        return rankings, components

    def _reranker_for(self, target_type: str) -> Reranker | None:
        reranker = getattr(self, "reranker_", None)
        if reranker is None or target_type not in reranker.models_:
            return None
        return reranker

    def _first_rows(self, target_type: str, targets: np.ndarray) -> np.ndarray:
        """The first text row of each target (the only one with ``aggregation="concat"``)."""
        index = self.index_[target_type]
        return targets if index.starts is None else index.starts[targets]

    def pair_features(self, needs: pd.DataFrame, pairs: pd.DataFrame, *, chunk_size: int = 200) -> pd.DataFrame:
        """The similarity features of (need, target) pairs, as the re-ranker sees them.

        Parameters
        ----------
        needs : DataFrame of ``NEED_COLUMNS`` holding every need of ``pairs``.
        pairs : DataFrame with ``need_id, target_type, target_id``.

        Returns
        -------
        DataFrame of :data:`matcher.matching.rerank.SIMILARITIES` columns, one row per pair (same index);
        pairs whose target is not indexed get zeros.
        """
        check_is_fitted(self, "index_")
        needs = check_needs(needs)
        result = pd.DataFrame(0.0, index=pairs.index, columns=list(SIMILARITIES))
        wanted = pairs.reset_index(drop=True)
        for start in range(0, len(needs), chunk_size):
            chunk = needs.iloc[start : start + chunk_size]
            block = self._needs(chunk)
            position = {need_id: row for row, need_id in enumerate(block.ids)}
            for target_type in self.target_types_:
                part = wanted.loc[(wanted["target_type"] == target_type) & wanted["need_id"].isin(position)]
                if part.empty:
                    continue
                index = self.index_[target_type]
                target_row = pd.Series(np.arange(len(index.ids)), index=index.ids)
                part = part.loc[part["target_id"].isin(target_row.index)]
                components = self._components(block, target_type)
                for need_id, group in part.groupby("need_id", sort=False):
                    values = self._similarities(
                        block, position[need_id], target_type, target_row[group["target_id"]].to_numpy(), components
                    )
                    result.iloc[group.index, :] = np.column_stack([values[c] for c in SIMILARITIES])
        return result

    def fit_tagger(self, needs: pd.DataFrame, taxonomy: pd.DataFrame) -> Matcher:
        """Fit the tag classifier on the tagged needs (``NEED_COLUMNS``) and the taxonomy's own texts.

        The taxonomy (``label, description, keywords``) is always in the training data; the stored
        needs choose the threshold by cross-validation (see :class:`~matcher.matching.tagging.TagClassifier`).
        Without a ``tagger`` parameter nothing is fitted and needs without tags keep none.
        """
        check_is_fitted(self, "index_")
        self.tagger_ = None
        if self.tagger is None:
            return self
        frame = check_needs(needs)
        tagged = frame.loc[[not tags_absent(t) and len(t) > 0 for t in frame["tags"]]]
        extra_texts, extra_tags = taxonomy_documents(taxonomy)
        texts = [*tagged["text"].tolist(), *extra_texts]
        tags = [*[list(t) for t in tagged["tags"]], *extra_tags]
        cv_rows = [True] * len(tagged) + [False] * len(extra_texts)
        self.tagger_ = clone(self.tagger).fit(texts, tags, cv_rows=cv_rows)
        return self

    def infer_tags(self, texts: Sequence[str]) -> list[list[dict[str, Any]]]:
        """The tags inferred from each text, most probable first: ``[{"tag", "probability"}, ...]``.

        Empty lists when the model has no fitted tag classifier.
        """
        check_is_fitted(self, "index_")
        tagger = getattr(self, "tagger_", None)
        if tagger is None or not len(texts):
            return [[] for _ in texts]
        return tagger.infer(list(texts))

    def fit_reranker(self, libraries: Any, *, until: pd.Timestamp | None = None) -> Matcher:
        """Fit the re-ranker on the coordinators' decisions up to ``until`` (default: all of them).

        Only decisions up to ``until`` are read, each with features as of its own time (see
        :mod:`matcher.matching.rerank`); a target type with too little feedback keeps the weighted sum.
        """
        check_is_fitted(self, "index_")
        self.reranker_ = fit_reranker(self, libraries, until)
        return self

    def fit_judgments(self, needs: pd.DataFrame, judgments: pd.DataFrame) -> Matcher:
        """Fit the re-ranker on graded judgments (``need_id, target_type, target_id, grade``) of ``needs``.

        Candidates: each judged need's ``judged.depth`` best targets by the base score plus its judged
        targets, unjudged ones graded 0 (:func:`matcher.matching.judgments.candidate_frame`). The fitted
        :class:`~matcher.matching.judgments.JudgedReranker` becomes ``reranker_``: it serves the types it learnt.
        """
        check_is_fitted(self, "index_")
        template = self.judged if self.judged is not None else JudgedReranker()
        judged_needs = needs.loc[needs["id"].isin(set(judgments["need_id"]))]
        idf = target_idf(self)
        frame = candidate_frame(self, judged_needs, judgments, template.depth, idf)
        self.reranker_ = clone(template).fit(frame, frame["grade"].to_numpy(dtype=float), idf=idf)
        return self

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
        (input order), target type (canonical order), rank; ``rank`` starts at 1. The scores and
        order are those of :meth:`recommend` for the same need.
        """
        columns = self.match_columns(needs, k=k, target_types=target_types, county=county, chunk_size=chunk_size)
        if not len(needs) or not self._requested(target_types):
            return pd.DataFrame({c: [] for c in MATCH_COLUMNS})
        return pd.DataFrame(columns)

    def match_columns(
        self,
        needs: pd.DataFrame,
        *,
        k: int = 10,
        target_types: list[str] | tuple[str, ...] | None = None,
        county: str | None = None,
        chunk_size: int = 500,
    ) -> dict[str, np.ndarray]:
        """:meth:`match` as a dict of arrays (``need_id``, ``target_type``, ``target_id``: object;
        ``rank``: int64; ``score``: float64), without building a DataFrame."""
        check_is_fitted(self, "index_")
        types = self._requested(target_types)
        parts: dict[str, list[np.ndarray]] = {c: [] for c in (*MATCH_COLUMNS, "order")}
        for start in range(0, len(needs), chunk_size):
            block = self._needs(needs.iloc[start : start + chunk_size])
            ids = np.empty(len(block.ids), dtype=object)
            ids[:] = block.ids
            for number, target_type in enumerate(types):
                rankings = self._ranked(block, target_type, k, county)[0]
                lengths = np.asarray([len(r.rows) for r in rankings], dtype=np.int64)
                total = int(lengths.sum())
                need = np.repeat(np.arange(len(rankings), dtype=np.int64), lengths)
                rank = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
                rows = np.concatenate([r.rows for r in rankings]) if total else np.zeros(0, dtype=np.int64)
                parts["need_id"].append(ids[need])
                parts["target_type"].append(np.full(total, target_type, dtype=object))
                parts["target_id"].append(self.index_[target_type].ids[rows.astype(np.int64)])
                parts["rank"].append(rank + 1)
                parts["score"].append(np.concatenate([r.scores for r in rankings]) if total else np.zeros(0))
                parts["order"].append(((start + need) * len(types) + number) * (k + 1) + rank)
        if not parts["need_id"]:
            return {c: np.zeros(0, dtype=object if c.endswith(("id", "type")) else float) for c in MATCH_COLUMNS}
        order = np.argsort(np.concatenate(parts["order"]), kind="stable")  # by need, type, rank
        return {c: np.concatenate(parts[c])[order] for c in MATCH_COLUMNS}

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
        need's ``counties``) and ``components`` (the text, tag and region parts of the weighted sum).
        A re-ranked type adds ``rerank``: ``{"model", "base" (the weighted sum), "features"}``, the
        features that moved the predicted acceptance most, each ``{"feature", "value", "effect"}``
        (``effect`` on the log-odds, against the average training pair).
        """
        check_is_fitted(self, "index_")
        block = self._needs([need])
        results = {}
        for target_type in self._requested(target_types):
            rankings, components = self._ranked(block, target_type, k, county, explain=True)
            ranking = rankings[0]
            results[target_type] = [
                self._explain(block, target_type, ranking, position, components)
                for position in range(len(ranking.rows))
            ]
        return results

    def _requested(self, target_types: list[str] | tuple[str, ...] | None) -> list[str]:
        if target_types is None:
            return [t for t in TARGET_TYPES if t in self.index_]
        for target_type in target_types:
            self._check_type(target_type)
        return [t for t in TARGET_TYPES if t in target_types]


# The defaults of ``matcher train`` and ``matcher batch`` (flat ``get_params`` keys), chosen on
# ../shared/bench/zh (parameters, not weights learnt from it); see docs/quality.md ("Zero-shot ranking"
# and "Tuning"). Okapi BM25 as a search engine scores it (a need's distinct terms weighted by idf, a
# target's by saturated term frequency, normalised to [0, 1)), with little saturation (k1 0.3) and full
# length normalisation (b 1.0): nDCG@10 0.791 against 0.769 for the previous TF-IDF cosine defaults and
# 0.751 for plain character TF-IDF, with the match history and the known-item figures unchanged. The
# character block weighs 3.0 against the word block's 1.0 (0.5 scored 0.792 on the benchmark but let long
# profiles that cover a need's common characters pass the one that names its terms, in README's example).
DEFAULT_PARAMS: dict[str, Any] = {
    "vectorizer__char_weight": 3.0,
    "vectorizer__word_weight": 1.0,
    "vectorizer__weighting": "okapi",
    "vectorizer__k1": 0.3,
    "vectorizer__b": 1.0,
}


def build_matcher(params: dict[str, Any] | None = None) -> Matcher:
    """The default matcher, with ``params`` (flat ``get_params`` keys, nested with ``__``) applied.

    Raises
    ------
    ValueError
        Naming an unknown parameter and listing the valid ones.
    """
    matcher = Matcher(
        vectorizer=TextVectorizer(), reranker=Reranker(), tagger=TagClassifier(), judged=JudgedReranker()
    ).set_params(
        **DEFAULT_PARAMS
    )
    params = dict(params or {})
    valid = matcher.get_params(deep=True)
    for key in params:
        if key not in valid:
            raise ValueError(f"unknown parameter {key!r}; valid parameters: {', '.join(sorted(valid))}")
    return matcher.set_params(**params)


def params_of(model: Matcher) -> dict[str, Any]:
    """The parameters of ``model`` in the ``--params`` format (values only: no estimators or callables).

    ``build_matcher(params_of(model))`` builds an unfitted matcher with the same settings.
    """
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in model.get_params(deep=True).items()
        if value is None or isinstance(value, (bool, int, float, str, tuple, list))
    }
