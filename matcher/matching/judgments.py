"""Learning from labelled judgments: the judgments file, generic pair features and :class:`JudgedReranker`.

Analysts often hold judged (need, target) pairs: a past round of expert ratings, coordinators'
gradings, a benchmark. ``matcher train --judgments FILE`` (see :func:`matcher.jobs.training.train_files`)
fits the matcher on the target files and then this re-ranker on the judgments, graded by
:func:`matcher.matching.grades.grade`.

Features are generic, defined by the file contract and the matcher, never by one data set:

* the matcher's similarities (:data:`matcher.matching.rerank.SIMILARITIES`) and the base score;
* lexical overlap of the normalised texts (:func:`overlap_features`): the share of the need's
  character 1-, 2- and 3-grams found in the target, idf-weighted cover, containment, the longest
  common substring over each length, the share of the target's 2-grams found in the need;
* lengths of both texts;
* the candidate's standing among its need's candidates (:func:`standing_features`): the ratio and the
  gap to the need's best base score, the log of its rank by base score, and the gaps to the best cover.

The model is a gradient-boosted regression of the grade, monotone increasing in every similarity of
the matcher and in the base score (more evidence never lowers a candidate's grade; with
``monotone="all"`` also in every cover, and decreasing in every gap and in the rank); its prediction is mapped by a logistic calibration
(fitted on out-of-fold predictions, grouped by need) to the served score: **the probability that the
pair is relevant** (grade >= :data:`matcher.matching.grades.RELEVANT`), a value in [0, 1]. The matcher then caps
scores to the evidence (:func:`matcher.matching.rerank.cap_to_evidence`) as for the decisions' re-ranker.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from difflib import SequenceMatcher
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from matcher.inputs.cells import TARGET_TYPE_WORDS, aliases_of, cell_at, cell_key, cell_text
from matcher.inputs.files import Problem, TableError, read_rows
from matcher.inputs.library import TARGET_TYPES
from matcher.matching import grades
from matcher.matching.rerank import SIMILARITIES

if TYPE_CHECKING:
    from matcher.matching.estimator import Matcher

logger = logging.getLogger(__name__)

__all__ = [
    "JUDGED_FEATURES",
    "JudgedReranker",
    "candidate_frame",
    "gram_idf",
    "overlap_features",
    "read_judgments",
    "standing_features",
    "target_idf",
]

OVERLAP_FEATURES = (
    "cover1",
    "cover2",
    "cover3",
    "contained",
    "target_cover2",
    "idf_cover",
    "common_need",
    "common_target",
)
LENGTH_FEATURES = ("need_length", "target_length")
STANDING_FEATURES = ("score_ratio", "score_gap", "log_rank", "cover2_gap", "idf_cover_gap", "common_gap")
JUDGED_FEATURES = (*SIMILARITIES, "base", *OVERLAP_FEATURES, *LENGTH_FEATURES, *STANDING_FEATURES)
#: +1: more never lowers the score; -1: more never raises it; 0: free (the lengths).
MONOTONE = {
    **dict.fromkeys((*SIMILARITIES, "base", *OVERLAP_FEATURES, "score_ratio"), 1),
    **dict.fromkeys(LENGTH_FEATURES, 0),
    **dict.fromkeys(("score_gap", "log_rank", "cover2_gap", "idf_cover_gap", "common_gap"), -1),
}
#: Characters of each text the longest-common-substring feature looks at (bounds its cost on long profiles).
COMMON_CHARS = 400
FEATURE_LABELS = {
    "base": "基础得分",
    "cover1": "需求字覆盖",
    "cover2": "需求双字覆盖",
    "cover3": "需求三字覆盖",
    "contained": "需求全文出现",
    "target_cover2": "档案双字覆盖",
    "idf_cover": "加权覆盖",
    "common_need": "最长公共片段",
    "common_target": "最长公共片段占档案",
    "need_length": "需求长度",
    "target_length": "档案长度",
    "score_ratio": "相对最佳得分",
    "score_gap": "与最佳得分差距",
    "log_rank": "基础排名",
    "cover2_gap": "覆盖差距",
    "idf_cover_gap": "加权覆盖差距",
    "common_gap": "公共片段差距",
}

# ------------------------------------------------------------------------------ the file
_FIELDS = ("need_id", "target_type", "target_id", "grade")



def read_judgments(
    path: str | os.PathLike[str], *, needs: Iterable[str], targets: Mapping[str, Iterable[str]]
) -> pd.DataFrame:
    """Read a judgments file (CSV, JSONL or XLSX, the rules of :func:`matcher.inputs.files.read_rows`).

    Columns ``need_id, target_type, target_id, grade`` (``expert_id`` and ``relevance`` are aliases;
    Chinese headers 需求编号, 目标类型, 目标编号/专家编号, 评分/相关度); ``target_type`` may be
    omitted when ``targets`` holds only experts. ``grade`` is a number (higher is better) or
    ``accepted``/``rejected``, graded by :func:`matcher.matching.grades.grade`.

    Returns a frame ``need_id, target_type, target_id, grade, row``.

    Raises
    ------
    TableError
        Naming the file, the row and the column: a missing column, an unknown need or target, a bad
        grade, a pair judged twice.
    """
    file = os.fspath(path)
    headers, rows = read_rows(file)
    keys = {cell_key(h): i for i, h in enumerate(headers)}
    mapping = {name: next((keys[a] for a in aliases_of("judgments", name) if a in keys), None) for name in _FIELDS}
    known = {t: set(ids) for t, ids in targets.items()}
    for name in ("need_id", "target_id", "grade"):
        if mapping[name] is None:
            also = ", ".join(f"'{a}'" for a in aliases_of("judgments", name)[1:])
            raise TableError([Problem(file, None, name, f"missing column '{name}' (also accepted: {also})")])
    if mapping["target_type"] is None and set(known) - {"expert"}:
        raise TableError(
            [Problem(file, None, "target_type", "missing column 'target_type' (needed when resources or projects are given)")]
        )
    header = {name: headers[i] for name, i in mapping.items() if i is not None}
    need_ids = set(needs)
    seen: dict[tuple[str, str, str], int] = {}
    records = []
    for number, cells in rows:
        values = {name: cell_at(cells, i) for name, i in mapping.items()}
        if all(not cell_text(v).strip() for v in values.values()):
            continue

        def fail(name: str, message: str, row: int = number) -> None:
            raise TableError([Problem(file, row, header.get(name, name), message)])

        need = cell_text(values["need_id"]).strip()
        if not need:
            fail("need_id", "empty need id")
        if need not in need_ids:
            fail("need_id", f"unknown need '{need}' (not in the needs file)")
        target_type = "expert"
        if mapping["target_type"] is not None:
            word = cell_key(cell_text(values["target_type"]).strip())
            target_type = TARGET_TYPE_WORDS.get(word, word)
            if target_type not in TARGET_TYPES:
                fail("target_type", f"target type must be expert, resource or project, not '{cell_text(values['target_type']).strip()}'")
        target = cell_text(values["target_id"]).strip()
        if not target:
            fail("target_id", "empty target id")
        if target_type not in known:
            fail("target_type", f"no {target_type} file was given for target '{target}'")
        if target not in known[target_type]:
            fail("target_id", f"unknown {target_type} '{target}' (not in the {target_type}s file)")
        raw = values["grade"]
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            fail("grade", "empty grade")
        try:
            value = grades.grade("judgment", raw)
        except grades.GradeError as error:
            fail("grade", str(error))
        pair = (need, target_type, target)
        if pair in seen:
            fail("target_id", f"need '{need}' and {target_type} '{target}' are judged twice (first in row {seen[pair]})")
        seen[pair] = number
        records.append({"need_id": need, "target_type": target_type, "target_id": target, "grade": value, "row": number})
    if not records:
        raise TableError([Problem(file, None, None, "no judgments")])
    return pd.DataFrame(records, columns=["need_id", "target_type", "target_id", "grade", "row"])


# -------------------------------------------------------------------------- features
def gram_idf(documents: Iterable[str]) -> dict[str, float]:
    """Smoothed idf, ``ln((n + 1) / (df + 1)) + 1``, of the character 1- and 2-grams of ``documents``;
    the key ``""`` holds the idf of a gram that occurs nowhere."""
    df: Counter[str] = Counter()
    n = 0
    for doc in documents:
        n += 1
        df.update({doc[i : i + k] for k in (1, 2) for i in range(len(doc) - k + 1)})
    return {gram: math.log((n + 1) / (count + 1)) + 1.0 for gram, count in df.items()} | {"": math.log(n + 1) + 1.0}


def overlap_features(needs: Sequence[str], targets: Sequence[str], idf: Mapping[str, float] | None = None) -> np.ndarray:
    """Lexical overlap and lengths of (need, target) normalised text pairs: (n_pairs, overlap + length features).

    The share of the need's character 1-, 2- and 3-grams found in the target, whether the whole need
    occurs in it, the share of the target's 2-grams found in the need, the idf-weighted share of the
    need's 1- and 2-grams found in the target (unseen grams weigh as a gram seen nowhere), the longest
    common substring (of the first :data:`COMMON_CHARS` characters) over each text's length, and both
    lengths (log of 1 + characters).
    """
    idf = idf or {}
    unseen = idf.get("", 1.0)
    rows = np.zeros((len(needs), len(OVERLAP_FEATURES) + len(LENGTH_FEATURES)))
    seen: dict[str, tuple[list[set[str]], dict[str, float], float, SequenceMatcher]] = {}
    for r, (need, target) in enumerate(zip(needs, targets, strict=True)):
        if need not in seen:  # what depends on the need alone, once per need (serving passes one need)
            grams = [{need[i : i + n] for i in range(len(need) - n + 1)} for n in (1, 2, 3)]
            weights = {g: idf.get(g, unseen) for k in (1, 2) for g in (need[i : i + k] for i in range(len(need) - k + 1))}
            matcher = SequenceMatcher(None, autojunk=False)
            matcher.set_seq2(need[:COMMON_CHARS])  # its index is built once; the targets are the first text
            seen[need] = (grams, weights, sum(weights.values()), matcher)
        grams, weights, total, matcher = seen[need]
        row = rows[r]
        for j in range(3):
            row[j] = sum(g in target for g in grams[j]) / len(grams[j]) if grams[j] else 0.0
        row[3] = float(bool(need) and need in target)
        target_grams = {target[i : i + 2] for i in range(len(target) - 1)}
        row[4] = sum(g in need for g in target_grams) / len(target_grams) if target_grams else 0.0
        row[5] = sum(w for g, w in weights.items() if g in target) / total if total else 0.0
        a, b = need[:COMMON_CHARS], target[:COMMON_CHARS]
        matcher.set_seq1(b)
        common = matcher.find_longest_match(0, len(b), 0, len(a)).size  # the longest common substring
        row[6] = common / len(a) if a else 0.0
        row[7] = common / len(b) if b else 0.0
        row[8] = math.log1p(len(need))
        row[9] = math.log1p(len(target))
    return rows


def standing_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Each candidate against its need's retrieved candidates (``need_id``, ``base``, ``retrieved``,
    ``cover2``, ``idf_cover``, ``common_need``): the ratio and gap to the best base score, log(1 + rank
    by base score), and the gaps to the best ``cover2``, ``idf_cover`` and ``common_need``. Only
    retrieved candidates set the best and the ranks; the others (judged pairs the retrieval missed,
    in training) rank after every retrieved one."""
    retrieved = frame["retrieved"].to_numpy(dtype=bool)
    need = frame["need_id"]

    def best(column: str) -> pd.Series:
        return frame[column].where(retrieved).groupby(need).transform("max").fillna(frame[column])

    top = best("base")
    rank = frame["base"].where(retrieved).groupby(need).rank(ascending=False, method="first")
    rank = rank.fillna(pd.Series(retrieved, index=frame.index).groupby(need).transform("sum") + 1)
    return pd.DataFrame(
        {
            "score_ratio": frame["base"] / top.where(top > 0, 1.0),
            "score_gap": top - frame["base"],
            "log_rank": np.log1p(rank),
            "cover2_gap": best("cover2") - frame["cover2"],
            "idf_cover_gap": best("idf_cover") - frame["idf_cover"],
            "common_gap": best("common_need") - frame["common_need"],
        },
        index=frame.index,
    )


