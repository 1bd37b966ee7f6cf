"""Explanations of a match: the matched terms with their spans, tags, region, the score's parts and,
for a re-ranked type, the factors that moved it.

:class:`ReasonsMixin` is a part of :class:`~matcher.matching.estimator.Matcher`; :func:`term_spans` finds
a term in a text (the service highlights a target's profile with it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from matcher.matching.judgments import FEATURE_LABELS as JUDGED_LABELS
from matcher.matching.rank import SCORE_DECIMALS
from matcher.matching.rerank import FEATURES, POSITION, feature_label
from matcher.matching.scoring import NeedBlock, Ranking
from matcher.text.normalise import normalise

__all__ = ["ReasonsMixin", "term_spans"]


class ReasonsMixin:
    """The reasons of :class:`~matcher.matching.estimator.Matcher`'s recommendations."""

    def _explain(
        self, block: NeedBlock, target_type: str, ranking: Ranking, position: int, components: tuple[np.ndarray, ...]
    ) -> dict[str, Any]:
        index = self.index_[target_type]
        target, score = int(ranking.rows[position]), float(ranking.scores[position])
        text, tags, region = (float(c[0, target]) for c in components)
        text_weight = 1.0 - self.tag_weight - self.region_weight
        rows = index.text_rows(target)
        row = rows[0] if len(rows) == 1 else rows[np.argmax(index.text_scores(block.vectors)[0, rows])]
        body, name = text, None
        named = self._named(block, index)
        if target in named.indices[named.indptr[0] : named.indptr[1]]:  # the need names the target: its part
            body = float(self._text_component(block, index, names=False)[0, target])
            name = index.name_index.spans(block.docs[0], target, block.org_names[0] if block.org_names else None)
        text_part = round(text_weight * text, SCORE_DECIMALS)
        body_part = round(text_weight * body, SCORE_DECIMALS)
        terms = self._terms(block, index.texts, row, text_weight * (1.0 - self.semantic_weight))
        if name is not None:
            terms = [{"term": name[0], "weight": round(text_part - body_part, SCORE_DECIMALS), "spans": name[1]}, *terms]
            terms = terms[: self.n_terms]
        reasons = {
            "terms": terms,
            "tags": [t for t in dict.fromkeys(block.tags[0]) if normalise(t) in index.tag_sets[target]],
            "region": {"match": bool(region > 0), "counties": block.counties[0]},
            "components": {
                "text": body_part,
                "tags": round(self.tag_weight * tags, SCORE_DECIMALS),
                "region": round(self.region_weight * region, SCORE_DECIMALS),
                "name": round(text_part - body_part, SCORE_DECIMALS),
            },
        }
        if ranking.effects is not None:
            reasons["rerank"] = self._rerank_reasons(ranking, position)
        return {"id": index.ids[target], "name": index.names[target], "score": score, "reasons": reasons}

    def _rerank_reasons(self, ranking: Ranking, position: int, n_features: int = 3) -> dict[str, Any]:
        """The factors that moved a re-ranked target's predicted acceptance most (position excluded).

        Each factor once: a kind's two columns (``kind:X`` and ``stage×X``) are one factor, 类型. Each
        carries its API name ``feature``, a Chinese ``label`` that describes the value (``地区不同`` when
        the counties differ), its ``value`` and its ``effect`` on the log-odds.
        """
        effects, values = ranking.effects[position], ranking.features[position]
        names = list(getattr(self.reranker_, "feature_names", FEATURES))
        factors: dict[str, list[float]] = {}  # feature -> [value, effect]
        for j, name in enumerate(names):
            if name == POSITION:
                continue
            if name.startswith(("kind:", "stage×")):
                kind = name.split(":", 1)[1] if name.startswith("kind:") else name.split("×", 1)[1]
                if not values[names.index(f"kind:{kind}")]:
                    continue
                entry = factors.setdefault(f"kind:{kind}", [1.0, 0.0])
                entry[1] += float(effects[j])
                continue
            factors[name] = [float(values[j]), float(effects[j])]
        order = sorted(factors, key=lambda name: (-abs(factors[name][1]), names.index(name)))
        listed = [
            {
                "feature": name,
                "label": JUDGED_LABELS.get(name) or feature_label(name, factors[name][0]),
                "value": round(factors[name][0], 4),
                "effect": round(factors[name][1], 4),
            }
            for name in order[:n_features]
            if abs(factors[name][1]) >= 1e-4
        ]
        return {"model": self.reranker_.method, "base": float(ranking.base[position]), "features": listed}

    def _terms(self, block: NeedBlock, texts: sp.csr_matrix, row: int, scale: float) -> list[dict[str, Any]]:
        """The matched words that contributed most to the text score of text ``row``, with their spans.

        Only whole words of the need (its tokens, with their offsets from the tokeniser) of two or more
        characters that the profile shares, and that are not generic (found in more than
        :data:`GENERIC_SHARE` of the fitted profiles), are shown: the character n-grams that lie inside
        such a word add to its weight; n-grams across two words (``务中``), single characters and the
        Latin letter pairs of ``swot`` still score but are never shown.
        """
        need = block.vectors
        start, end = texts.indptr[row], texts.indptr[row + 1]
        shared, at_need, at_text = np.intersect1d(
            need.indices, texts.indices[start:end], assume_unique=True, return_indices=True
        )
        values = need.data[at_need].astype(float) * texts.data[start:end][at_text] * scale
        terms = self.feature_terms_[shared]
        is_word = self.feature_is_word_[shared]
        shown = self.evidence_columns_[shared] > 0
        words = {w: v for w, v, ok in zip(terms[is_word], values[is_word], shown[is_word], strict=True) if ok}
        for gram, value in zip(terms[~is_word], values[~is_word], strict=True):
            holder = max((w for w in words if len(gram) > 1 and gram in w), key=len, default=None)
            if holder is not None:
                words[holder] += value
        best = sorted(words.items(), key=lambda item: (-item[1], item[0]))[: self.n_terms]
        surfaces = self._surfaces(block)
        return [
            {"term": shown, "weight": round(float(weight), SCORE_DECIMALS), "spans": spans}
            for term, weight in best
            if weight > 0
            for shown, spans in [surfaces.get(term) or (term, term_spans(block.docs[0], term))]
        ]

    def _surfaces(self, block: NeedBlock) -> dict[str, tuple[str, list[list[int]]]]:
        """Each feature term of the block's first need -> (the term as first written, the spans where it
        is written so), from the tokeniser's offsets: a stem (``analys``) shows as the word written
        (``analysing``), never searched for; each span indexes the shown word (the API's contract)."""
        if block.surfaces is None:
            block.surfaces = {}
            for feature, found in sorted(self.vectorizer_.surface_terms(block.docs[0]).items()):
                shown, spans = block.surfaces.setdefault(self.feature_terms_[feature], (found[0][0], []))
                spans.extend(
                    [start, end] for surface, start, end in found if surface == shown and [start, end] not in spans
                )
            for _, spans in block.surfaces.values():
                spans.sort()
        return block.surfaces


def term_spans(doc: str, term: str) -> list[list[int]]:
    """Non-overlapping ``[start, end)`` spans of ``term`` in ``doc``."""
    spans, start = [], doc.find(term)
    while start >= 0:
        spans.append([start, start + len(term)])
        start = doc.find(term, start + len(term))
    return spans
