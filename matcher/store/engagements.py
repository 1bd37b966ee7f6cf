"""Coordinators' decisions and the engagements they open and close: feedback, outcomes, listing.

Accepting an expert locks the expert's row while its open engagements are counted against its
capacity (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite runs one writer at a time).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matcher.errors import ConflictError, NotFoundError
from matcher.rules import conflict_of_interest, free_places
from matcher.store import events as event_rules
from matcher.store.checks import RecordError
from matcher.store.items import MAX_PER_PAGE, record_item
from matcher.store.kinds import TARGET_TABLES
from matcher.store.records import FeedbackIn, OutcomeIn, field_errors, to_local_iso
from matcher.store.schema import Decision, Engagement, Expert, Need, Outcome, utcnow
from matcher.store.transactions import bump_revision

__all__ = [
    "list_engagements",
    "new_decision_id",
    "outcome_item",
    "record_feedback",
    "set_outcome",
    "update_engagement_status",
]


def new_decision_id(now: datetime) -> str:
    """``D`` + UTC time to the microsecond + random hex: unique, and sorted in time order."""
    return f"D{now.strftime('%Y%m%d%H%M%S%f')}{secrets.token_hex(3)}"


def outcome_item(outcome: Outcome | None) -> dict[str, Any] | None:
    """An outcome as a JSON-ready dict (dates ISO 8601), or None."""
    if outcome is None:
        return None
    return {
        "decision_id": outcome.decision_id,
        "engagement_id": outcome.engagement_id,
        "goal_met": outcome.goal_met,
        "rating": outcome.rating,
        "hours": outcome.hours,
        "changed": outcome.changed,
        "follow_up_on": outcome.follow_up_on.isoformat() if outcome.follow_up_on else None,
        "recorded_at": to_local_iso(outcome.recorded_at),
    }


def _outcomes(session: Session, engagement_ids: Iterable[int]) -> dict[int, Outcome]:
    ids = list(engagement_ids)
    if not ids:
        return {}
    return {o.engagement_id: o for o in session.scalars(select(Outcome).where(Outcome.engagement_id.in_(ids)))}


def _engagement_item(
    engagement: Engagement,
    need_title: str | None = None,
    target_name: str | None = None,
    outcome: Outcome | None = None,
) -> dict:
    item = {
        "id": engagement.id,
        "need_id": engagement.need_id,
        "target_type": engagement.target_type,
        "target_id": engagement.target_id,
        "status": engagement.status,
        "opened_at": to_local_iso(engagement.opened_at),
        "closed_at": to_local_iso(engagement.closed_at),
        "decision_id": engagement.decision_id,
        "outcome": outcome_item(outcome),
    }
    if need_title is not None:
        item["need_title"] = need_title
    if target_name is not None:
        item["target_name"] = target_name
    return item


def _open_engagement(session: Session, need_id: str, target_type: str, target_id: str) -> Engagement | None:
    query = (
        select(Engagement)
        .where(
            Engagement.need_id == need_id,
            Engagement.target_type == target_type,
            Engagement.target_id == target_id,
            Engagement.status == "open",
        )
        .order_by(Engagement.id)
        .with_for_update()
    )
    return session.execute(query.execution_options(populate_existing=True)).scalars().first()


def record_feedback(
    session: Session, feedback: FeedbackIn | dict[str, Any], outcome: OutcomeIn | dict[str, Any] | None = None
) -> dict[str, Any]:
    """Record a coordinator's decision; returns ``{"decision": {...}, "engagement": {...} or None}``.

    * ``accepted`` opens an engagement: :class:`ConflictError` when the target is already engaged on
      the need, is an unavailable expert, belongs to the need's own organisation (conflict of
      interest), or is an expert whose open engagements reached the capacity (the expert row is
      locked while counting). The need becomes ``matched``.
    * ``completed`` / ``cancelled`` close the open engagement of (need, target), or ConflictError when
      there is none; a need with no open engagement left becomes ``closed`` (something completed) or
      ``open`` again.
    * ``rejected`` only records the decision.

    Accepting a target for a closed need is :class:`ConflictError` (so is completing or cancelling
    on it: it has no open engagement); a rejection may still be recorded. A missing need or target
    is :class:`NotFoundError`; a deleted target is ConflictError.

    ``outcome`` (:class:`~matcher.store.records.OutcomeIn`, only with ``completed``) is the
    engagement's follow-up, stored with it; the decision's rating is the outcome's (a different
    rating given with both is a RecordError). The result then carries ``outcome``.
    """
    if not isinstance(feedback, FeedbackIn):
        try:
            feedback = FeedbackIn.model_validate(feedback)
        except ValidationError as error:
            raise RecordError(field_errors(error)) from error
    if outcome is not None:
        outcome = _outcome_in(outcome)
        if feedback.decision != "completed":
            message = f"outcome: only a completed engagement has an outcome, not a {feedback.decision} one"
            raise RecordError([{"field": "outcome", "message": message}])
        if feedback.rating is not None and feedback.rating != outcome.rating:
            message = f"rating: {feedback.rating} differs from the outcome's rating {outcome.rating}; give one"
            raise RecordError([{"field": "rating", "message": message}])
        feedback = feedback.model_copy(update={"rating": outcome.rating})
    need = session.get(Need, feedback.need_id)
    if need is None or need.deleted_at is not None:
        raise NotFoundError(f"there is no need with id {feedback.need_id!r}")
    model = TARGET_TABLES[feedback.target_type]
    query = select(model).where(model.id == feedback.target_id).with_for_update()
    target = session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()
    label = f"{feedback.target_type} {feedback.target_id}"
    if target is None:
        raise NotFoundError(f"there is no {feedback.target_type} with id {feedback.target_id!r}")
    if target.deleted_at is not None:
        raise ConflictError(f"{label} was deleted")
    now = utcnow()
    engagement = _open_engagement(session, need.id, feedback.target_type, target.id)
    if feedback.decision == "accepted":
        if engagement is not None:
            raise ConflictError(f"{label} is already engaged on need {need.id} (engagement {engagement.id})")
        if isinstance(target, Expert):
            if not target.available:
                raise ConflictError(f"{label} is not available")
            if conflict_of_interest(target.org_id, need.org_id):
                raise ConflictError(
                    f"{label} belongs to organisation {target.org_id}, which filed need {need.id} (conflict of interest)"
                )
            load = event_rules.open_loads(session, [target.id]).get(target.id, 0)  # engagements and confirmed events
            if free_places(target.capacity, load) <= 0:
                raise ConflictError(f"{label} is fully booked ({load} of {target.capacity})")
        if need.status == "closed":
            raise ConflictError(f"need {need.id} is closed; reopen it (status open) before accepting a target for it")
    elif feedback.decision in ("completed", "cancelled") and engagement is None:
        raise ConflictError(f"{label} has no open engagement on need {need.id} to mark {feedback.decision}")
    decision = Decision(id=new_decision_id(now), decided_at=now, **feedback.model_dump())
    session.add(decision)
    session.flush()
    if feedback.decision == "accepted":
        engagement = Engagement(
            need_id=need.id,
            target_type=feedback.target_type,
            target_id=target.id,
            status="open",
            opened_at=now,
            decision_id=decision.id,
        )
        session.add(engagement)
        if need.status != "matched":
            need.status = "matched"
            need.updated_at = now
    elif feedback.decision in ("completed", "cancelled"):
        engagement.status = feedback.decision
        engagement.closed_at = now
        engagement.closed_decision_id = decision.id
        session.flush()
        remaining = session.scalar(
            select(func.count())
            .select_from(Engagement)
            .where(Engagement.need_id == need.id, Engagement.status == "open")
        )
        if not remaining:
            completed = session.scalar(
                select(func.count())
                .select_from(Engagement)
                .where(Engagement.need_id == need.id, Engagement.status == "completed")
            )
            status = "closed" if completed else "open"
            if need.status != status:
                need.status = status
                need.updated_at = now
    else:
        engagement = None
    stored = None
    if outcome is not None:
        stored = Outcome(decision_id=decision.id, engagement_id=engagement.id, recorded_at=now, **outcome.model_dump())
        session.add(stored)
    session.flush()
    bump_revision(session)
    return {
        "decision": record_item("decisions", decision),
        "engagement": _engagement_item(engagement, outcome=stored) if engagement is not None else None,
    }


def _outcome_in(data: OutcomeIn | dict[str, Any] | Any) -> OutcomeIn:
    if isinstance(data, OutcomeIn):
        return data
    if not isinstance(data, dict):
        raise RecordError([{"field": "outcome", "message": "outcome: expected an object of the outcome's fields"}])
    try:
        return OutcomeIn.model_validate(data)
    except ValidationError as error:
        raise RecordError(field_errors(error)) from error


def set_outcome(session: Session, engagement_id: int, data: OutcomeIn | dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Record (or correct) the outcome of a completed engagement; returns ``(engagement item, created)``.

    :class:`NotFoundError` for no such engagement; :class:`ConflictError` when it is not completed.
    The completing decision is left as it was recorded (decisions are the history).
    """
    values = _outcome_in(data)
    engagement = session.get(Engagement, engagement_id, with_for_update=True)
    if engagement is None:
        raise NotFoundError(f"there is no engagement with id {engagement_id!r}")
    if engagement.status != "completed":
        raise ConflictError(
            f"engagement {engagement_id} is {engagement.status}: only a completed engagement has an outcome"
        )
    if engagement.closed_decision_id is None:
        raise ConflictError(f"engagement {engagement_id} has no recorded completing decision to attach an outcome to")
    stored = session.get(Outcome, engagement.closed_decision_id)
    created = stored is None
    if created:
        stored = Outcome(decision_id=engagement.closed_decision_id, engagement_id=engagement.id)
        session.add(stored)
    for key, value in values.model_dump().items():
        setattr(stored, key, value)
    stored.recorded_at = utcnow()
    session.flush()
    bump_revision(session)
    need_title = session.scalar(select(Need.title).where(Need.id == engagement.need_id))
    target = TARGET_TABLES[engagement.target_type]
    name = session.scalar(select(target.name).where(target.id == engagement.target_id)) or ""
    return _engagement_item(engagement, need_title, name, stored), created