def _standing_one(base: np.ndarray, cover2: np.ndarray, idf_cover: np.ndarray, common: np.ndarray) -> np.ndarray:
    """:func:`standing_features` of one need's candidates, all retrieved: (n, 6), the same values."""
    top = base.max() if len(base) else 0.0
    rank = np.empty(len(base))
    rank[np.argsort(-base, kind="stable")] = np.arange(1, len(base) + 1)
    return np.column_stack(
        [
            base / (top if top > 0 else 1.0),
            top - base,
            np.log1p(rank),
            cover2.max(initial=0.0) - cover2 if len(base) else cover2,
            idf_cover.max(initial=0.0) - idf_cover if len(base) else idf_cover,
            common.max(initial=0.0) - common if len(base) else common,
        ]
    )


def pair_frame(
    need_ids: Sequence[str],
    need_docs: Sequence[str],
    target_docs: Sequence[str],
    similarities: Mapping[str, np.ndarray] | pd.DataFrame,
    base: np.ndarray,
    retrieved: np.ndarray,
    idf: Mapping[str, float],
) -> pd.DataFrame:
    """The :data:`JUDGED_FEATURES` of candidate pairs (one row each, grouped by ``need_ids``)."""
    frame = pd.DataFrame({name: np.asarray(similarities[name], dtype=float) for name in SIMILARITIES})
    frame["base"] = np.asarray(base, dtype=float)
    overlap = overlap_features(need_docs, target_docs, idf)
    frame[list(OVERLAP_FEATURES + LENGTH_FEATURES)] = overlap
    frame["need_id"] = list(need_ids)
    frame["retrieved"] = np.asarray(retrieved, dtype=bool)
    frame[list(STANDING_FEATURES)] = standing_features(frame).to_numpy()
    return frame


