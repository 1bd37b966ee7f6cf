"""Graded training labels: how strongly each piece of evidence says a target suits a need (0–4).

:func:`grade` is the one mapping from evidence to a grade; every learner that uses graded labels
goes through it (the table is in docs/quality.md). Evidence comes in two kinds:

* a coordinator's **decision** on a recommended target: ``rejected`` 0, ``cancelled`` 1,
  ``accepted`` 2, ``completed`` 3;
* an organisation's **attendance** at a held event, for each of the event's experts: ``attended``
  with a rating 5 → 4, 4 → 3, 3 → 2, 2 → 1, 1 → 0; ``attended`` without a rating → 2; ``absent`` → 1
  (it was invited for the need but did not come: weak evidence, below a plain acceptance).

:func:`event_labels` derives ``(need_id or org_id, target_type, target_id, grade)`` labels from the
attendance and ratings of held events. They are labels, never rows of ``decisions`` (a decision
row opens engagements and counts in acceptance rates); nothing here writes to the database.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["DECISION_GRADES", "LABEL_COLUMNS", "RATING_GRADES", "event_labels", "event_labels_db", "grade"]

DECISION_GRADES = {"rejected": 0, "cancelled": 1, "accepted": 2, "completed": 3}
#: An attendee's rating (1–5) of a held event → the grade for each of its experts.
RATING_GRADES = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}
_UNRATED_ATTENDANCE = 2
_ABSENT = 1
LABEL_COLUMNS = ("need_id", "org_id", "target_type", "target_id", "grade", "source", "event_id", "at")


def grade(kind: str, value: str, rating: int | None = None) -> int:
    """The grade (0–4) of one piece of evidence.

    Parameters
    ----------
    kind : ``"decision"`` or ``"attendance"``.
    value : the decision (rejected, cancelled, accepted, completed) or the attendee's status
        (attended, absent) at a held event.
    rating : the attendee's rating of the event (1–5), for ``attended``; ignored otherwise.

    Raises
    ------
    ValueError
        For anything that is not evidence (an invited attendee, an unknown decision, a rating out of range).
    """
    if kind == "decision":
        if value not in DECISION_GRADES:
            raise ValueError(f"decision: {value!r} is not one of {', '.join(DECISION_GRADES)}")
        return DECISION_GRADES[value]
    if kind == "attendance":
        if value == "absent":
            return _ABSENT
        if value != "attended":
            raise ValueError(f"attendance: {value!r} is no evidence (only attended or absent at a held event)")
        if rating is None or (isinstance(rating, float) and pd.isna(rating)):
            return _UNRATED_ATTENDANCE
        if int(rating) not in RATING_GRADES:
            raise ValueError(f"rating: must be from 1 to 5, got {rating!r}")
        return RATING_GRADES[int(rating)]
    raise ValueError(f"kind: {kind!r} is not decision or attendance")


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
        value = grade("attendance", attendee.status, attendee.rating)
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
    frame["grade"] = frame["grade"].astype("int64")
    return frame.sort_values(["at", "event_id", "need_id", "org_id", "target_id"], kind="stable").reset_index(drop=True)


def event_labels_db(session: Any) -> pd.DataFrame:
    """:func:`event_labels` of the live events and attendees of the database (read only)."""
    from sqlalchemy import select

    from matcher.store.schema import Attendee, Event

    events = pd.DataFrame(
        [
            {"id": e.id, "expert_ids": list(e.expert_ids or []), "status": e.status, "starts_at": e.starts_at}
            for e in session.scalars(select(Event).where(Event.deleted_at.is_(None)))
        ],
        columns=["id", "expert_ids", "status", "starts_at"],
    )
    attendees = pd.DataFrame(
        [
            {"event_id": a.event_id, "org_id": a.org_id, "need_id": a.need_id, "status": a.status, "rating": a.rating}
            for a in session.scalars(select(Attendee).where(Attendee.deleted_at.is_(None)))
        ],
        columns=["event_id", "org_id", "need_id", "status", "rating"],
    )
    return event_labels(events, attendees)
