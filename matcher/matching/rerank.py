"""The learned re-ranker: features of (need, target) pairs and a model of coordinators' decisions.

Coordinators accept or reject the targets they are shown. For each decision this module builds, with
only what was known at that moment, the features of the pair:

* the similarities of the matcher (``text`` and ``text_share``, its share of the need's best text
  similarity, ``char``, ``word``, ``semantic``, the tag share ``tags``, tag ``jaccard``, ``region``),
  computed against the target's profile as it stood then;
* ``load_fraction`` (an expert's open engagements / capacity at decision time), the target's
  smoothed past ``acceptance_rate`` and ``log_shown``, and ``familiarity`` (mean past outcome rating);
* the need organisation's stage (初创期 -1, 成长期 0, 成熟期 +1) crossed with the target's kind
  (an expert's kind from the title, a resource's type, or ``project``);
* ``log_rank``, the log of the position it was shown at, to correct for position bias: every
  candidate is scored as if shown first.

The shown order was itself built from relevance, so rank and relevance are confounded: a model that
learns both at once credits rank with relevance and under-weights the observable relevance signals
(measured in docs/quality.md). By default (``position="residual"``) the re-ranker therefore learns
relevance without rank first, then calibrates its log-odds together with ``log_rank`` (position
explains only what relevance leaves); the score is the calibrated probability at rank 1.

:class:`Reranker` fits one scikit-learn classifier per target type on accepted (1) vs rejected (0)
decisions; its score is the predicted probability of acceptance at rank 1, comparable across needs.
A target type with too little feedback keeps the matcher's documented weighted sum.

The re-ranker refines the evidence, it never overturns it:

* **Evidence** is defined once, by :func:`evidence`: a matched word of two or more characters (what
  the reasons show), a matched tag, or a text similarity above :data:`EVIDENCE_TEXT`.
* The model is monotone in every similarity feature (a logistic regression whose similarity
  coefficients are bound to be non-negative, or gradient boosting with monotonic constraints and no
  interaction between similarity and history features): more evidence never lowers a score.
* The history and popularity features (load, past acceptance, times shown, ratings, kind and stage)
  move a candidate's log-odds by at most ``history_cap``. The matcher then caps each score
  (:func:`cap_to_evidence`): a candidate never scores above one whose base score is more than
  ``evidence_margin`` higher, nor, without evidence, above one with evidence. So the re-ranker reorders
  only candidates whose evidence is close, and ``rank`` still follows ``score``.
* The re-ranker serves a target type only when it passes :func:`gate` on held-back later decisions
  (see ``gate_``); otherwise the weighted sum serves, and the manifest says why.
* It trains on what it sees in service: every stored need also enters as free text, with the tags a
  classifier that never saw that need infers (:func:`matcher.matching.tagging.out_of_fold_tags`).
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from matcher.inputs.frames import needs_frame, targets_frame
from matcher.inputs.library import Libraries
from matcher.matching.tagging import out_of_fold_tags
from matcher.quality import metrics

if TYPE_CHECKING:
    from matcher.matching.estimator import Matcher

logger = logging.getLogger(__name__)

__all__ = [
    "EVIDENCE_TEXT",
    "FEATURES",
    "FEATURE_LABELS",
    "METHODS",
    "SIMILARITIES",
    "FeedbackContext",
    "MonotoneLogisticRegression",
    "Reranker",
    "cap_to_evidence",
    "decision_rows",
    "evidence",
    "expert_kind",
    "feature_label",
    "feedback_context",
    "fit_reranker",
    "training_frame",
]

SIMILARITIES = ("text", "text_share", "char", "word", "semantic", "tags", "jaccard", "region", "words", "name")
#: The text similarity above which a candidate has evidence even without a matched word or tag.
EVIDENCE_TEXT = 0.1
FEEDBACK = ("load_fraction", "acceptance_rate", "log_shown", "familiarity")
KINDS = (
    "academic",
    "practitioner",
    "specialist",
    "venue",
    "funding",
    "training_course",
    "simulation_lab",
    "manual",
    "supervision_service",
    "volunteer_team",
    "media_channel",
    "project",
)
POSITION = "log_rank"
FEATURES = (
    *SIMILARITIES,
    *FEEDBACK,
    *(f"kind:{k}" for k in KINDS),
    *(f"stage×{k}" for k in KINDS),
    POSITION,
)
METHODS = ("logistic", "gbdt", "none")
POSITIONS = ("residual", "feature")
STAGE_CODES = {"初创期": -1.0, "成长期": 0.0, "成熟期": 1.0}
ACADEMIC_TITLES = ("教授", "讲师", "研究员", "博士")
PRACTITIONER_TITLES = ("社工师", "督导", "站长", "项目主管", "机构负责人", "社工")
# A target's past acceptance rate is smoothed with a Beta(1, 4) prior: (accepted + 1) / (shown + 5).
PRIOR_ACCEPTED, PRIOR_SHOWN = 1.0, 5.0
SESSION_GAP = pd.Timedelta(hours=6)  # decisions of one need and type further apart start a new session


FEATURE_LABELS = {
    "text": "文本相似度",
    "text_share": "相对最佳文本相似度",
    "char": "字词相似度",
    "word": "词语相似度",
    "semantic": "语义相似度",
    "tags": "标签匹配",
    "jaccard": "标签重合度",
    "region": "地区",
    "words": "共同词语",
    "name": "名称匹配",
    "load_fraction": "当前负荷",
    "acceptance_rate": "以往接受率",
    "log_shown": "以往推荐次数",
    "familiarity": "以往合作评价",
    "log_rank": "展示位置",
}
KIND_LABELS = {
    "academic": "高校学者",
    "practitioner": "一线实务专家",
    "specialist": "专业人士",
    "venue": "场地",
    "funding": "资金",
    "training_course": "培训课程",
    "simulation_lab": "虚拟仿真实训",
    "manual": "操作手册",
    "supervision_service": "督导服务",
    "volunteer_team": "志愿者团队",
    "media_channel": "宣传渠道",
    "project": "示范项目",
}
STAGE_LABELS = {-1.0: "初创期", 0.0: "成长期", 1.0: "成熟期"}


def feature_label(feature: str, value: float) -> str:
    """A reader's Chinese label of a re-ranker factor with its value: ``地区不同``, ``类型：高校学者``."""
    if feature == "region":
        return "地区一致" if value > 0 else "地区不同"
    if feature.startswith(("kind:", "stage×")):
        kind = feature.split(":", 1)[1] if feature.startswith("kind:") else feature.split("×", 1)[1]
        return f"类型：{KIND_LABELS.get(kind, kind)}"
    return FEATURE_LABELS.get(feature, feature)