_ENGAGEMENT_STATUSES = ("open", "completed", "cancelled")


def list_engagements(
    session: Session,
    *,
    need_id: str | None = None,
    org_id: str | None = None,
    expert_id: str | None = None,
    status: str | None = None,
    page: int = 1,
    per_page: int = 20,
    awaiting_outcome: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """A page of engagements (ordered by id) and their total, filtered by need, the need's
    organisation, expert or status (open/completed/cancelled); ``awaiting_outcome`` keeps the completed
    engagements that have no outcome yet. Items carry ``need_title``, ``target_name`` and ``outcome``."""
    errors = []
    if status is not None and status not in _ENGAGEMENT_STATUSES:
        errors.append(
            {"field": "status", "message": f"status: must be one of {', '.join(_ENGAGEMENT_STATUSES)}, got {status!r}"}
        )
    if not isinstance(page, int) or page < 1:
        errors.append({"field": "page", "message": f"page: must be a whole number >= 1, got {page!r}"})
    if not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
        errors.append({"field": "per_page", "message": f"per_page: must be from 1 to {MAX_PER_PAGE}, got {per_page!r}"})
    if errors:
        raise RecordError(errors)
    query = select(Engagement, Need.title).join(Need, Need.id == Engagement.need_id)
    if need_id:
        query = query.where(Engagement.need_id == need_id)
    if org_id:
        query = query.where(Need.org_id == org_id)
    if expert_id:
        query = query.where(Engagement.target_type == "expert", Engagement.target_id == expert_id)
    if status:
        query = query.where(Engagement.status == status)
    if awaiting_outcome:
        recorded = select(Outcome.engagement_id).where(Outcome.engagement_id.is_not(None))
        query = query.where(Engagement.status == "completed", Engagement.id.not_in(recorded))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(Engagement.id).offset((page - 1) * per_page).limit(per_page)).all()
    names: dict[tuple[str, str], str] = {}
    for target_type, model in TARGET_TABLES.items():
        ids = [e.target_id for e, _ in rows if e.target_type == target_type]
        if ids:
            for target_id, name in session.execute(select(model.id, model.name).where(model.id.in_(ids))):
                names[(target_type, target_id)] = name
    outcomes = _outcomes(session, [e.id for e, _ in rows])
    items = [
        _engagement_item(e, title, names.get((e.target_type, e.target_id), ""), outcomes.get(e.id)) for e, title in rows
    ]
    return items, total


def update_engagement_status(
    session: Session,
    engagement_id: int,
    status: str,
    *,
    rating: int | None = None,
    comment: str = "",
    outcome: OutcomeIn | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Complete or cancel an open engagement, recording the decision as :func:`record_feedback` does."""
    if status not in ("completed", "cancelled"):
        raise RecordError([{"field": "status", "message": f"status: must be completed or cancelled, got {status!r}"}])
    engagement = session.get(Engagement, engagement_id)
    if engagement is None:
        raise NotFoundError(f"there is no engagement with id {engagement_id!r}")
    if engagement.status != "open":
        raise ConflictError(f"engagement {engagement_id} is already {engagement.status}")
    feedback = {
        "need_id": engagement.need_id,
        "target_type": engagement.target_type,
        "target_id": engagement.target_id,
        "decision": status,
        "rating": rating,
        "comment": comment,
    }
    result = record_feedback(session, feedback, outcome)
    session.refresh(engagement)
    return result["engagement"] or _engagement_item(engagement)


# =========================================================================== import
