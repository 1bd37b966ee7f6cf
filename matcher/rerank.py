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
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from matcher.library import Libraries, needs_frame, targets_frame

if TYPE_CHECKING:
    from matcher.model import Matcher

logger = logging.getLogger(__name__)

__all__ = [
    "FEATURES",
    "METHODS",
    "SIMILARITIES",
    "FeedbackContext",
    "Reranker",
    "decision_rows",
    "expert_kind",
    "feedback_context",
    "fit_reranker",
    "training_frame",
]

SIMILARITIES = ("text", "text_share", "char", "word", "semantic", "tags", "jaccard", "region")
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


def similarity_frame(matcher: Matcher, libs: Libraries, rows: pd.DataFrame, *, period: str = "90D") -> pd.DataFrame:
    """The matcher's similarities of each decision's pair, against the profiles as they stood then.

    Profiles grow with the titles of the needs a target took on, so each decision is scored against
    the profiles of the start of its ``period`` (strictly before it): a pair's own acceptance never
    leaks into its features. The matcher's vocabulary and weights are its own (fit before calling).

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
        result.loc[part.index] = model.pair_features(needs, part).to_numpy()
    return result


def training_frame(matcher: Matcher, libs: Libraries, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """:func:`decision_rows` up to ``until`` with the matcher's similarities: the re-ranker's training data."""
    rows = decision_rows(libs, until)
    if rows.empty:
        return rows
    return pd.concat([rows, similarity_frame(matcher, libs, rows)], axis=1)


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


class Reranker(BaseEstimator):
    """Re-rank candidates by the predicted probability that a coordinator accepts them.

    One classifier per target type, fitted on accepted (1) vs rejected (0) decisions over
    ``FEATURES``. A type with fewer than ``min_decisions`` decisions or ``min_positives``
    acceptances is not re-ranked (the matcher's weighted sum stays its score).

    Parameters
    ----------
    method : {"logistic", "gbdt", "none"}
        Standardised logistic regression, histogram gradient boosting, or no re-ranking at all.
    C : float
        Inverse regularisation strength of the logistic regression.
    learning_rate, max_iter, max_leaf_nodes, min_samples_leaf : gradient boosting parameters.
    min_decisions, min_positives : int
        The least feedback a target type needs to be re-ranked.
    position : {"residual", "feature"}
        How ``log_rank`` corrects for position bias: calibrated after the relevance model
        (``residual``), or learnt jointly with the other features (``feature``).
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
        self.random_state = random_state

    def _classifier(self) -> LogisticRegression | HistGradientBoostingClassifier:
        if self.method == "gbdt":
            return HistGradientBoostingClassifier(
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf,
                early_stopping=False,
                random_state=self.random_state,
            )
        return LogisticRegression(C=self.C, max_iter=1000)

    def fit(self, X: pd.DataFrame, y: np.ndarray, *, context: FeedbackContext | None = None) -> Reranker:
        """Fit on a :func:`training_frame` ``X`` (its ``target_type`` and feature columns) and labels ``y``."""
        if self.method not in METHODS:
            raise ValueError(f"reranker method must be one of {METHODS}, got {self.method!r}")
        if self.position not in POSITIONS:
            raise ValueError(f"reranker position must be one of {POSITIONS}, got {self.position!r}")
        self.models_, self.scalers_, self.means_, self.n_decisions_, self.calibration_ = {}, {}, {}, {}, {}
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
                relevance = self._relevance_logits(target_type, matrix)
                rank = shown[:, FEATURES.index(POSITION)]
                calibration = LogisticRegression(C=1e4, max_iter=1000).fit(np.c_[relevance, rank], labels)
                slope, coefficient = calibration.coef_[0]
                self.calibration_[target_type] = (float(slope), float(calibration.intercept_[0]), float(coefficient))
        return self

    @property
    def target_types_(self) -> tuple[str, ...]:
        """The target types this re-ranker scores."""
        check_is_fitted(self, "models_")
        return tuple(self.models_)

    def _logits(self, target_type: str, matrix: np.ndarray) -> np.ndarray:
        """Log-odds of acceptance when shown first (``log_rank`` 0)."""
        logits = self._relevance_logits(target_type, matrix)
        if target_type in self.calibration_:
            slope, intercept, _ = self.calibration_[target_type]
            return slope * logits + intercept
        return logits

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
        """Each feature's effect on the logit against the training mean: array (n_rows, n_features).

        For the logistic regression it is exactly ``coef * (x - mean) / scale``; for gradient
        boosting, the change of the logit when that one feature is set to its training mean.
        """
        check_is_fitted(self, "models_")
        means = self.means_[target_type]
        if self.method == "logistic":
            scaler, model = self.scalers_[target_type], self.models_[target_type]
            slope = self.calibration_.get(target_type, (1.0, 0.0, 0.0))[0]
            return slope * (matrix - scaler.mean_) / scaler.scale_ * model.coef_[0]
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
                **similarities,
                "load_fraction": load_fraction,
                "acceptance_rate": history[:, 0],
                "log_shown": history[:, 1],
                "familiarity": history[:, 2],
                "stage": context.org_stage.get(org_id, "") if org_id else "",
                "kind": [context.kinds.get((target_type, i), "") for i in target_ids],
            }
        )

    def summary(self) -> dict[str, Any]:
        """What was fitted, for the model manifest."""
        check_is_fitted(self, "models_")
        return {
            "method": self.method,
            "position": self.position,
            "position_coefficient": {t: round(c[2], 4) for t, c in self.calibration_.items()},
            "reranked": sorted(self.models_),
            "weighted_sum": sorted(set(self.n_decisions_) - set(self.models_)),
            "decisions": dict(self.n_decisions_),
        }


def fit_reranker(matcher: Matcher, libs: Libraries, until: pd.Timestamp | None = None) -> Reranker:
    """Fit a clone of ``matcher.reranker`` on the decisions up to ``until`` (time-split: nothing later)."""
    from sklearn.base import clone

    template = matcher.reranker if matcher.reranker is not None else Reranker()
    frame = training_frame(matcher, libs, until)
    context = feedback_context(libs, until)
    reranker = clone(template)
    if frame.empty:
        return reranker.fit(pd.DataFrame({"target_type": []}), np.zeros(0), context=context)
    return reranker.fit(frame, frame["accepted"].to_numpy(), context=context)