def evidence(similarities: dict[str, np.ndarray]) -> np.ndarray:
    """Whether each candidate has evidence: the one definition used by the rule, its test and the reasons.

    Evidence is a matched word of two or more characters (``words`` > 0, what the reasons list), a
    matched name (``name`` > 0, when the matcher scores names), a matched tag (``tags`` > 0), or a text
    similarity above :data:`EVIDENCE_TEXT`. Returns a boolean array of shape (n_candidates,).
    """
    found = (np.asarray(similarities["words"]) > 0) | (np.asarray(similarities["tags"]) > 0)
    found |= np.asarray(similarities["text"]) > EVIDENCE_TEXT
    if "name" in similarities:
        found |= np.asarray(similarities["name"]) > 0
    return found


def expert_kind(title: str) -> str:
    """An expert's kind from the title: ``academic`` (教授, 讲师, 研究员), ``practitioner`` (社工师, 督导,
    站长, 项目主管, 机构负责人) or ``specialist`` (lawyers, accountants, counsellors, doctors, ...)."""
    title = title or ""
    if any(word in title for word in ACADEMIC_TITLES):
        return "academic"
    if any(word in title for word in PRACTITIONER_TITLES):
        return "practitioner"
    return "specialist"


@dataclass
class FeedbackContext:
    """What the re-ranker knows about organisations and targets, as of one moment.

    ``org_stage``: organisation id -> stage; ``kinds``: (target_type, id) -> kind; ``stats``:
    (target_type, id) -> (shown, accepted, outcome rating sum, outcome rating count).
    """

    org_stage: dict[str, str] = field(default_factory=dict)
    kinds: dict[tuple[str, str], str] = field(default_factory=dict)
    stats: dict[tuple[str, str], tuple[float, float, float, float]] = field(default_factory=dict)


def _kinds(libs: Libraries) -> dict[tuple[str, str], str]:
    kinds = {("expert", i): expert_kind(t) for i, t in zip(libs.experts["id"], libs.experts["title"], strict=True)}
    kinds.update({("resource", i): t for i, t in zip(libs.resources["id"], libs.resources["type"], strict=True)})
    kinds.update({("project", i): "project" for i in libs.projects["id"]})
    return kinds


def _ordered(decisions: pd.DataFrame) -> pd.DataFrame:
    return decisions.sort_values(["decided_at", "id"], kind="stable").reset_index(drop=True)


def feedback_context(libs: Libraries, until: pd.Timestamp | None = None) -> FeedbackContext:
    """Organisation stages, target kinds and each target's decision history up to ``until`` (inclusive)."""
    decisions = libs.decisions if until is None else libs.decisions.loc[libs.decisions["decided_at"] <= until]
    stats: dict[tuple[str, str], list[float]] = {}
    for row in _ordered(decisions).itertuples(index=False):
        entry = stats.setdefault((row.target_type, row.target_id), [0.0, 0.0, 0.0, 0.0])
        if row.decision in ("accepted", "rejected"):
            entry[0] += 1
            entry[1] += row.decision == "accepted"
        elif row.decision == "completed" and not pd.isna(row.rating):
            entry[2] += float(row.rating)
            entry[3] += 1
    return FeedbackContext(
        org_stage=dict(zip(libs.organisations["id"], libs.organisations["stage"], strict=True)),
        kinds=_kinds(libs),
        stats={key: tuple(value) for key, value in stats.items()},
    )


def _history_features(shown: float, accepted: float, rating_sum: float, rating_count: float) -> list[float]:
    familiarity = ((rating_sum / rating_count) - 3.0) / 2.0 if rating_count else 0.0
    return [(accepted + PRIOR_ACCEPTED) / (shown + PRIOR_SHOWN), math.log1p(shown), familiarity]


