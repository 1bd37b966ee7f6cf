"""Scoring needs against the target index: the text, tag and region parts, exact and two-pass.

A block of needs (:class:`NeedBlock`, vectorised once) is scored against one :class:`~matcher.matching.index.TypeIndex`:
``text_weight * text + tag_weight * tags + region_weight * region``, rounded, with the hard rules
(:mod:`matcher.rules`) as a mask. Three engines give the same numbers to the bit (tests pin them):
the components one by one (:meth:`ScoringMixin._components`, for re-ranking and reasons), the
weighted sums of a whole block (:meth:`ScoringMixin._base_scores`), and the two-pass top k of a large
type (:meth:`ScoringMixin._top_pruned`: approximate dense scores, then the candidates scored exactly).
Also the re-ranker's similarity features of (need, target) pairs.

:class:`ScoringMixin` is a part of :class:`~matcher.matching.estimator.Matcher`: it reads the
estimator's parameters (``tag_weight``, ``min_score``, …) and fitted attributes (``index_``, ``vectorizer_``, …).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from matcher.inputs.frames import NEED_COLUMNS
from matcher.matching.index import TypeIndex
from matcher.matching.rank import SCORE_DECIMALS
from matcher.rules import eligible
from matcher.text.normalise import normalise

__all__ = ["PRUNE_MIN_TEXTS", "NeedBlock", "Ranking", "ScoringMixin", "check_needs", "tags_absent"]

#: A block of needs is scored in two passes (see ``Matcher._top_pruned``) against a type with at least
#: this many texts; smaller types are scored exactly in one pass.
PRUNE_MIN_TEXTS = 2000
#: Candidate pairs re-scored exactly at a time: at most this many (pair, text entry) cells.
_EXACT_CELLS = 2_000_000


@dataclass
class Ranking:
    """One need's ranked targets of one type: rows (internal positions) and scores, best first."""

    rows: np.ndarray  # (n,) target rows
    scores: np.ndarray  # (n,) final scores (re-ranked when a re-ranker scores this type)
    base: np.ndarray  # (n,) the weighted sums of the same targets
    features: np.ndarray | None = None  # (n, n_features) re-ranker features, when explained
    effects: np.ndarray | None = None  # (n, n_features) their contributions to the log-odds


@dataclass
class NeedBlock:
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
    latent: np.ndarray | None = None  # (n_needs, n_components) unit-norm latent vectors
    org_names: list[str | None] | None = None  # each need's own organisation's name (never matched as a name)
    named: dict[int, sp.csr_matrix] | None = None  # per type index (by id): (n_needs, n_targets) names found
    expanded: dict[int, sp.csr_matrix] | None = None  # per type index (by id): vectors after feedback
    surfaces: dict[str, tuple[str, list[list[int]]]] | None = None  # the first need's terms as written


