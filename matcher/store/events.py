"""Events in the database: the rules a training, workshop or supervision round keeps, and its load.

Field validation is :class:`matcher.store.records.EventIn` / ``AttendeeIn``; this module checks what
needs the stored state, for every write (API, import, ``matcher events plan --commit``):

* references: experts, the venue (a live resource of type ``venue`` seating at least the event's
  ``seats``), other resources, the attendee's event, organisation and need (the need must be the
  organisation's);
* no expert or venue in two events at once (events that are not cancelled, overlapping in time);
* an event is confirmed only while each of its experts is available and has a free unit of capacity:
  a confirmed event holds **one** unit of each of its experts' capacity, whatever the number of
  attendees, until it is held or cancelled (:func:`event_loads`, counted wherever open engagements
  are: the matcher's hard rules, ``matcher assign``, feedback and bookings);
* seats ≥ attendees; no expert serves an event their own organisation attends;
* held and cancelled are final; attendance and ratings are recorded once the event is held.

Reference problems come back as ``{field, message}`` lists (the caller raises its record error);
conflicts with other records raise :class:`~matcher.errors.ConflictError`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matcher.errors import ConflictError
from matcher.rules import conflict_of_interest, free_places
from matcher.store.schema import Attendee, Engagement, Event, Expert, Need, Organisation, Resource, utcnow

__all__ = [
    "BUSY_STATUSES",
    "HOLDING_STATUS",
    "check_attendee",
    "check_event",
    "engagement_loads",
    "event_loads",
    "events_referring",
    "open_loads",
    "overlaps",
]

#: Events that occupy their experts and venue in time.
BUSY_STATUSES = ("planned", "confirmed", "held")
#: The status in which an event holds one unit of each of its experts' capacity.
HOLDING_STATUS = "confirmed"
_FINAL = ("held", "cancelled")
#: Expert ids per ``IN (...)`` list of a load query.
_IDS_PER_QUERY = 500


def overlaps(start_a: datetime, end_a: datetime, start_b: datetime, end_b: datetime) -> bool:
    """Whether two time intervals ``[start, end)`` share a moment."""
    return start_a < end_b and start_b < end_a


def event_loads(session: Session, expert_ids: Iterable[str] | None = None) -> dict[str, int]:
    """Confirmed live events per expert id: each is one unit of capacity, like an open engagement."""
    wanted = None if expert_ids is None else set(expert_ids)
    rows = session.scalars(select(Event.expert_ids).where(Event.status == HOLDING_STATUS, Event.deleted_at.is_(None)))
    counts: Counter[str] = Counter()
    for experts in rows:
        for expert_id in set(experts or []):
            if wanted is None or expert_id in wanted:
                counts[expert_id] += 1
    return dict(counts)


def engagement_loads(session: Session, expert_ids: Iterable[str] | None = None) -> dict[str, int]:
    """Open engagements per expert id (all experts, or those of ``expert_ids``): the one query that counts them."""
    query = (
        select(Engagement.target_id, func.count())
        .where(Engagement.target_type == "expert", Engagement.status == "open")
        .group_by(Engagement.target_id)
    )
    if expert_ids is None:
        return dict(session.execute(query).all())
    ids, counts = sorted(set(expert_ids)), {}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        part = ids[start : start + _IDS_PER_QUERY]
        counts.update(session.execute(query.where(Engagement.target_id.in_(part))).all())
    return counts


def open_loads(session: Session, expert_ids: Iterable[str] | None = None) -> dict[str, int]:
    """Each expert's open load: open engagements plus confirmed events (one unit each), per expert id.

    What the hard rules compare with an expert's capacity (:func:`matcher.rules.free_places`) wherever
    the database is asked: feedback, bookings and events.
    """
    ids = None if expert_ids is None else sorted(set(expert_ids))
    return dict(Counter(engagement_loads(session, ids)) + Counter(event_loads(session, ids)))


def _live(session: Session, table: type, ids: Iterable[str], *, lock: bool = False) -> dict[str, Any]:
    ids = sorted(set(ids))
    if not ids:
        return {}
    query = select(table).where(table.id.in_(ids), table.deleted_at.is_(None)).order_by(table.id)
    if lock:
        query = query.with_for_update()
    return {row.id: row for row in session.execute(query.execution_options(populate_existing=True)).scalars()}


def _attendees(session: Session, event_id: str, exclude: str | None = None) -> list[Attendee]:
    query = select(Attendee).where(Attendee.event_id == event_id, Attendee.deleted_at.is_(None))
    if exclude is not None:
        query = query.where(Attendee.id != exclude)
    return list(session.scalars(query.order_by(Attendee.id)))


def check_event(session: Session, values: dict[str, Any], before: Any | None = None) -> list[dict[str, str]]:
    """Check an event against the stored state; returns the reference problems, raises ConflictError.

    ``before`` is the stored row being replaced (None for a new event).
    """
    errors: list[dict[str, str]] = []
    experts = _live(session, Expert, values["expert_ids"], lock=values["status"] == HOLDING_STATUS)
    for expert_id in values["expert_ids"]:
        if expert_id not in experts:
            errors.append({"field": "expert_ids", "message": f"expert_ids: there is no expert with id {expert_id!r}"})
    venue = None
    if values.get("venue_id"):
        venue = _live(session, Resource, [values["venue_id"]]).get(values["venue_id"])
        if venue is None:
            errors.append(
                {"field": "venue_id", "message": f"venue_id: there is no resource with id {values['venue_id']!r}"}
            )
        elif venue.type != "venue":
            errors.append(
                {"field": "venue_id", "message": f"venue_id: resource {venue.id} is a {venue.type}, not a venue"}
            )
        elif venue.seats is not None and venue.seats < values["seats"]:
            errors.append(
                {
                    "field": "seats",
                    "message": f"seats: venue {venue.id} seats {venue.seats}, fewer than {values['seats']}",
                }
            )
    resources = _live(session, Resource, values.get("resource_ids") or [])
    for resource_id in values.get("resource_ids") or []:
        if resource_id not in resources:
            errors.append(
                {"field": "resource_ids", "message": f"resource_ids: there is no resource with id {resource_id!r}"}
            )
    if errors:
        return errors
    label = f"event {values['id']}"
    if before is not None and before.status in _FINAL and values["status"] != before.status:
        raise ConflictError(f"{label} is already {before.status}; its status cannot change")
    if values["status"] == "held" and values["starts_at"] > utcnow():
        raise ConflictError(f"{label} starts {values['starts_at'].isoformat()}: it cannot be held before it starts")
    attendees = _attendees(session, values["id"]) if before is not None else []
    if len(attendees) > values["seats"]:
        raise ConflictError(f"{label} has {len(attendees)} attendees, more than its {values['seats']} seats")
    orgs = {a.org_id for a in attendees}
    for expert in experts.values():
        if any(conflict_of_interest(expert.org_id, org) for org in orgs):
            raise ConflictError(
                f"expert {expert.id} belongs to organisation {expert.org_id}, which attends {label} (conflict of interest)"
            )
    if values["status"] != "cancelled":
        _check_free(session, values, label)
    if values["status"] == HOLDING_STATUS and (before is None or before.status != HOLDING_STATUS):
        ids = sorted(experts)
        loads = open_loads(session, ids)
        for expert_id in ids:
            expert = experts[expert_id]
            if not expert.available:
                raise ConflictError(f"expert {expert_id} is not available")
            if free_places(expert.capacity, loads.get(expert_id, 0)) <= 0:
                raise ConflictError(
                    f"expert {expert_id} is fully booked ({loads.get(expert_id, 0)} of {expert.capacity}): "
                    f"{label} cannot be confirmed"
                )
    return []


def _check_free(session: Session, values: dict[str, Any], label: str) -> None:
    """No expert or venue of the event in another event at the same time."""
    query = select(Event).where(
        Event.deleted_at.is_(None),
        Event.status.in_(BUSY_STATUSES),
        Event.id != values["id"],
        Event.starts_at < values["ends_at"],
        Event.ends_at > values["starts_at"],
    )
    experts = set(values["expert_ids"])
    for other in session.scalars(query.order_by(Event.starts_at, Event.id)):
        shared = sorted(experts & set(other.expert_ids or []))
        if shared:
            raise ConflictError(f"expert {shared[0]} is already in event {other.id} at that time ({label})")
        if values.get("venue_id") and other.venue_id == values["venue_id"]:
            raise ConflictError(
                f"venue {values['venue_id']} is already taken by event {other.id} at that time ({label})"
            )


def check_attendee(session: Session, values: dict[str, Any], before: Any | None = None) -> list[dict[str, str]]:
    """Check an attendee against its event, organisation and need; ConflictError for conflicts."""
    errors: list[dict[str, str]] = []
    event = _live(session, Event, [values["event_id"]], lock=True).get(values["event_id"])
    if event is None:
        errors.append({"field": "event_id", "message": f"event_id: there is no event with id {values['event_id']!r}"})
    if values["org_id"] not in _live(session, Organisation, [values["org_id"]]):
        errors.append({"field": "org_id", "message": f"org_id: there is no organisation with id {values['org_id']!r}"})
    if values.get("need_id"):
        need = _live(session, Need, [values["need_id"]]).get(values["need_id"])
        if need is None:
            errors.append({"field": "need_id", "message": f"need_id: there is no need with id {values['need_id']!r}"})
        elif need.org_id != values["org_id"]:
            errors.append(
                {
                    "field": "need_id",
                    "message": f"need_id: need {need.id} is organisation {need.org_id}'s, not {values['org_id']}'s",
                }
            )
    if errors:
        return errors
    label = f"attendee {values['id']}"
    if event.status == "cancelled" and (before is None or before.event_id != event.id):
        raise ConflictError(f"event {event.id} was cancelled: {label} cannot be added to it")
    if values["status"] in ("attended", "absent") and event.status != "held":
        raise ConflictError(f"event {event.id} is {event.status}: attendance is recorded once it is held")
    others = _attendees(session, event.id, exclude=values["id"])
    if (before is None or before.event_id != event.id) and len(others) + 1 > event.seats:
        raise ConflictError(f"event {event.id} is full ({event.seats} seats)")
    for other in others:
        if other.org_id == values["org_id"] and other.need_id == values.get("need_id"):
            raise ConflictError(f"organisation {values['org_id']} already attends event {event.id} as {other.id}")
    for expert in _live(session, Expert, event.expert_ids or []).values():
        if expert.org_id and expert.org_id == values["org_id"]:
            raise ConflictError(
                f"expert {expert.id} of event {event.id} belongs to organisation {expert.org_id} (conflict of interest)"
            )
    return []


def events_referring(session: Session, kind: str, record_id: str) -> list[str]:
    """Ids of live planned or confirmed events that use an expert or resource, or live attendees of an event."""
    if kind == "events":
        return [a.id for a in _attendees(session, record_id)]
    query = select(Event).where(Event.deleted_at.is_(None), Event.status.in_(("planned", "confirmed")))
    found = []
    for event in session.scalars(query.order_by(Event.id)):
        if (kind == "experts" and record_id in (event.expert_ids or [])) or (
            kind == "resources" and (event.venue_id == record_id or record_id in (event.resource_ids or []))
        ):
            found.append(event.id)
    return found
