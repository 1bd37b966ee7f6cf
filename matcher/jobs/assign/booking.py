"""Booking an assignment into the database: one accepted decision and one open engagement per pair.

All pairs are written in one transaction or none. The transaction locks what it checks, so two
``matcher assign --commit`` runs (or an assignment and coordinators accepting experts through the
API) can never book an expert beyond capacity:

* SQLite: every transaction starts with ``BEGIN IMMEDIATE`` (one writer at a time);
* PostgreSQL: an advisory transaction lock serialises assignment commits, and the expert rows, then
  the need rows, are locked ``FOR UPDATE`` in id order (the order the API's feedback also follows:
  expert first, then need), so there is no deadlock.

Inside the lock every pair is checked again against the stored state: the need is live and still
``open``, the target live, the expert available, not of the need's organisation, and its open
engagements plus the new ones within its capacity. Any problem rolls everything back with
:class:`~matcher.errors.ConflictError` naming it: the plan is stale, run ``matcher assign`` again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, text, update

from matcher.errors import ConflictError
from matcher.rules import conflict_of_interest, free_places
from matcher.store.engagements import new_decision_id
from matcher.store.events import open_loads
from matcher.store.schema import Decision, Engagement, Expert, Need, Project, Resource, utcnow
from matcher.store.transactions import bump_revision, transaction

__all__ = ["Booking", "book"]

_ASSIGN_LOCK = 0x6D61_7463_6803  # pg_advisory_xact_lock key ("match" + 3)
_TABLES = {"expert": Expert, "resource": Resource, "project": Project}
_BATCH = 500  # ids per IN (...) list


@dataclass(frozen=True)
class Booking:
    """One pair to book: the target accepted for the need, with what the assignment showed."""

    need_id: str
    target_type: str
    target_id: str
    rank: int
    score: float


def _chunks(values: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), _BATCH):
        yield list(values[start : start + _BATCH])


def book(bookings: Sequence[Booking], *, url: str, model_version: str | None = None, comment: str = "") -> int:
    """Book every pair in one transaction; returns the number of engagements opened.

    Raises
    ------
    ConflictError
        A pair no longer fits the stored state (listing the first problems); nothing is written.
    """
    if not bookings:
        return 0
    with transaction(url) as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ASSIGN_LOCK})
        targets: dict[tuple[str, str], Any] = {}
        for target_type in sorted({b.target_type for b in bookings}):
            table = _TABLES[target_type]
            ids = sorted({b.target_id for b in bookings if b.target_type == target_type})
            for part in _chunks(ids):
                query = select(table).where(table.id.in_(part)).order_by(table.id)
                for row in session.execute(query.with_for_update()).scalars():
                    targets[(target_type, row.id)] = row
        need_ids = sorted({b.need_id for b in bookings})
        needs = {}
        for part in _chunks(need_ids):
            query = select(Need).where(Need.id.in_(part)).order_by(Need.id)
            needs.update({row.id: row for row in session.execute(query.with_for_update()).scalars()})
        loads = open_loads(session, {b.target_id for b in bookings if b.target_type == "expert"})

        problems = _problems(bookings, needs, targets, loads)
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise ConflictError(
                f"cannot book the assignment: {'; '.join(problems[:3])}{more}. Nothing was written: "
                "the libraries changed after the assignment was made; run matcher assign again"
            )
        now = utcnow()
        decisions, engagements = [], []
        for item in bookings:
            decision_id = new_decision_id(now)
            decisions.append(
                {
                    "id": decision_id,
                    "need_id": item.need_id,
                    "target_type": item.target_type,
                    "target_id": item.target_id,
                    "decision": "accepted",
                    "rating": None,
                    "comment": comment,
                    "model_version": model_version,
                    "rank": item.rank,
                    "score": item.score,
                    "decided_at": now,
                }
            )
            engagements.append(
                {
                    "need_id": item.need_id,
                    "target_type": item.target_type,
                    "target_id": item.target_id,
                    "status": "open",
                    "opened_at": now,
                    "closed_at": None,
                    "decision_id": decision_id,
                }
            )
        session.execute(insert(Decision), decisions)
        session.execute(insert(Engagement), engagements)
        for part in _chunks(need_ids):
            session.execute(update(Need).where(Need.id.in_(part)).values(status="matched", updated_at=now))
        bump_revision(session)
    return len(bookings)


def _problems(
    bookings: Sequence[Booking], needs: dict[str, Need], targets: dict[tuple[str, str], Any], loads: dict[str, int]
) -> list[str]:
    problems = []
    added = Counter(b.target_id for b in bookings if b.target_type == "expert")
    seen: set[tuple[str, str, str]] = set()
    for item in bookings:
        key = (item.need_id, item.target_type, item.target_id)
        if key in seen:
            problems.append(f"{item.target_type} {item.target_id} is listed twice for need {item.need_id}")
        seen.add(key)
        need = needs.get(item.need_id)
        if need is None or need.deleted_at is not None:
            problems.append(f"need {item.need_id} no longer exists")
        elif need.status != "open":
            problems.append(f"need {item.need_id} is {need.status} now, no longer open")
        target = targets.get((item.target_type, item.target_id))
        if target is None or target.deleted_at is not None:
            problems.append(f"{item.target_type} {item.target_id} no longer exists")
            continue
        if item.target_type != "expert":
            continue
        if not target.available:
            problems.append(f"expert {item.target_id} is not available now")
        if need is not None and conflict_of_interest(target.org_id, need.org_id):
            problems.append(
                f"expert {item.target_id} belongs to organisation {target.org_id}, which filed need {need.id}"
            )
    for expert_id, count in sorted(added.items()):
        target = targets.get(("expert", expert_id))
        load = loads.get(expert_id, 0)
        if target is not None and count > free_places(target.capacity, load):
            problems.append(
                f"expert {expert_id} has {target.capacity - load} free place{'s' if target.capacity - load != 1 else ''} "
                f"now ({load} of {target.capacity} booked), not the {count} assigned"
            )
    return problems