class ScoringMixin:
    """The scoring engines of :class:`~matcher.matching.estimator.Matcher` (see the module's docstring)."""

    def _components(self, block: NeedBlock, target_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Text, tag and region components, each of shape (n_needs, n_targets)."""
        index = self.index_[target_type]
        text = self._text_component(block, index)
        n_needs, n_targets = text.shape
        tags = np.zeros((n_needs, n_targets))
        region = np.zeros((n_needs, n_targets))
        if block.tag_matrix.nnz:
            overlap = (block.tag_matrix @ index.tags_t).toarray()
            np.divide(overlap, block.n_tags[:, None], out=tags, where=block.n_tags[:, None] > 0)
        if block.county_matrix.nnz:
            region = ((block.county_matrix @ index.counties_t).toarray() > 0).astype(float)
        return text, tags, region

    def _text_component(self, block: NeedBlock, index: TypeIndex, *, names: bool = True) -> np.ndarray:
        """The text component (n_needs, n_targets): similarity, fused with the latent one, best text, plus
        ``name_weight`` where the need names the target, in [0, 1]."""
        text = index.text_scores(self._query(block, index))
        if index.latent is not None and block.latent is not None:
            semantic = np.stack([index.latent @ need for need in block.latent])  # one need at a time: bit-stable
            text = (1.0 - self.semantic_weight) * text + self.semantic_weight * np.clip(semantic, 0.0, 1.0)
        if index.starts is not None:
            text = np.maximum.reduceat(text, index.starts, axis=1)
        if names:
            named = self._named(block, index).tocoo()
            if named.nnz:
                text[named.row, named.col] += text.dtype.type(self.name_weight) * named.data.astype(text.dtype)
        np.clip(text, 0.0, 1.0, out=text)
        return text

    def _query(self, block: NeedBlock, index: TypeIndex) -> sp.csr_matrix:
        """The need vectors scored against ``index``: as vectorised, or expanded by feedback (cached)."""
        if not self.feedback_docs or not self.feedback_weight:
            return block.vectors
        if block.expanded is None:
            block.expanded = {}
        found = block.expanded.get(id(index))
        if found is None:
            found = block.expanded[id(index)] = self._expand(block.vectors, index)
        return found

    def _expand(self, vectors: sp.csr_matrix, index: TypeIndex) -> sp.csr_matrix:
        """Pseudo-relevance feedback: each need plus the heaviest terms of its best texts.

        The first pass scores every text; the ``feedback_docs`` best (by score, then row) with a positive
        score are averaged, weighted by their scores; the ``feedback_terms`` heaviest terms of that
        average, scaled to the need's L1 norm, make the expansion. Row by row, so a need expands the
        same alone or in a block.
        """
        first = index.text_scores(vectors)
        n_needs, n_texts = first.shape
        depth = min(self.feedback_docs, n_texts)
        rows, columns, weights = [], [], []
        for need in range(n_needs):
            best = np.lexsort((np.arange(n_texts), -first[need]))[:depth]
            best = best[first[need, best] > 0]
            rows.append(np.full(len(best), need))
            columns.append(best)
            weights.append(first[need, best] / first[need, best].sum() if len(best) else best.astype(float))
        mix = sp.csr_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(columns))), shape=(n_needs, n_texts)
        )
        feedback = (mix @ index.texts).tocsr()
        expanded = []
        for need in range(n_needs):
            row = feedback.getrow(need)
            query = vectors.getrow(need)
            if row.nnz:
                keep = np.lexsort((row.indices, -row.data))[: self.feedback_terms]
                scale = np.abs(query.data).sum() / np.abs(row.data[keep]).sum()
                row = sp.csr_matrix(
                    (row.data[keep] * scale, (np.zeros(len(keep), dtype=int), row.indices[keep])), shape=row.shape
                )
                query = (1.0 - self.feedback_weight) * query + self.feedback_weight * row
            expanded.append(query)
        result = sp.vstack(expanded, format="csr").astype(vectors.dtype)
        result.sort_indices()
        return result

    def _named(self, block: NeedBlock, index: TypeIndex) -> sp.csr_matrix:
        """Which targets of ``index`` each need of the block names: binary (n_needs, n_targets), cached."""
        if block.named is None:
            block.named = {}
        found = block.named.get(id(index))
        if found is None:
            if self.name_weight > 0 and index.name_index is not None:
                found = index.name_index.find(block.docs, block.org_names)
            else:
                found = sp.csr_matrix((len(block.ids), len(index.ids)))
            block.named[id(index)] = found
        return found

    def _base_scores(self, block: NeedBlock, target_type: str, county: str | None) -> np.ndarray:
        """The rounded weighted sums (n_needs, n_targets), -inf where a hard rule excludes the target.

        The values of ``_combine(*_components(...))``, to the bit, with less work for a block of needs:
        the tag and region parts are added only where they are non-zero (elsewhere they add 0.0, which
        changes nothing), and the hard rules are column masks. Targets scoring no more than
        ``min_score`` are left for the top k to drop.
        """
        index = self.index_[target_type]
        text_weight = 1.0 - self.tag_weight - self.region_weight
        base = np.asarray(text_weight * self._text_component(block, index), dtype=np.float64)
        flat = base.reshape(-1)
        n_targets = base.shape[1]
        if block.tag_matrix.nnz:
            overlap = (block.tag_matrix @ index.tags_t).tocsr()
            rows = np.repeat(np.arange(overlap.shape[0]), np.diff(overlap.indptr))
            keep = (overlap.data != 0) & (block.n_tags[rows] > 0)
            rows, columns = rows[keep], overlap.indices[keep]
            flat[rows * n_targets + columns] += self.tag_weight * (overlap.data[keep] / block.n_tags[rows])
        if block.county_matrix.nnz:
            shared = (block.county_matrix @ index.counties_t).tocsr()
            rows = np.repeat(np.arange(shared.shape[0]), np.diff(shared.indptr))
            keep = shared.data > 0
            flat[rows[keep] * n_targets + shared.indices[keep]] += self.region_weight * 1.0
        np.round(base, SCORE_DECIMALS, out=base)
        self._exclude(base, block, index, county)
        return base

    def _top(self, block: NeedBlock, target_type: str, k: int, county: str | None) -> list[Ranking]:
        """The top ``k`` of each need of the block by the weighted sum (no re-ranking, no diversity).

        The rankings of :func:`matcher.matching.rank.top_k` on each row, found for the whole block at once: the
        k-th best score of each row (one partition), the targets at or above it, sorted by score then row.
        """
        index = self.index_[target_type]
        n_needs = len(block.ids)
        if index.latent is None and index.starts is None and index.postings.shape[1] >= PRUNE_MIN_TEXTS:
            rows, columns, scores = self._top_pruned(block, target_type, k, county)
        else:
            base = self._base_scores(block, target_type, county)
            rows, columns = at_or_above_kth(base, k, self.min_score)
            scores = base[rows, columns]
        order = np.lexsort((columns, -scores, rows))
        rows, columns, scores = rows[order], columns[order], scores[order]
        starts = np.searchsorted(rows, np.arange(n_needs + 1))
        rankings = []
        for need in range(n_needs):
            start, end = starts[need], min(starts[need + 1], starts[need] + k)
            rankings.append(Ranking(columns[start:end], scores[start:end], scores[start:end]))
        return rankings

    def _top_pruned(
        self, block: NeedBlock, target_type: str, k: int, county: str | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates for :meth:`_top` and their exact scores, in two passes.

        1. Approximate scores of every target: the common features by one dense float32 product
           (:meth:`TypeIndex.dense_common`), the others sparse, tags, counties and hard rules as in
           :meth:`_base_scores`. They differ from the exact sums only in the order in which float32
           rounds, by at most ``(terms + 8) * 2**-23`` for a cosine of at most 1.
        2. The targets within twice that bound (plus the 6-decimal rounding) of each need's k-th best
           approximate score hold every target of the exact top k; only they are scored exactly, as
           :meth:`_base_scores` scores them (the same float32 sum in feature order, the same rounding).

        Returns the (need, target, exact score) triples of the candidates that pass the hard rules and
        ``min_score``; :meth:`_top` ranks them.
        """
        index = self.index_[target_type]
        vectors = self._query(block, index)
        n_needs, n_texts = len(block.ids), index.postings.shape[1]
        text_weight = 1.0 - self.tag_weight - self.region_weight
        position, dense = index.dense_common()
        n_common = dense.shape[0] - block.tag_matrix.shape[1] - block.county_matrix.shape[1]
        n_labels = n_common + block.tag_matrix.shape[1]
        entry_rows = np.repeat(np.arange(n_needs), np.diff(vectors.indptr))
        at = position[vectors.indices]
        common = at >= 0
        # one dense product for the common features, the need's tags (weighted by their share) and its
        # county (when it names one known county: the sum is then the 0/1 county match)
        X = np.zeros((n_needs, dense.shape[0]), dtype=np.float32)
        X[entry_rows[common], at[common]] = vectors.data[common] * np.float32(text_weight)
        tag_matrix = block.tag_matrix.toarray()
        share = np.divide(self.tag_weight, block.n_tags, out=np.zeros(n_needs), where=block.n_tags > 0)
        X[:, n_common:n_labels] = tag_matrix * share[:, None]
        county_matrix = block.county_matrix.toarray()
        one_county = county_matrix.sum(axis=1) == 1
        X[one_county, n_labels:] = county_matrix[one_county] * self.region_weight
        approx = X @ dense
        flat = approx.reshape(-1)
        rare = np.flatnonzero(~common)
        if len(rare):  # the rare features' short postings, gathered need by need
            bounds = np.searchsorted(entry_rows[rare], np.arange(n_needs + 1))
            weights = vectors.data[rare] * np.float32(text_weight)
            for row in np.flatnonzero(np.diff(bounds)):
                part = slice(bounds[row], bounds[row + 1])
                approx[row] += index.postings[vectors.indices[rare[part]]].T @ weights[part]
        several = np.flatnonzero(county_matrix.sum(axis=1) > 1)
        if len(several):
            shared = (block.county_matrix[several] @ index.counties_t).tocsr()
            rows = several[np.repeat(np.arange(len(several)), np.diff(shared.indptr))]
            keep = shared.data > 0
            flat[rows[keep] * n_texts + shared.indices[keep]] += self.region_weight
        self._exclude(approx, block, index, county)
        terms = np.diff(vectors.indptr) + tag_matrix.sum(axis=1) + county_matrix.sum(axis=1) + 8
        slack = 2 * (terms * 2.0**-23 + 4e-6)
        rows, columns = near_the_best(approx, k, self.min_score, slack)
        # names only raise scores and are left out of ``approx``, so its bound still holds: every named
        # target that the hard rules allow is a candidate too
        named = self._named(block, index).tocoo()
        if named.nnz:
            allowed = np.isfinite(approx[named.row, named.col])
            cells = np.unique(np.r_[rows * n_texts + columns, named.row[allowed] * n_texts + named.col[allowed]])
            rows, columns = cells // n_texts, cells % n_texts
        scores = self._exact_scores(block, index, rows, columns)
        keep = scores > self.min_score
        return rows[keep], columns[keep], scores[keep]

    def _exact_scores(self, block: NeedBlock, index: TypeIndex, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """The rounded weighted sums of the (need row, target) pairs, to the bit as :meth:`_base_scores`.

        A pair's text score is the float32 sum, in feature order, of the products of the need's and the
        text's weights (what gathering the need's postings computes); features of the text that the
        need lacks add +0, which changes nothing.
        """
        vectors, texts = self._query(block, index), index.texts
        text_weight = 1.0 - self.tag_weight - self.region_weight
        # the needs' weights over the block's own features only (one more column of zeros for the rest):
        # the same products as over every feature, without a (needs × vocabulary) array
        features, local = np.unique(vectors.indices, return_inverse=True)
        column = np.full(vectors.shape[1], len(features), dtype=np.int64)
        column[features] = np.arange(len(features))
        dense = np.zeros((vectors.shape[0], len(features) + 1), dtype=np.float32)
        dense[np.repeat(np.arange(vectors.shape[0]), np.diff(vectors.indptr)), local.ravel()] = vectors.data
        text = np.zeros(len(rows), dtype=np.float32)
        step = max(1, _EXACT_CELLS // max(1, int(np.diff(texts.indptr)[columns].max(initial=1))))
        for start in range(0, len(rows), step):
            need, target = rows[start : start + step], columns[start : start + step]
            first, lengths = texts.indptr[target], np.diff(texts.indptr)[target]
            if not lengths.max(initial=0):
                continue
            offsets = np.arange(lengths.max())
            inside = offsets < lengths[:, None]
            entries = np.where(inside, first[:, None] + offsets, 0)
            products = dense[need[:, None], column[texts.indices[entries]]] * texts.data[entries]
            products[~inside] = 0.0
            text[start : start + len(need)] = np.cumsum(products, axis=1, dtype=np.float32)[:, -1]
        named = self._named(block, index)
        if named.nnz and len(rows):
            text += np.float32(self.name_weight) * np.asarray(named[rows, columns]).ravel().astype(np.float32)
        np.clip(text, 0.0, 1.0, out=text)
        scores = np.asarray(text_weight * text, dtype=np.float64)
        if block.tag_matrix.nnz and len(rows):
            overlap = np.asarray(block.tag_matrix[rows].multiply(index.tags[columns]).sum(axis=1)).ravel()
            added = (overlap != 0) & (block.n_tags[rows] > 0)
            scores[added] += self.tag_weight * (overlap[added] / block.n_tags[rows[added]])
        if block.county_matrix.nnz and len(rows):
            shared = np.asarray(block.county_matrix[rows].multiply(index.counties[columns]).sum(axis=1)).ravel()
            scores[shared > 0] += self.region_weight * 1.0
        return np.round(scores, SCORE_DECIMALS)

    def _exclude(self, scores: np.ndarray, block: NeedBlock, index: TypeIndex, county: str | None) -> None:
        """Set ``scores`` (n_needs, n_targets) to -inf where the target may not serve the need.

        The hard rules (:func:`matcher.rules.eligible`: unavailable, fully booked, of the need's own
        organisation), and the county filter: targets not serving ``county``.
        """
        allowed = eligible(index.available, index.free, index.org_ids, block.org_ids)
        if county:
            column = self.county_vocabulary_.get(normalise(county))
            serves = index.serves_all.copy()
            if column is not None:
                serves |= index.counties[:, column].toarray().ravel() > 0
            allowed &= serves[None, :]
        np.putmask(scores, ~allowed, -np.inf)

    def _combine(self, text: np.ndarray, tags: np.ndarray, region: np.ndarray) -> np.ndarray:
        text_weight = 1.0 - self.tag_weight - self.region_weight
        scores = text_weight * text + self.tag_weight * tags + self.region_weight * region
        return np.round(scores, SCORE_DECIMALS)

    def _similarities(
        self,
        block: NeedBlock,
        need: int,
        target_type: str,
        targets: np.ndarray,
        components: tuple[np.ndarray, ...],
    ) -> dict[str, np.ndarray]:
        """The re-ranker's similarity features of one need with target rows ``targets``.

        ``text``, ``tags`` and ``region`` are the score's components; ``text_share`` is ``text`` over the
        need's best ``text`` among all targets of the type (how close to the best this one is, comparable
        between short and long needs); ``char`` and ``word`` the cosine of
        each block and ``semantic`` the latent cosine, on the target's best-matching text; ``jaccard``
        the tag Jaccard index. Each is an array of shape (len(targets),).
        """
        index = self.index_[target_type]
        text, tags, region = (c[need, targets] for c in components)
        if index.starts is None:
            rows, owner = targets, np.arange(len(targets))
        else:
            ends = np.r_[index.starts[1:], len(index.owners)]
            counts = ends[targets] - index.starts[targets]
            owner = np.repeat(np.arange(len(targets)), counts)
            rows = index.starts[targets][owner] + (np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts))
        query = block.vectors[need].toarray().ravel()
        chars = query * self.char_columns_
        texts = index.texts[rows]
        char_dot = texts @ chars
        word_dot = texts @ (query - chars)
        shared_words = (texts != 0).astype(np.float32) @ ((query != 0) * self.evidence_columns_)
        semantic = np.zeros(len(rows))
        if index.latent is not None and block.latent is not None:
            semantic = index.latent[rows] @ block.latent[need]
        best = np.zeros(len(targets), dtype=int)  # per target, its text row with the highest fused similarity
        fused = (1.0 - self.semantic_weight) * (char_dot + word_dot) + self.semantic_weight * semantic
        order = np.lexsort((-fused, owner))
        first = np.r_[True, owner[order][1:] != owner[order][:-1]]
        best[owner[order][first]] = order[first]
        char_cosine, word_cosine = self._block_cosines(query, chars, texts, char_dot, word_dot)
        n_tags_need = block.n_tags[need]
        overlap = tags * n_tags_need
        union = n_tags_need + index.n_tags[targets] - overlap
        top = float(components[0][need].max()) if components[0].shape[1] else 0.0
        return {
            "text": text,
            "text_share": text / top if top > 0 else np.zeros(len(targets)),
            "char": char_cosine[best],
            "word": word_cosine[best],
            "semantic": np.clip(semantic[best], 0.0, 1.0),
            "tags": tags,
            "jaccard": np.divide(overlap, union, out=np.zeros(len(targets)), where=union > 0),
            "region": region,
            "words": np.log1p(shared_words[best]),
            "name": np.asarray(self._named(block, index)[need, targets].todense()).ravel(),
        }

    def _block_cosines(
        self, query: np.ndarray, chars: np.ndarray, texts: sp.csr_matrix, char_dot: np.ndarray, word_dot: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The cosine of the character block and of the word-level blocks (words and Latin-script words)
        of the need ``query`` with each row of ``texts``, from their dot products ``char_dot``, ``word_dot``.

        A vectoriser that scales every block by its fixed share (models saved before ``renormalise``)
        divides by the share, as it always did; otherwise each row's blocks carry its own shares, so each
        dot product is divided by the norms of the two parts.
        """
        weights = self.vectorizer_.weights_
        if not getattr(self.vectorizer_, "renormalise", False):
            zeros = np.zeros(texts.shape[0])
            return (
                char_dot / weights["char"] if "char" in weights else zeros,
                word_dot / weights["word"] if "word" in weights else zeros,
            )
        squares = np.asarray(texts.multiply(texts) @ self.char_columns_, dtype=np.float64).ravel()
        totals = np.asarray(texts.multiply(texts).sum(axis=1), dtype=np.float64).ravel()
        char_norms = np.sqrt(squares) * np.linalg.norm(chars)
        word_norms = np.sqrt(np.maximum(totals - squares, 0.0)) * np.linalg.norm(query - chars)
        return (
            np.clip(np.divide(char_dot, char_norms, out=np.zeros(len(squares)), where=char_norms > 0), 0.0, 1.0),
            np.clip(np.divide(word_dot, word_norms, out=np.zeros(len(squares)), where=word_norms > 0), 0.0, 1.0),
        )


def at_or_above_kth(
    scores: np.ndarray, k: int, floor: float, slack: np.ndarray | float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the scores above ``floor - slack`` and at or above their row's k-th best minus ``slack``.

    With no slack these hold every row's top ``k`` by :func:`matcher.matching.rank.top_k` (ties included); a
    row's k-th best counts the excluded scores too (-inf, or at most ``floor``), which is then no
    bound. ``slack`` is a number or one per row.
    """
    slack = np.broadcast_to(np.asarray(slack, dtype=np.float64), (scores.shape[0],))
    above = scores > (floor - slack)[:, None]
    n_targets = scores.shape[1]
    if n_targets > k:
        kth = np.partition(scores, n_targets - k, axis=1)[:, n_targets - k]
        above &= scores >= (kth - slack)[:, None]
    return np.nonzero(above)


def near_the_best(
    scores: np.ndarray, k: int, floor: float, slack: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the scores within each row's ``slack`` of a lower bound of its k-th best.

    The bound is the k-th best of the maxima of about ``20 k`` column blocks: k blocks whose maxima
    are at least that value hold k scores at least that high, so it is never above the row's k-th
    best. Cheaper than a partition of every row, and as tight when the best k are in different
    blocks. Scores at most ``floor - slack`` are left out.
    """
    n_targets = scores.shape[1]
    above = scores > (floor - slack)[:, None]
    width = n_targets // (20 * k)
    if width >= 2:
        maxima = np.maximum.reduceat(scores, np.arange(0, n_targets, width), axis=1)
        kth = np.partition(maxima, maxima.shape[1] - k, axis=1)[:, maxima.shape[1] - k]
        above &= scores >= (kth - slack)[:, None]
    elif n_targets > k:
        kth = np.partition(scores, n_targets - k, axis=1)[:, n_targets - k]
        above &= scores >= (kth - slack)[:, None]
    return np.nonzero(above)


def check_needs(needs: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(needs, pd.DataFrame):
        raise TypeError(f"expected a DataFrame of needs, not {type(needs).__name__}")
    frame = needs.reset_index(drop=True).copy()
    for column in NEED_COLUMNS:
        if column not in frame.columns:  # no tags column: tags are inferred
            frame[column] = [[] for _ in range(len(frame))] if column == "counties" else None
    frame["text"] = frame["text"].fillna("").astype(str)
    frame["org_id"] = frame["org_id"].where(frame["org_id"].notna() & (frame["org_id"] != ""), None)
    return frame


def tags_absent(tags: object) -> bool:
    """Whether a need's ``tags`` are absent (None or NaN: infer them) rather than a list (use it)."""
    if tags is None:
        return True
    return not isinstance(tags, list | tuple | np.ndarray) and bool(pd.isna(tags))