def decision_rows(libs: Libraries, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """The accept/reject decisions up to ``until`` (inclusive), one row each, with time-aware features.

    Every feature of a row uses only decisions strictly before it: the target's open engagements then
    (``load``, ``load_fraction`` for experts), its past acceptance and outcome ratings. Decisions the
    matcher's hard rules make for it (an expert of the need's own organisation; a target fully booked
    at that moment) are dropped: the matcher never shows such targets, so there is nothing to learn.

    Returns
    -------
    DataFrame with ``id, need_id, target_type, target_id, decided_at, rank, session, accepted, gain``
    and the ``FEEDBACK`` columns, ``stage``, ``kind`` and ``log_rank``; ``gain`` is the pair's best
    known rating (the outcome rating when completed by ``until``; 3 when accepted without one; 0
    when rejected), used only to evaluate rankings.
    """
    decisions = libs.decisions if until is None else libs.decisions.loc[libs.decisions["decided_at"] <= until]
    decisions = _ordered(decisions)
    need_org = libs.needs.set_index("id")["org_id"].to_dict()
    org_stage = dict(zip(libs.organisations["id"], libs.organisations["stage"], strict=True))
    expert_org = dict(zip(libs.experts["id"], libs.experts["org_id"], strict=True))
    capacity = {("expert", i): c for i, c in zip(libs.experts["id"], libs.experts["capacity"], strict=True)}
    capacity.update(
        {("resource", i): q for i, q in zip(libs.resources["id"], libs.resources["quantity"], strict=True)}
    )
    kinds = _kinds(libs)
    stats: dict[tuple[str, str], list[float]] = {}
    load: dict[tuple[str, str], int] = {}
    open_pairs: set[tuple[str, str, str]] = set()
    outcome: dict[tuple[str, str, str], float] = {}
    rows = []
    for row in decisions.itertuples(index=False):
        key = (row.target_type, row.target_id)
        pair = (row.need_id, row.target_type, row.target_id)
        entry = stats.setdefault(key, [0.0, 0.0, 0.0, 0.0])
        if row.decision in ("accepted", "rejected"):
            org = need_org.get(row.need_id) or None
            cap = capacity.get(key)
            booked = cap is not None and not pd.isna(cap) and load.get(key, 0) >= int(cap)
            conflict = row.target_type == "expert" and org is not None and expert_org.get(row.target_id) == org
            if not (booked or conflict):
                fraction = load.get(key, 0) / int(cap) if row.target_type == "expert" and cap else 0.0
                rows.append(
                    {
                        "id": row.id,
                        "need_id": row.need_id,
                        "target_type": row.target_type,
                        "target_id": row.target_id,
                        "decided_at": row.decided_at,
                        "rank": int(row.rank),
                        "accepted": row.decision == "accepted",
                        "rating": float(row.rating) if not pd.isna(row.rating) else math.nan,
                        "load_fraction": fraction,
                        **dict(zip(FEEDBACK[1:], _history_features(*entry), strict=True)),
                        "stage": org_stage.get(org, ""),
                        "kind": kinds.get(key, ""),
                        "log_rank": math.log(int(row.rank)),
                    }
                )
            entry[0] += 1
            if row.decision == "accepted":
                entry[1] += 1
                open_pairs.add(pair)
                load[key] = load.get(key, 0) + 1
        elif row.decision in ("completed", "cancelled") and pair in open_pairs:
            open_pairs.discard(pair)
            load[key] -= 1
            if row.decision == "completed" and not pd.isna(row.rating):
                entry[2] += float(row.rating)
                entry[3] += 1
                outcome[pair] = float(row.rating)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    pairs = zip(frame["need_id"], frame["target_type"], frame["target_id"], strict=True)
    best = [outcome.get(p, math.nan) for p in pairs]
    gain = np.where(np.isnan(best), frame["rating"].fillna(3.0), best)
    frame["gain"] = np.where(frame["accepted"], gain, 0.0)
    group = frame.groupby(["need_id", "target_type"])["decided_at"]
    starts = (group.diff() > SESSION_GAP) | group.diff().isna()
    frame["session"] = starts.astype(int).groupby([frame["need_id"], frame["target_type"]]).cumsum()
    frame["session"] = frame["need_id"] + ":" + frame["target_type"] + ":" + frame["session"].astype(str)
    return frame


def _snapshot_starts(times: pd.Series, period: str) -> pd.DatetimeIndex:
    first, last = times.min().floor("D"), times.max()
    return pd.date_range(first, last + pd.Timedelta(period), freq=period)


def similarity_frame(
    matcher: Matcher,
    libs: Libraries,
    rows: pd.DataFrame,
    *,
    period: str = "90D",
    need_tags: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """The matcher's similarities of each decision's pair, against the profiles as they stood then.

    Profiles grow with the titles of the needs a target took on, so each decision is scored against
    the profiles of the start of its ``period`` (strictly before it): a pair's own acceptance never
    leaks into its features. The matcher's vocabulary and weights are its own (fit before calling).
    ``need_tags`` (need id -> tags) replaces the stored tags of those needs: the free-text form.

    Returns a frame of ``SIMILARITIES`` aligned with ``rows``.
    """
    result = pd.DataFrame(0.0, index=rows.index, columns=list(SIMILARITIES))
    if rows.empty:
        return result
    model = copy.deepcopy(matcher)
    starts = _snapshot_starts(rows["decided_at"], period)
    stamps = rows["decided_at"].dt.tz_convert(None).to_numpy() if rows["decided_at"].dt.tz else rows["decided_at"].to_numpy()
    bounds = starts.tz_convert(None).to_numpy() if starts.tz is not None else starts.to_numpy()
    period_of = np.searchsorted(bounds, stamps, side="right") - 1
    for number in np.unique(period_of):
        part = rows.loc[period_of == number]
        snapshot = targets_frame(libs, until=starts[number] - pd.Timedelta(microseconds=1))
        keys = set(zip(part["target_type"], part["target_id"], strict=True))
        wanted = [(t, i) in keys for t, i in zip(snapshot["target_type"], snapshot["id"], strict=True)]
        model.update_targets(snapshot.loc[wanted])
        needs = needs_frame(libs, list(dict.fromkeys(part["need_id"])))
        if need_tags is not None:
            needs["tags"] = [need_tags.get(i, []) for i in needs["id"]]
        result.loc[part.index] = model.pair_features(needs, part).to_numpy()
    return result


def training_frame(matcher: Matcher, libs: Libraries, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """:func:`decision_rows` up to ``until`` with the matcher's similarities: the re-ranker's training data.

    Every decision enters twice: as its stored need (``form`` ``stored``, its stored tags) and as the
    same need typed as free text (``form`` ``free_text``), with the tags a classifier that never saw
    that need infers (:func:`matcher.matching.tagging.out_of_fold_tags`; none when the matcher has no tagger).
    The re-ranker thus learns from tags as they are in service, so "no tags" never comes to mean
    "pick the popular one".
    """
    rows = decision_rows(libs, until)
    if rows.empty:
        return rows
    stored = pd.concat([rows, similarity_frame(matcher, libs, rows)], axis=1).assign(form="stored")
    need_ids = list(dict.fromkeys(rows["need_id"]))
    tagger = getattr(matcher, "tagger_", None)
    if tagger is None:
        inferred = {i: [] for i in need_ids}
    else:
        needs = needs_frame(libs, need_ids)
        found = out_of_fold_tags(tagger, needs["text"].tolist(), needs["tags"].tolist(), libs.taxonomy)
        inferred = dict(zip(need_ids, found, strict=True))
    free = pd.concat([rows, similarity_frame(matcher, libs, rows, need_tags=inferred)], axis=1).assign(form="free_text")
    free["session"] = free["session"] + ":free"
    return pd.concat([stored, free], ignore_index=True)


def feature_matrix(frame: pd.DataFrame, *, rank: bool = True) -> np.ndarray:
    """The ``FEATURES`` matrix (n_rows, n_features) of a frame with similarity, feedback, stage and kind
    columns; with ``rank=False`` every row is taken as shown first (``log_rank`` 0)."""
    n = len(frame)
    matrix = np.zeros((n, len(FEATURES)))
    column = {name: j for j, name in enumerate(FEATURES)}
    for name in (*SIMILARITIES, *FEEDBACK):
        matrix[:, column[name]] = frame[name].to_numpy(dtype=float)
    stage = frame["stage"].map(STAGE_CODES).fillna(0.0).to_numpy(dtype=float)
    kinds = frame["kind"].to_numpy(dtype=object)
    for kind in KINDS:
        hit = kinds == kind
        matrix[hit, column[f"kind:{kind}"]] = 1.0
        matrix[hit, column[f"stage×{kind}"]] = stage[hit]
    if rank:
        matrix[:, column[POSITION]] = frame[POSITION].to_numpy(dtype=float)
    return matrix


class MonotoneLogisticRegression(ClassifierMixin, BaseEstimator):
    """L2-regularised logistic regression whose coefficients of the ``nonnegative`` columns are >= 0.

    The objective of scikit-learn's ``LogisticRegression`` (``C`` times the log-loss plus half the
    squared norm of the coefficients, intercept not penalised), minimised by L-BFGS-B with bounds.

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    nonnegative : tuple of int
        Column indices whose coefficients may not be negative.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features)
    intercept_ : ndarray of shape (1,)
    classes_ : ndarray of shape (2,)
    """

    def __init__(self, *, C: float = 1.0, nonnegative: tuple[int, ...] = ()) -> None:
        self.C = C
        self.nonnegative = nonnegative

    def fit(self, X: np.ndarray, y: np.ndarray) -> MonotoneLogisticRegression:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        n_features = X.shape[1]

        def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = params[:n_features], params[n_features]
            z = X @ w + b
            loss = self.C * float(np.sum(np.logaddexp(0.0, z) - y * z)) + 0.5 * float(w @ w)
            residual = self.C * (expit(z) - y)
            return loss, np.r_[X.T @ residual + w, residual.sum()]

        lower = set(self.nonnegative)
        bounds = [(0.0, None) if j in lower else (None, None) for j in range(n_features)] + [(None, None)]
        result = minimize(objective, np.zeros(n_features + 1), jac=True, method="L-BFGS-B", bounds=bounds)
        self.coef_ = result.x[:n_features].reshape(1, -1)
        self.intercept_ = result.x[n_features:]
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return np.asarray(X, dtype=float) @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = expit(self.decision_function(X))
        return np.c_[1.0 - p, p]


#: Columns of ``FEATURES`` in which the re-ranker is monotone increasing: the similarities.
MONOTONE = tuple(FEATURES.index(name) for name in SIMILARITIES)
#: The history, popularity, kind and stage columns, whose joint effect is capped.
HISTORY = tuple(j for j, name in enumerate(FEATURES) if name not in SIMILARITIES and name != POSITION)


class Reranker(BaseEstimator):
    """Re-rank candidates by the predicted probability that a coordinator accepts them.

    One classifier per target type, fitted on accepted (1) vs rejected (0) decisions over
    ``FEATURES``, monotone increasing in every similarity; the history features move the log-odds by
    at most ``history_cap``. A type with fewer than ``min_decisions`` decisions or ``min_positives``
    acceptances is not re-ranked, nor is one that fails :func:`gate` on held-back later decisions
    (the matcher's weighted sum stays its score).

    Parameters
    ----------
    method : {"logistic", "gbdt", "none"}
        Standardised logistic regression with non-negative similarity coefficients
        (:class:`MonotoneLogisticRegression`), histogram gradient boosting with monotonic constraints
        on the similarities, or no re-ranking at all.
    C : float
        Inverse regularisation strength of the logistic regression.
    learning_rate, max_iter, max_leaf_nodes, min_samples_leaf : gradient boosting parameters.
    min_decisions, min_positives : int
        The least feedback a target type needs to be re-ranked.
    position : {"residual", "feature"}
        How ``log_rank`` corrects for position bias: calibrated after the relevance model
        (``residual``), or learnt jointly with the other features (``feature``).
    history_cap : float
        The most the history, popularity, kind and stage features together move a candidate's
        log-odds (before calibration), either way.
    evidence_margin : float
        The re-ranker may reorder two candidates only when their base scores are within this of each
        other (and never puts one without evidence above one with it): see :func:`cap_to_evidence`.
    gate : bool
        Serve a type only when it passes :func:`gate` (``matcher train`` checks it on held-back later
        decisions); False serves every type with enough feedback.
    gate_min_needs : int
        The least number of later needs with decisions (sessions with an acceptance) the gate needs.
    gate_min_gain : float
        The re-ranker must beat the base score's mean nDCG@5 on those sessions by more than this.
    random_state : int

    Attributes
    ----------
    models_ : dict of str to fitted classifier
        The target types that are re-ranked.
    scalers_ : dict of str to StandardScaler
        The training means and scales (logistic regression only; they also anchor contributions).
    means_ : dict of str to array of shape (n_features,)
        Training means: the reference a feature's contribution is measured against.
    context_ : FeedbackContext
        Stages, kinds and target histories as of the end of the training data.
    n_decisions_ : dict of str to int
        Training decisions of each type (fallback types included).
    calibration_ : dict of str to (float, float, float)
        With ``position="residual"``: slope, intercept and ``log_rank`` coefficient of the calibration.
    gate_ : dict of str to dict
        Per target type, whether it serves and why (set by :func:`fit_reranker`; empty otherwise).
    """

    def __init__(
        self,
        *,
        method: str = "logistic",
        C: float = 1.0,
        learning_rate: float = 0.05,
        max_iter: int = 200,
        max_leaf_nodes: int = 7,
        min_samples_leaf: int = 20,
        min_decisions: int = 150,
        min_positives: int = 20,
        position: str = "residual",
        history_cap: float = 0.5,
        evidence_margin: float = 0.05,
        gate: bool = True,
        gate_min_needs: int = 30,
        gate_min_gain: float = 0.0,
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.C = C
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.min_decisions = min_decisions
        self.min_positives = min_positives
        self.position = position
        self.history_cap = history_cap
        self.evidence_margin = evidence_margin
        self.gate = gate
        self.gate_min_needs = gate_min_needs
        self.gate_min_gain = gate_min_gain
        self.random_state = random_state

    def __setstate__(self, state: dict) -> None:
        """Artefacts saved before the cap and the gate existed load with their defaults."""
        defaults = {"history_cap": 0.5, "evidence_margin": 0.05, "gate": True, "gate_min_needs": 30, "gate_min_gain": 0.0, "gate_": {}}
        super().__setstate__({**defaults, **state})
        stale = [t for t, means in self.__dict__.get("means_", {}).items() if len(means) != len(FEATURES)]
        for target_type in stale:  # fitted on other features: it cannot score, the weighted sum serves
            logger.warning("%s: the saved re-ranker was fitted on other features; the weighted sum serves", target_type)
            for table in (self.models_, self.scalers_, self.means_, self.calibration_):
                table.pop(target_type, None)

    def _classifier(self) -> MonotoneLogisticRegression | HistGradientBoostingClassifier:
        if self.method == "gbdt":
            constraints = [1 if j in MONOTONE else 0 for j in range(len(FEATURES))]
            return HistGradientBoostingClassifier(
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf,
                monotonic_cst=constraints,
                # similarities and history never interact: their effects add up, so the cap is exact
                interaction_cst=[list(MONOTONE), [j for j in range(len(FEATURES)) if j not in MONOTONE]],
                early_stopping=False,
                random_state=self.random_state,
            )
        return MonotoneLogisticRegression(C=self.C, nonnegative=MONOTONE)

    def fit(self, X: pd.DataFrame, y: np.ndarray, *, context: FeedbackContext | None = None) -> Reranker:
        """Fit on a :func:`training_frame` ``X`` (its ``target_type`` and feature columns) and labels ``y``."""
        if self.method not in METHODS:
            raise ValueError(f"reranker method must be one of {METHODS}, got {self.method!r}")
        if self.position not in POSITIONS:
            raise ValueError(f"reranker position must be one of {POSITIONS}, got {self.position!r}")
        if self.history_cap < 0:
            raise ValueError(f"reranker history_cap must be non-negative, got {self.history_cap}")
        self.models_, self.scalers_, self.means_, self.n_decisions_, self.calibration_ = {}, {}, {}, {}, {}
        self.gate_ = {}
        self.context_ = context or FeedbackContext()
        y = np.asarray(y, dtype=int)
        for target_type in sorted(set(X["target_type"])) if len(X) else []:
            mask = (X["target_type"] == target_type).to_numpy()
            self.n_decisions_[target_type] = int(mask.sum())
            labels = y[mask]
            enough = mask.sum() >= self.min_decisions and self.min_positives <= labels.sum() < len(labels)
            if self.method == "none" or not enough:
                logger.info("%s: %d decisions, too few to re-rank; weighted sum kept", target_type, mask.sum())
                continue
            shown = feature_matrix(X.loc[mask])
            matrix = feature_matrix(X.loc[mask], rank=self.position == "feature")
            self.means_[target_type] = matrix.mean(axis=0)
            fitted = matrix
            if self.method == "logistic":
                scaler = StandardScaler().fit(matrix)
                self.scalers_[target_type] = scaler
                fitted = scaler.transform(matrix)
            self.models_[target_type] = self._classifier().fit(fitted, labels)
            if self.position == "residual":
                relevance = self._capped_logits(target_type, matrix)
                rank = shown[:, FEATURES.index(POSITION)]
                calibration = LogisticRegression(C=1e4, max_iter=1000).fit(np.c_[relevance, rank], labels)
                slope, coefficient = calibration.coef_[0]
                if slope <= 0:  # the model's order would be reversed: it knows nothing, keep the weighted sum
                    logger.info("%s: the calibrated re-ranker does not rise with its own score; weighted sum kept", target_type)
                    for table in (self.models_, self.scalers_, self.means_):
                        table.pop(target_type, None)
                    continue
                self.calibration_[target_type] = (float(slope), float(calibration.intercept_[0]), float(coefficient))
        return self

    @property
    def target_types_(self) -> tuple[str, ...]:
        """The target types this re-ranker scores."""
        check_is_fitted(self, "models_")
        return tuple(self.models_)

    def _logits(self, target_type: str, matrix: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of acceptance when shown first (``log_rank`` 0)."""
        logits = self._capped_logits(target_type, matrix)
        if target_type in self.calibration_:
            slope, intercept, _ = self.calibration_[target_type]
            return slope * logits + intercept
        return logits

    def _capped_logits(self, target_type: str, matrix: np.ndarray) -> np.ndarray:
        """The model's log-odds with the history features' joint effect clipped to ``history_cap``.

        The reference is the same rows with every history feature at its training mean: what the
        evidence alone says.
        """
        full = self._relevance_logits(target_type, matrix)
        reference = matrix.copy()
        history = list(HISTORY)
        reference[:, history] = self.means_[target_type][history]
        evidence_only = self._relevance_logits(target_type, reference)
        return evidence_only + np.clip(full - evidence_only, -self.history_cap, self.history_cap)

    def _relevance_logits(self, target_type: str, matrix: np.ndarray) -> np.ndarray:
        model = self.models_[target_type]
        if self.method == "logistic":  # the linear model by hand: the service's hot path
            scaler = self.scalers_[target_type]
            return ((matrix - scaler.mean_) / scaler.scale_) @ model.coef_[0] + model.intercept_[0]
        return model.decision_function(matrix)

    def predict_proba(self, target_type: str, matrix: np.ndarray) -> np.ndarray:
        """Acceptance probabilities of rows of the ``FEATURES`` matrix: array of shape (n_rows,)."""
        check_is_fitted(self, "models_")
        return 1.0 / (1.0 + np.exp(-self._logits(target_type, matrix)))

    def contributions(self, target_type: str, matrix: np.ndarray) -> np.ndarray:
        """Each feature's effect on the calibrated logit against the training mean: (n_rows, n_features).

        For the logistic regression it is ``slope * coef * (x - mean) / scale``, the history features'
        effects scaled down together when their sum is capped; for gradient boosting, the change of the
        logit when that one feature is set to its training mean.
        """
        check_is_fitted(self, "models_")
        means = self.means_[target_type]
        if self.method == "logistic":
            scaler, model = self.scalers_[target_type], self.models_[target_type]
            slope = self.calibration_.get(target_type, (1.0, 0.0, 0.0))[0]
            effects = (matrix - scaler.mean_) / scaler.scale_ * model.coef_[0]
            history = list(HISTORY)
            total = effects[:, history].sum(axis=1)
            shrink = np.where(np.abs(total) > self.history_cap, self.history_cap / np.maximum(np.abs(total), 1e-12), 1.0)
            effects[:, history] *= shrink[:, None]
            return slope * effects
        base = self._logits(target_type, matrix)
        effects = np.zeros_like(matrix)
        for j in range(matrix.shape[1]):
            replaced = matrix.copy()
            replaced[:, j] = means[j]
            effects[:, j] = base - self._logits(target_type, replaced)
        return effects

    def serving_frame(
        self,
        target_type: str,
        similarities: dict[str, np.ndarray],
        target_ids: np.ndarray,
        load_fraction: np.ndarray,
        org_id: str | None,
    ) -> pd.DataFrame:
        """Feature columns for candidates of one need, with the history known at fitting time."""
        check_is_fitted(self, "models_")
        context = self.context_
        history = np.asarray(
            [_history_features(*context.stats.get((target_type, i), (0.0, 0.0, 0.0, 0.0))) for i in target_ids]
        ).reshape(-1, 3)
        return pd.DataFrame(
            {
                **{name: similarities[name] for name in SIMILARITIES},
                "load_fraction": load_fraction,
                "acceptance_rate": history[:, 0],
                "log_shown": history[:, 1],
                "familiarity": history[:, 2],
                "stage": context.org_stage.get(org_id, "") if org_id else "",
                "kind": [context.kinds.get((target_type, i), "") for i in target_ids],
            }
        )

    feature_names = FEATURES

    def serving_matrix(
        self,
        matcher: Matcher,
        block: Any,
        need: int,
        target_type: str,
        rows: np.ndarray,
        base: np.ndarray,
        similarities: dict[str, np.ndarray],
    ) -> np.ndarray:
        """The ``FEATURES`` matrix of one need's candidate target rows ``rows``, each taken as shown first."""
        index = matcher.index_[target_type]
        frame = self.serving_frame(
            target_type, similarities, index.ids[rows], index.load_fraction[rows], block.org_ids[need]
        )
        return feature_matrix(frame, rank=False)

    def summary(self) -> dict[str, Any]:
        """What was fitted, for the model manifest: which types are re-ranked, and why the others are not."""
        check_is_fitted(self, "models_")
        gate_ = getattr(self, "gate_", {})
        return {
            "method": self.method,
            "position": self.position,
            "history_cap": self.history_cap,
            "position_coefficient": {t: round(c[2], 4) for t, c in self.calibration_.items()},
            "reranked": sorted(self.models_),
            "weighted_sum": sorted(set(self.n_decisions_) - set(self.models_)),
            "decisions": dict(self.n_decisions_),
            "gate": gate_,
        }


def cap_to_evidence(
    scores: np.ndarray, base: np.ndarray, has_evidence: np.ndarray, margin: float, step: float = 1e-6
) -> np.ndarray:
    """One need's re-ranked scores, capped so that the re-ranker never overturns clear evidence.

    Candidate ``j`` *dominates* ``i`` when ``j`` has evidence and ``i`` has none, or when both are
    alike in evidence (or ``j`` has it) and ``j``'s base score is at least ``margin`` above ``i``'s.
    Every candidate's score is capped at ``step`` (one unit of the 6-decimal rounding) below the
    lowest capped score of the candidates that dominate it, and never below 0. So the re-ranker may
    reorder candidates whose base scores are within ``margin`` of each other, and never lifts one
    without evidence above one with evidence; ranking by the returned score respects both, and scores
    that no rule touches are unchanged. Arrays of shape (n_candidates,).
    """
    capped = np.asarray(scores, dtype=float).copy()
    base = np.asarray(base, dtype=float)
    has_evidence = np.asarray(has_evidence, dtype=bool)
    order = np.lexsort((-base, ~has_evidence))  # evidence first, then by base: dominators come first
    for position in range(1, len(order)):
        i, earlier = order[position], order[:position]
        dominates = (has_evidence[earlier] & ~has_evidence[i]) | (
            (base[earlier] >= base[i] + margin) & (has_evidence[earlier] | ~has_evidence[i])
        )
        if dominates.any():
            capped[i] = max(0.0, min(capped[i], float(capped[earlier][dominates].min()) - step))
    return np.round(capped, 6)


def served_scores(reranker: Reranker, target_type: str, frame: pd.DataFrame) -> np.ndarray:
    """What the re-ranker serves for the pairs of ``frame``, grouped by its ``session`` column.

    Features as in service: the target histories frozen at the re-ranker's fitting (its ``context_``),
    the live load and the need organisation's stage of each row, every candidate taken as shown first,
    and the evidence cap (:func:`cap_to_evidence`, on the base score in ``base``) applied among the
    candidates of each session.
    """
    served = reranker.serving_frame(
        target_type,
        {c: frame[c].to_numpy() for c in SIMILARITIES},
        frame["target_id"].to_numpy(),
        frame["load_fraction"].to_numpy(),
        None,
    )
    served["stage"] = frame["stage"].to_numpy()
    scores = np.round(reranker.predict_proba(target_type, feature_matrix(served, rank=False)), 6)
    has_evidence = evidence({c: frame[c].to_numpy() for c in SIMILARITIES})
    base = frame["base"].to_numpy(dtype=float)
    result = scores.copy()
    for rows in frame.groupby("session", sort=False).indices.values():
        result[rows] = cap_to_evidence(scores[rows], base[rows], has_evidence[rows], reranker.evidence_margin)
    return result


def _session_ndcg(frame: pd.DataFrame, column: str, k: int) -> np.ndarray:
    values = []
    for _, group in frame.groupby("session", sort=True):
        scores = group[column].to_numpy(dtype=float)
        ranked = list(np.lexsort((np.arange(len(scores)), -scores)))
        values.append(metrics.ndcg_at_k(ranked, dict(enumerate(group["gain"])), k))
    return np.asarray(values)


def gate(reranker: Reranker, later: pd.DataFrame, *, k: int = 5, n_resamples: int = 1000) -> dict[str, dict[str, Any]]:
    """Whether each type the re-ranker scores beats the base score on later decisions.

    ``later`` holds decisions made after the re-ranker's training data (stored needs, with the base
    score in ``base``). Every later need's session with an acceptance and at least two decisions is
    ranked by the served re-ranker (:func:`served_scores`) and by the base score. The criterion: at
    least ``gate_min_needs`` such sessions, and the paired nDCG@k gain of the re-ranker over the base
    score has a mean above ``gate_min_gain`` and a 90 % bootstrap interval whose lower end is above
    -0.01 (it is not plausibly worse). Returns ``{type: {"serves", "why", "sessions", "gain",
    "gain_ci"}}``.
    """
    verdicts: dict[str, dict[str, Any]] = {}
    for target_type in sorted(reranker.models_):
        part = later.loc[later["target_type"] == target_type]
        sessions = part.groupby("session")["gain"].agg(lambda g: (g > 0).any() and len(g) > 1)
        part = part.loc[part["session"].isin(sessions.index[sessions])].copy()
        n = int(part["session"].nunique())
        verdict: dict[str, Any] = {"sessions": n}
        if n < reranker.gate_min_needs:
            verdict.update(serves=False, why=f"only {n} later needs with decisions (at least {reranker.gate_min_needs} needed)")
            verdicts[target_type] = verdict
            continue
        part["served"] = served_scores(reranker, target_type, part)
        gains = _session_ndcg(part, "served", k) - _session_ndcg(part, "base", k)
        value, low, high = metrics.bootstrap_ci(gains, n_resamples=n_resamples, confidence=0.9)
        verdict.update(gain=round(value, 4), gain_ci=[round(low, 4), round(high, 4)])
        serves = value > reranker.gate_min_gain and low > -0.01
        relation = "beats" if serves else "does not beat"
        verdict.update(
            serves=bool(serves),
            why=(
                f"{relation} the base score on {n} later needs: nDCG@{k} gain {value:+.4f} "
                f"(90 % interval {low:+.4f} to {high:+.4f}; needs mean > {reranker.gate_min_gain:g} and lower end > -0.01)"
            ),
        )
        verdicts[target_type] = verdict
    return verdicts


#: Share of the latest decisions held back to decide, by :func:`gate`, which types the re-ranker serves.
GATE_SHARE = 0.25


def _check_known_items(matcher: Matcher, reranker: Reranker, verdicts: dict[str, dict[str, Any]]) -> None:
    """A type that passed :func:`gate` serves only if typing its targets' names finds them as well as the
    base score does (success@3 of every form of :mod:`matcher.quality.known_item`); the verdict says so."""
    from matcher.quality.known_item import known_item_rates  # it imports the estimator, which imports this module

    for target_type, verdict in verdicts.items():
        if not verdict["serves"] or target_type not in reranker.models_:
            continue
        twin, plain = copy.copy(matcher), copy.copy(matcher)
        twin.reranker_, plain.reranker_ = reranker, None
        with_reranker = known_item_rates(twin, target_type, ks=(3,)).set_index("form")["success"]
        base = known_item_rates(plain, target_type, ks=(3,)).set_index("form")["success"]
        worse = [form for form in base.index if with_reranker[form] < base[form]]
        verdict["known_item_at_3"] = {form: round(float(with_reranker[form]), 4) for form in base.index}
        if worse:
            verdict.update(serves=False, why=verdict["why"] + f"; but typing names finds fewer items ({', '.join(worse)})")


def fit_reranker(matcher: Matcher, libs: Libraries, until: pd.Timestamp | None = None) -> Reranker:
    """Fit a clone of ``matcher.reranker`` on the decisions up to ``until`` (time-split: nothing later).

    With ``gate`` (the default) a second clone is first fitted on all but the latest
    :data:`GATE_SHARE` of those decisions and checked by :func:`gate` on the held-back rest; the
    returned re-ranker serves only the types that pass, and that find their targets by name as well as
    the base score does (``gate_`` says why for each).
    """
    template = matcher.reranker if matcher.reranker is not None else Reranker()
    frame = training_frame(matcher, libs, until)
    context = feedback_context(libs, until)
    reranker = clone(template)
    if frame.empty:
        return reranker.fit(pd.DataFrame({"target_type": []}), np.zeros(0), context=context)
    reranker.fit(frame, frame["accepted"].to_numpy(), context=context)
    if not template.gate or not reranker.models_:
        return reranker
    stored = frame.loc[frame["form"] == "stored"]
    cutoff = stored["decided_at"].quantile(1 - GATE_SHARE)
    early = frame.loc[frame["decided_at"] <= cutoff]
    held = clone(template).fit(early, early["accepted"].to_numpy(), context=feedback_context(libs, cutoff))
    later = stored.loc[stored["decided_at"] > cutoff].copy()
    text_weight = 1.0 - matcher.tag_weight - matcher.region_weight
    later["base"] = np.round(
        text_weight * later["text"] + matcher.tag_weight * later["tags"] + matcher.region_weight * later["region"], 6
    )
    verdicts = gate(held, later)
    for target_type in reranker.models_:
        verdicts.setdefault(
            target_type, {"serves": False, "why": "too few decisions before the held-back period to check it", "sessions": 0}
        )
    _check_known_items(matcher, reranker, verdicts)
    for target_type, verdict in verdicts.items():
        if not verdict["serves"]:
            logger.info("%s: re-ranker not served: %s", target_type, verdict["why"])
            for table in (reranker.models_, reranker.scalers_, reranker.means_, reranker.calibration_):
                table.pop(target_type, None)
    reranker.gate_ = verdicts
    return reranker