def target_idf(model: Matcher) -> dict[str, float]:
    """:func:`gram_idf` over the normalised texts of every target the matcher holds."""
    return gram_idf(doc for index in model.index_.values() for doc in index.docs)


def candidate_frame(
    model: Matcher, needs: pd.DataFrame, judgments: pd.DataFrame | None, depth: int, idf: Mapping[str, float]
) -> pd.DataFrame:
    """Each need's ``depth`` best targets of each type by the base score, plus its judged targets, with
    :data:`JUDGED_FEATURES`, ``grade`` (0 for unjudged candidates) and ``judged``.

    The base score is the matcher's weighted sum with its hard rules off (:meth:`Matcher.score`);
    targets scoring 0 are not candidates (the matcher never serves them).
    """
    judged = judgments if judgments is not None else pd.DataFrame(columns=["need_id", "target_type", "target_id", "grade"])
    parts = []
    needs = needs.reset_index(drop=True)
    docs = dict(zip(needs["id"], model.vectorizer_.preprocess(needs["text"].astype(str).tolist()), strict=True))
    for target_type in model.target_types_:
        index = model.index_[target_type]
        column = {t: j for j, t in enumerate(index.ids)}
        target_docs = [index.docs[i] for i in model._first_rows(target_type, np.arange(len(index.ids)))]
        wanted = judged.loc[judged["target_type"] == target_type]
        grade_of = {(n, t): g for n, t, g in zip(wanted["need_id"], wanted["target_id"], wanted["grade"], strict=True)}
        by_need = wanted.groupby("need_id")["target_id"].apply(list).to_dict()
        for start in range(0, len(needs), 200):
            chunk = needs.iloc[start : start + 200]
            scores = model.score(chunk, target_type)
            rows = []
            for r, need_id in enumerate(chunk["id"]):
                row = scores[r]
                positive = np.flatnonzero(row > 0)
                top = positive[np.argsort(-row[positive], kind="stable")[:depth]]
                extra = [column[t] for t in by_need.get(need_id, []) if t in column and column[t] not in set(top)]
                for j in top:
                    rows.append((need_id, int(j), True, row[j]))
                for j in extra:
                    rows.append((need_id, int(j), False, row[j]))
            if not rows:
                continue
            pairs = pd.DataFrame(rows, columns=["need_id", "column", "retrieved", "base"])
            pairs["target_type"] = target_type
            pairs["target_id"] = index.ids[pairs["column"].to_numpy()]
            similarities = model.pair_features(chunk, pairs[["need_id", "target_type", "target_id"]])
            features = pair_frame(
                pairs["need_id"].tolist(),
                [docs[n] for n in pairs["need_id"]],
                [target_docs[j] for j in pairs["column"]],
                similarities,
                pairs["base"].to_numpy(),
                pairs["retrieved"].to_numpy(),
                idf,
            )
            features["target_type"] = target_type
            features["target_id"] = pairs["target_id"].to_numpy()
            keys = list(zip(pairs["need_id"], pairs["target_id"], strict=True))
            features["grade"] = [grade_of.get(p, 0.0) for p in keys]
            features["judged"] = [p in grade_of for p in keys]
            parts.append(features)
    if not parts:
        return pd.DataFrame(columns=[*JUDGED_FEATURES, "need_id", "target_type", "target_id", "grade", "judged", "retrieved"])
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------- the model
@cache
def _threadpools() -> ThreadpoolController:
    """The process's thread pools, found once (finding them reads the loaded libraries: ~2 ms a time)."""
    return ThreadpoolController()


