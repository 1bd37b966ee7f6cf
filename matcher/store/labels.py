"""Derived labels read from the database: engagements' follow-ups and event attendance, graded.

The grades themselves are :mod:`matcher.matching.grades` (one grade for every label); this module only
reads the stored outcomes, events and attendees into the frames those functions take.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.matching import grades
from matcher.store.schema import Attendee, Engagement, Event, Need, Outcome

__all__ = ["event_labels_db", "outcome_labels_db"]


def event_labels_db(session: Session) -> pd.DataFrame:
    """:func:`matcher.matching.grades.event_labels` of the live events and attendees of the database (read only)."""
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
    return grades.event_labels(events, attendees)


def outcome_labels_db(session: Session) -> pd.DataFrame:
    """:func:`matcher.matching.grades.outcome_labels` of the outcomes stored in the database (read only; live needs only)."""
    query = (
        select(
            Need.id, Need.org_id, Engagement.target_type, Engagement.target_id, Outcome.goal_met, Engagement.closed_at
        )
        .join(Engagement, Engagement.id == Outcome.engagement_id)
        .join(Need, Need.id == Engagement.need_id)
        .where(Need.deleted_at.is_(None))
    )
    columns = ["need_id", "org_id", "target_type", "target_id", "goal_met", "closed_at"]
    return grades.outcome_labels(pd.DataFrame([tuple(r) for r in session.execute(query)], columns=columns))
