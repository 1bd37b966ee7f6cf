"""One grade for every label: each kind of evidence mapped to a relevance grade from 0 to 4.

The re-ranker learns graded relevance from whatever evidence there is. This module is the one place
that says what each kind of evidence is worth (the table is in docs/quality.md, "Grades"):

===============  ==========================================  =====
kind             value                                       grade
===============  ==========================================  =====
``judgment``     a number (higher is better)                 clipped to [0, 4]
``judgment``     ``accepted`` / ``rejected`` (接受 / 拒绝)     2 / 0
``decision``     ``rejected``                                0
``decision``     ``accepted``                                2
``decision``     ``completed`` (no rating, or rating 3)      3
``decision``     ``completed`` with rating >= 4               4
``decision``     ``completed`` with rating <= 2               1
``decision``     ``cancelled``, ``shown``                    None (no label)
``outcome``      an outcome rating 1-5                       rating - 1
``follow_up``    goal met ``yes`` (目标达成)                   4
``follow_up``    goal met ``partly`` (部分达成)                3 (as completed)
``follow_up``    goal met ``no`` (未达成)                      1
``attendance``   ``attended`` with the event's rating 1-5    rating - 1
``attendance``   ``attended`` without a rating               2
``attendance``   ``absent`` (invited for the need, not come)  1
===============  ==========================================  =====

A completed engagement's follow-up (:func:`outcome_labels`; the database's in :mod:`matcher.store.labels`) ranks completed with the goal met above completed, above accepted, above
rejected: 4 > 3 > 2 > 0; a goal not met is weak evidence (1), as a completion rated 2 or less.
Event attendance (:func:`event_labels`: each attendee of a held event, for each of its experts) and
other kinds registered with :func:`register` (organisation-file outcomes) are derived training labels,
never rows of ``decisions`` (a decision row opens engagements and counts in acceptance rates). A pair
with several labels takes its highest grade (:func:`best_grade`).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

__all__ = [
    "LABEL_COLUMNS",
    "MAX_GRADE",
    "RELEVANT",
    "GradeError",
    "best_grade",
    "event_labels",
    "grade",
    "judgment_rows",
    "kinds",
    "outcome_labels",
    "register",
]

#: The highest grade.
MAX_GRADE = 4.0
#: The grade from which a pair counts as relevant: the served score is the probability of it.
RELEVANT = 1.0
ACCEPTED, REJECTED, COMPLETED = 2.0, 0.0, 3.0
_WORDS = {
    "accepted": ACCEPTED,
    "accept": ACCEPTED,
    "接受": ACCEPTED,
    "采纳": ACCEPTED,
    "rejected": REJECTED,
    "reject": REJECTED,
    "拒绝": REJECTED,
}


class GradeError(ValueError):
    """A label that no grade can be given to; the message says what is accepted."""


def _judgment(value: Any, **_: Any) -> float:
    if isinstance(value, str):
        word = unicodedata.normalize("NFKC", value).strip().casefold()
        if word in _WORDS:
            return _WORDS[word]
        try:
            value = float(word)
        except ValueError:
            raise GradeError(f"grade must be a number (higher is better) or accepted/rejected, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GradeError(f"grade must be a number (higher is better) or accepted/rejected, not {value!r}")
    return float(min(max(value, 0.0), MAX_GRADE))


def _decision(value: Any, *, rating: float | None = None, **_: Any) -> float | None:
    if value == "rejected":
        return REJECTED
    if value == "accepted":
        return ACCEPTED
    if value == "completed":
        if rating is None or (isinstance(rating, float) and math.isnan(rating)):
            return COMPLETED
        return 4.0 if rating >= 4 else 1.0 if rating <= 2 else COMPLETED
    if value in ("cancelled", "shown"):
        return None
    raise GradeError(f"unknown decision {value!r}")


def _outcome(value: Any, **_: Any) -> float:
    try:
        rating = float(value)
    except (TypeError, ValueError):
        raise GradeError(f"an outcome rating must be a number from 1 to 5, not {value!r}") from None
    if not 1 <= rating <= 5:
        raise GradeError(f"an outcome rating must be a number from 1 to 5, not {value!r}")
    return rating - 1.0


def _attendance(value: Any, *, rating: float | None = None, **_: Any) -> float:
    if value == "absent":
        return 1.0  # invited for the need but did not come: weak evidence, below an acceptance
    if value != "attended":
        raise GradeError(f"attendance: {value!r} is no evidence (only attended or absent at a held event)")
    if rating is None or (isinstance(rating, float) and math.isnan(rating)):
        return ACCEPTED
    return _outcome(rating)


_GOAL_WORDS = {"yes": 4.0, "是": 4.0, "达成": 4.0, "partly": COMPLETED, "部分": COMPLETED, "no": 1.0, "否": 1.0}


def _follow_up(value: Any, **_: Any) -> float:
    word = unicodedata.normalize("NFKC", str(value)).strip().casefold() if value is not None else ""
    if word not in _GOAL_WORDS:
        raise GradeError(f"follow_up: goal met must be yes, partly or no, not {value!r}")
    return _GOAL_WORDS[word]


_GRADERS: dict[str, Callable[..., float | None]] = {
    "judgment": _judgment,
    "decision": _decision,
    "outcome": _outcome,
    "attendance": _attendance,
    "follow_up": _follow_up,
}


def register(kind: str, grader: Callable[..., float | None]) -> None:
    """Add (or replace) the mapping of one kind of evidence: ``grader(value, **details)`` -> grade or None.

    The grade must lie in [0, :data:`MAX_GRADE`]; :func:`grade` checks it.
    """
    _GRADERS[kind] = grader


def kinds() -> tuple[str, ...]:
    """The kinds of evidence that have a grade."""
    return tuple(_GRADERS)


def grade(kind: str, value: Any, **details: Any) -> float | None:
    """The grade (0-4, higher is better) of one label of ``kind``; None when it carries no label.

    ``details`` are the kind's extra fields (a decision's ``rating``). Raises :class:`GradeError` for a
    value the kind does not accept or an unknown kind.
    """
    grader = _GRADERS.get(kind)
    if grader is None:
        raise GradeError(f"no grade for evidence of kind {kind!r}; known: {', '.join(_GRADERS)}")
    result = grader(value, **details)
    if result is not None and not 0.0 <= result <= MAX_GRADE:
        raise GradeError(f"the {kind} grader gave {result}, outside [0, {MAX_GRADE:g}]")
    return result


def best_grade(labels: Iterable[tuple[str, Any, dict[str, Any]]]) -> float | None:
    """The highest grade of several labels ``(kind, value, details)`` of one pair (None if none grades)."""
    found = [g for kind, value, details in labels if (g := grade(kind, value, **details)) is not None]
    return max(found) if found else None


#: The columns of :func:`event_labels`.
LABEL_COLUMNS = ("need_id", "org_id", "target_type", "target_id", "grade", "source", "event_id", "at")


def event_labels(events: pd.DataFrame, attendees: pd.DataFrame) -> pd.DataFrame:
    """Graded labels from held events: one row per (attendee who attended or was absent, expert).

    events : DataFrame with ``id, expert_ids (list), status, starts_at``
    attendees : DataFrame with ``event_id, org_id, need_id (None or ""), status, rating``

    Returns a DataFrame of :data:`LABEL_COLUMNS` (``need_id`` empty where the attendee came without a
    stored need: the label is then about the organisation), ordered by time, event, need, expert.
    """
    held = events.loc[events["status"] == "held"].set_index("id")
    rows: list[dict[str, Any]] = []
    for attendee in attendees.itertuples(index=False):
        if attendee.event_id not in held.index or attendee.status not in ("attended", "absent"):
            continue
        event = held.loc[attendee.event_id]
        value = grade(
            "attendance", attendee.status, rating=None if pd.isna(attendee.rating) else float(attendee.rating)
        )
        for expert_id in event["expert_ids"]:
            rows.append(
                {
                    "need_id": attendee.need_id if isinstance(attendee.need_id, str) else "",
                    "org_id": attendee.org_id,
                    "target_type": "expert",
                    "target_id": expert_id,
                    "grade": value,
                    "source": "attendance",
                    "event_id": attendee.event_id,
                    "at": event["starts_at"],
                }
            )
    frame = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    frame["grade"] = frame["grade"].astype("float64")
    return frame.sort_values(["at", "event_id", "need_id", "org_id", "target_id"], kind="stable").reset_index(drop=True)


def outcome_labels(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Graded labels from engagements' follow-ups: one row per outcome (derived, never a decision row).

    outcomes : DataFrame with ``need_id, org_id, target_type, target_id, goal_met, closed_at``

    Returns a DataFrame of :data:`LABEL_COLUMNS` (``source`` ``follow_up``, ``event_id`` empty,
    ``at`` the engagement's completion), ordered by time, need and target.
    """
    rows = [
        {
            "need_id": row.need_id,
            "org_id": row.org_id,
            "target_type": row.target_type,
            "target_id": row.target_id,
            "grade": grade("follow_up", row.goal_met),
            "source": "follow_up",
            "event_id": "",
            "at": row.closed_at,
        }
        for row in outcomes.itertuples(index=False)
    ]
    frame = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    frame["grade"] = frame["grade"].astype("float64")
    return frame.sort_values(["at", "need_id", "target_type", "target_id"], kind="stable").reset_index(drop=True)


#: Columns of :func:`judgment_rows`: a judgments file ``matcher train --judgments`` reads.
JUDGMENT_COLUMNS = ("need_id", "target_type", "target_id", "grade", "source", "at")


def judgment_rows(labels: Iterable[pd.DataFrame]) -> list[dict[str, Any]]:
    """Derived labels (frames of :data:`LABEL_COLUMNS`) as judgment rows: one per (need, target), its best grade.

    Labels about an organisation without a stored need are left out (a judgment is about a need).
    Rows are ordered by need, target type and target id; ``at`` is ISO 8601 UTC.
    """
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for frame in labels:
        for row in frame.itertuples(index=False):
            if not isinstance(row.need_id, str) or not row.need_id:
                continue
            key = (row.need_id, row.target_type, row.target_id)
            if key not in best or row.grade > best[key]["grade"]:
                at = pd.Timestamp(row.at)
                best[key] = {
                    "need_id": row.need_id,
                    "target_type": row.target_type,
                    "target_id": row.target_id,
                    "grade": float(row.grade),
                    "source": row.source,
                    "at": at.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ") if at.tzinfo else at.isoformat(),
                }
    return [best[key] for key in sorted(best)]