class JudgedReranker(BaseEstimator):
    """Re-rank candidates by the probability that they are relevant, learnt from graded judgments.

    One gradient-boosted regression of the grade per target type, over :data:`JUDGED_FEATURES`, with
    the monotonic constraints of :data:`MONOTONE`; a logistic calibration, fitted on out-of-fold
    predictions (``calibration_folds`` folds grouped by need), maps its prediction to the probability
    that the pair's grade is at least :data:`matcher.matching.grades.RELEVANT`.

    Parameters
    ----------
    learning_rate, max_iter, max_leaf_nodes, min_samples_leaf, l2_regularization :
        The gradient boosting's parameters; a leaf holds at least ``min_samples_leaf`` candidates, or
        a tenth of the training candidates when they are fewer than ten times that. Larger, smoother
        leaves (200, l2 1.0) read +0.001 to +0.003 nDCG@10 and +0.02 to +0.03 PAIR over 40 and 0 through
        the product path on the zh dev split (two fold seeds; docs/quality.md).
    depth : int
        Candidates per need and type in training: the base score's best ``depth``, plus the judged
        ones (unjudged candidates count as grade 0). Serving re-scores the matcher's ``rerank_depth``.
    min_judgments, min_relevant : int
        The least judged pairs, and relevant ones, a target type needs to be re-ranked.
    calibration_folds : int
        Folds of the out-of-fold calibration (0: calibrate on the training predictions).
    evidence_margin : float
        As :class:`matcher.matching.rerank.Reranker`: the re-ranker never lifts a candidate above one with a
        base score more than this higher (nor one without evidence above one with it). Judgments are
        labels of relevance, not simulated decisions, so the default lets it reorder the whole list.
    monotone : {"similarities", "all"}
        Constrain only the matcher's similarities and the base score (the default: the overlap and
        standing features are free), or every feature of :data:`MONOTONE` (``all``). On the zh dev
        split, cross-validated through ``train --judgments`` / ``batch --model`` in one run,
        ``similarities`` read nDCG@10 0.806 / PAIR 1.343 against 0.793 / 1.315 for ``all``.
    unjudged_weight : float
        The weight of a candidate nobody judged (a grade 0 by assumption) in the regression, against 1 for a
        judged pair. The calibration counts every candidate alike: the served score stays the
        probability of relevance among the candidates as retrieved.
    random_state : int

    Attributes
    ----------
    models_ : dict of str to HistGradientBoostingRegressor
    calibration_ : dict of str to (float, float)
        Slope and intercept of the logistic calibration of each type.
    means_ : dict of str to array of shape (n_features,)
    idf_ : dict of str to float
        :func:`gram_idf` of the targets' texts at fitting time.
    n_judgments_ : dict of str to int
    """

    method = "judgments"

    def __init__(
        self,
        *,
        learning_rate: float = 0.05,
        max_iter: int = 300,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 200,
        l2_regularization: float = 1.0,
        depth: int = 100,
        min_judgments: int = 30,
        min_relevant: int = 5,
        calibration_folds: int = 3,
        evidence_margin: float = 1.0,
        monotone: str = "similarities",
        unjudged_weight: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.depth = depth
        self.min_judgments = min_judgments
        self.min_relevant = min_relevant
        self.calibration_folds = calibration_folds
        self.evidence_margin = evidence_margin
        self.monotone = monotone
        self.unjudged_weight = unjudged_weight
        self.random_state = random_state

    feature_names = JUDGED_FEATURES

    def _regressor(self, n_rows: int) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=max(1, min(self.min_samples_leaf, n_rows // 10)),
            l2_regularization=self.l2_regularization,
            monotonic_cst=[self._constraint(name) for name in JUDGED_FEATURES],
            early_stopping=False,
            random_state=self.random_state,
        )

    def _constraint(self, name: str) -> int:
        if self.monotone == "all" or name in (*SIMILARITIES, "base"):
            return MONOTONE[name]
        return 0

    def fit(self, X: pd.DataFrame, y: np.ndarray, *, idf: Mapping[str, float] | None = None) -> JudgedReranker:
        """Fit on a :func:`candidate_frame` ``X`` (``target_type``, ``need_id``, features) and grades ``y``."""
        y = np.asarray(y, dtype=float)
        self.models_, self.calibration_, self.means_, self.n_judgments_ = {}, {}, {}, {}
        self.idf_ = dict(idf or {})
        for target_type in sorted(set(X["target_type"])) if len(X) else []:
            mask = (X["target_type"] == target_type).to_numpy()
            labels, groups = y[mask], X.loc[mask, "need_id"].to_numpy()
            self.n_judgments_[target_type] = int(mask.sum())
            relevant = labels >= grades.RELEVANT
            if mask.sum() < self.min_judgments or relevant.sum() < self.min_relevant or relevant.all():
                logger.info("%s: %d pairs, %d relevant: too few to re-rank", target_type, mask.sum(), relevant.sum())
                continue
            matrix = X.loc[mask, list(JUDGED_FEATURES)].to_numpy(dtype=float)
            weights = None  # the regressor's own path when every pair weighs the same
            if self.unjudged_weight != 1.0 and "judged" in X:
                weights = np.where(X.loc[mask, "judged"].to_numpy(dtype=bool), 1.0, self.unjudged_weight)
            self.means_[target_type] = matrix.mean(axis=0)
            predicted = np.zeros(len(labels))
            folds = min(self.calibration_folds, len(set(groups)))
            if folds >= 2:
                for train, test in GroupKFold(n_splits=folds).split(matrix, labels, groups):
                    part = None if weights is None else weights[train]
                    fitted = self._regressor(len(train)).fit(matrix[train], labels[train], sample_weight=part)
                    predicted[test] = fitted.predict(matrix[test])
            model = self._regressor(len(labels)).fit(matrix, labels, sample_weight=weights)
            if folds < 2:
                predicted = model.predict(matrix)
            calibration = LogisticRegression(C=1e4, max_iter=1000).fit(predicted.reshape(-1, 1), relevant.astype(int))
            slope = float(calibration.coef_[0, 0])
            if slope <= 0:
                logger.info("%s: the re-ranker's grades do not rise with relevance; base score kept", target_type)
                continue
            self.models_[target_type] = model
            self.calibration_[target_type] = (slope, float(calibration.intercept_[0]))
        return self

    @property
    def target_types_(self) -> tuple[str, ...]:
        """The target types this re-ranker scores."""
        check_is_fitted(self, "models_")
        return tuple(self.models_)

    def _predict(self, target_type: str, matrix: np.ndarray) -> np.ndarray:
        # one OpenMP thread: on a few hundred rows the per-tree thread start-up costs far more than it
        # saves, and on a busy machine it made one need's prediction 20 times slower
        with _threadpools().limit(limits=1, user_api="openmp"):
            return self.models_[target_type].predict(matrix)

    def _logits(self, target_type: str, matrix: np.ndarray) -> np.ndarray:
        slope, intercept = self.calibration_[target_type]
        return slope * self._predict(target_type, matrix) + intercept

    def predict_grade(self, target_type: str, matrix: np.ndarray) -> np.ndarray:
        """The predicted grade (0-4 scale) of rows of the :data:`JUDGED_FEATURES` matrix."""
        check_is_fitted(self, "models_")
        return self._predict(target_type, matrix)

    def predict_proba(self, target_type: str, matrix: np.ndarray) -> np.ndarray:
        """The probability that each pair is relevant (grade >= :data:`matcher.matching.grades.RELEVANT`)."""
        check_is_fitted(self, "models_")
        return 1.0 / (1.0 + np.exp(-self._logits(target_type, matrix)))

    def contributions(self, target_type: str, matrix: np.ndarray) -> np.ndarray:
        """Each feature's effect on the calibrated log-odds: the change when it is set to its training mean."""
        check_is_fitted(self, "models_")
        means = self.means_[target_type]
        n, width = matrix.shape
        # the matrix, then one copy of it per feature with that feature at its mean: one prediction
        stacked = np.tile(matrix, (width + 1, 1))
        for j, mean in enumerate(means):
            stacked[(j + 1) * n : (j + 2) * n, j] = mean
        logits = self._logits(target_type, stacked).reshape(width + 1, n)
        return (logits[0] - logits[1:]).T

    def serving_matrix(
        self,
        matcher: Matcher,
        block: Any,
        need: int,
        target_type: str,
        rows: np.ndarray,
        base: np.ndarray,
        similarities: Mapping[str, np.ndarray],
    ) -> np.ndarray:
        """The :data:`JUDGED_FEATURES` of one need's candidates ``rows`` (all retrieved), as in training."""
        index = matcher.index_[target_type]
        target_docs = [index.docs[i] for i in matcher._first_rows(target_type, rows)]
        n = len(rows)
        matrix = np.zeros((n, len(JUDGED_FEATURES)))
        column = {name: j for j, name in enumerate(JUDGED_FEATURES)}
        for name in SIMILARITIES:
            matrix[:, column[name]] = similarities[name]
        base = np.asarray(base, dtype=float)
        matrix[:, column["base"]] = base
        overlap = overlap_features([block.docs[need]] * n, target_docs, self.idf_)
        names = (*OVERLAP_FEATURES, *LENGTH_FEATURES)
        matrix[:, [column[c] for c in names]] = overlap
        matrix[:, [column[c] for c in STANDING_FEATURES]] = _standing_one(
            base, *(overlap[:, names.index(c)] for c in ("cover2", "idf_cover", "common_need"))
        )
        return matrix

    def summary(self) -> dict[str, Any]:
        """What was fitted, for the model manifest."""
        check_is_fitted(self, "models_")
        return {
            "method": self.method,
            "reranked": sorted(self.models_),
            "weighted_sum": sorted(set(self.n_judgments_) - set(self.models_)),
            "pairs": dict(self.n_judgments_),
            "relevant_grade": grades.RELEVANT,
            "evidence_margin": self.evidence_margin,
            "calibration": {t: [round(a, 4), round(b, 4)] for t, (a, b) in self.calibration_.items()},
        }
