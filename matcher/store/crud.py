"""Create, read, replace and delete one record, with the ids, stage history and checks that go with it."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matcher.errors import ConflictError, NotFoundError
from matcher.store import events as event_rules
from matcher.store.checks import RecordError, check_kind, validate
from matcher.store.items import record_items
from matcher.store.kinds import SPECS, Kind
from matcher.store.records import EVENT_KINDS, LOCAL_TZ, MODELS
from matcher.store.schema import Base, Engagement, Need, Revision, StageStep, utcnow
from matcher.store.transactions import bump_revision

__all__ = [
    "check_stored",
    "create_record",
    "delete_record",
    "get_record",
    "next_need_id",
    "next_stage_id",
    "note_stage",
    "replace_record",
]


def _live(session: Session, kind: str, record_id: str, *, lock: bool = False) -> Base:
    spec = check_kind(kind)
    query = select(spec.table).where(spec.table.id == record_id)
    if lock:
        query = query.with_for_update()
    row = session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()
    if row is None or (spec.soft_delete and row.deleted_at is not None):
        raise NotFoundError(f"there is no {spec.noun} with id {record_id!r}")
    return row


def get_record(session: Session, kind: str, record_id: str) -> dict[str, Any]:
    """One live record as a JSON-ready dict; :class:`NotFoundError` if missing or deleted."""
    return record_items(session, kind, [_item_source(_live(session, kind, record_id), kind)])[0]


def _item_source(row: Base, kind: str) -> dict[str, Any]:
    names = [*MODELS[kind].model_fields, *(["updated_at"] if SPECS[kind].soft_delete else [])]
    return {name: getattr(row, name) for name in names}


def create_record(session: Session, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """Validate and insert a record; :class:`ConflictError` if its id exists (deleted ones too).

    A need without an ``id`` (absent, null or empty) gets the next free number (:func:`next_need_id`).
    """
    spec = check_kind(kind)
    if kind == "needs" and isinstance(data, dict) and data.get("id") in (None, ""):
        data = {**data, "id": next_need_id(session)}
    values = validate(session, kind, data)
    existing = session.get(spec.table, values["id"])
    if existing is not None:
        deleted = spec.soft_delete and existing.deleted_at is not None
        raise ConflictError(
            f"{spec.noun} {values['id']} already exists" + (" (deleted; ids are never reused)" if deleted else "")
        )
    check_stored(session, spec, values, None)
    row = spec.table(**values)
    if spec.soft_delete:
        row.updated_at = utcnow()
    session.add(row)
    session.flush()
    if kind == "organisations":
        note_stage(session, values["id"], values["stage"], values.get("admitted_on"))
    bump_revision(session)
    return get_record(session, kind, values["id"])


def _today() -> date:

    return utcnow().astimezone(LOCAL_TZ).date()


def next_stage_id(session: Session) -> str:
    """The number after the highest ``S<digits>`` stage-step id (deleted ones included)."""
    ids = session.scalars(select(StageStep.id).where(StageStep.id.like("S%")))
    numbers = [int(i[1:]) for i in ids if i[1:].isascii() and i[1:].isdigit()]
    return f"S{max(numbers, default=0) + 1:05d}"


def note_stage(session: Session, org_id: str, stage: str, since: date | None = None) -> None:
    """Add a step to ``org_id``'s stage history when ``stage`` differs from its latest step.

    ``since`` defaults to today (Asia/Shanghai); a step is never dated before the latest one.
    """
    latest = session.scalars(
        select(StageStep)
        .where(StageStep.org_id == org_id, StageStep.deleted_at.is_(None))
        .order_by(StageStep.since.desc(), StageStep.id.desc())
    ).first()
    if latest is not None and latest.stage == stage:
        return
    when = since or _today()
    if latest is not None and when < latest.since:
        when = max(_today(), latest.since)
    session.add(StageStep(id=next_stage_id(session), org_id=org_id, stage=stage, since=when, updated_at=utcnow()))
    session.flush()


def next_need_id(session: Session) -> str:
    """The number after the highest ``N<digits>`` need id, deleted needs included (ids are never reused).

    ``N0501`` after ``N0500``, with at least four digits. The libraries' revision row is locked first
    (PostgreSQL; SQLite transactions already run one writer at a time), so concurrent creations in
    their own transactions never take the same number.
    """
    session.execute(select(Revision.id).where(Revision.id == 1).with_for_update())
    ids = session.scalars(select(Need.id).where(Need.id.like("N%")))
    numbers = [int(i[1:]) for i in ids if i[1:].isascii() and i[1:].isdigit()]
    return f"N{max(numbers, default=0) + 1:04d}"


def replace_record(session: Session, kind: str, record_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Replace a live record as a whole (PUT); :class:`NotFoundError` if missing or deleted.

    Fields left out take their defaults. ``updated_at`` and the revision change only when a value does.
    """
    spec = check_kind(kind)
    if isinstance(data, dict):
        data = dict(data)
        if data.setdefault("id", record_id) != record_id:
            message = f"id: {data['id']!r} differs from the id of the record being replaced, {record_id!r}"
            raise RecordError([{"field": "id", "message": message}])
    row = _live(session, kind, record_id, lock=True)
    values = validate(session, kind, data)
    check_stored(session, spec, values, row)
    changed = {k: v for k, v in values.items() if getattr(row, k) != v}
    if changed:
        for key, value in changed.items():
            setattr(row, key, value)
        if spec.soft_delete:
            row.updated_at = utcnow()
        session.flush()
        if kind == "organisations" and "stage" in changed:
            note_stage(session, record_id, values["stage"])
        bump_revision(session)
    return get_record(session, kind, record_id)


def check_stored(session: Session, spec: Kind, values: dict[str, Any], before: Any | None) -> None:
    """The kind's checks against the stored state (events and attendees): RecordError or ConflictError."""
    if spec.check is not None:
        errors = spec.check(session, values, before)
        if errors:
            raise RecordError(errors)


def _sample(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def delete_record(session: Session, kind: str, record_id: str) -> None:
    """Soft-delete a live record (decisions: delete, unless an engagement refers to them).

    :class:`ConflictError` when live records still refer to it: an organisation with live needs,
    experts or projects; a need, expert, resource or project with open engagements.
    """
    spec = check_kind(kind)
    row = _live(session, kind, record_id, lock=True)
    if kind in ("experts", "resources", "events"):
        referring = event_rules.events_referring(session, kind, record_id)
        if referring:
            what = "live attendees" if kind == "events" else "planned or confirmed events"
            raise ConflictError(f"{spec.noun} {record_id} has {what} ({_sample(referring)}); cancel or move them first")
    if kind == "organisations":
        found = []
        for other in ("needs", "experts", "projects"):
            table = SPECS[other].table
            ids = list(
                session.scalars(
                    select(table.id).where(table.org_id == record_id, table.deleted_at.is_(None)).order_by(table.id)
                )
            )
            if ids:
                found.append(f"{len(ids)} live {other if len(ids) > 1 else SPECS[other].noun} ({_sample(ids)})")
        if found:
            raise ConflictError(
                f"organisation {record_id} is still referred to by {' and '.join(found)}; delete or move them first"
            )
    elif kind == "decisions":
        used = session.scalar(select(func.count()).select_from(Engagement).where(Engagement.decision_id == record_id))
        if used:
            raise ConflictError(f"decision {record_id} opened an engagement and is kept as its record")
        session.delete(row)
        session.flush()
        bump_revision(session)
        return
    elif kind not in EVENT_KINDS:
        if kind == "needs":
            condition = Engagement.need_id == record_id
            describe = lambda e: f"{e.target_type} {e.target_id}"  # noqa: E731
        else:
            target_type = spec.noun
            condition = (Engagement.target_type == target_type) & (Engagement.target_id == record_id)
            describe = lambda e: f"need {e.need_id}"  # noqa: E731
        engagements = list(
            session.scalars(select(Engagement).where(condition, Engagement.status == "open").order_by(Engagement.id))
        )
        if engagements:
            raise ConflictError(
                f"{spec.noun} {record_id} has {len(engagements)} open engagement"
                f"{'s' if len(engagements) > 1 else ''} ({_sample([describe(e) for e in engagements])}); "
                "complete or cancel them first"
            )
    now = utcnow()
    row.deleted_at = now
    row.updated_at = now
    session.flush()
    bump_revision(session)
