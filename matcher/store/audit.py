"""The audit log (who, when, what) and the purge of personal data on request.

Every edit of a library record, every import (kind, counts and the ids created or changed), every
decision, every view of experts' contact details (exports that carry them too), every key and model
change and every purge is written to ``audit_log`` in the same transaction as the change
itself. Entries name records by kind and id and list field names; they never copy the values of
personal fields, so purging a record needs no change to the log.

Deletion of records is soft (:func:`matcher.store.crud.delete_record`); :func:`purge_record`
then erases the personal fields of a deleted record in place (the row stays, so decisions and
engagements that refer to it keep their meaning).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from matcher.errors import ConflictError, NotFoundError
from matcher.store.records import to_local_iso
from matcher.store.schema import AuditEntry, Decision, Expert, Need, Organisation, Project, Resource, utcnow

__all__ = ["ACTIONS", "PURGED", "list_audit", "purge_record", "record"]

ACTIONS = (
    "create",
    "replace",
    "delete",
    "feedback",
    "view_contacts",
    "key_create",
    "key_revoke",
    "model_activate",
    "model_rollback",
    "sign_in",
    "purge",
    "import",
)
#: What a purged required text field reads afterwards.
PURGED = "已清除"

# kind -> (table, {field: value after purge})
_PURGE: dict[str, tuple[type, dict[str, Any]]] = {
    "experts": (
        Expert,
        {"name": PURGED, "affiliation": "", "title": "", "bio": "", "phone": "", "email": "", "courses": []},
    ),
    "needs": (Need, {"title": PURGED, "description": PURGED}),
    "organisations": (Organisation, {"name": PURGED, "township": ""}),
    "resources": (Resource, {"name": PURGED, "description": "", "provider": ""}),
    "projects": (Project, {"name": PURGED, "description": "", "outcomes": ""}),
}
PURGEABLE = tuple(_PURGE)


def record(
    session: Session,
    *,
    actor: str,
    role: str = "",
    action: str,
    kind: str = "",
    record_id: str | None = None,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    """Add one entry to the audit log, in the caller's transaction."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    session.add(
        AuditEntry(
            at=utcnow(),
            actor=actor[:100],
            role=role,
            action=action,
            kind=kind,
            record_id=record_id,
            detail=detail or {},
            request_id=request_id,
        )
    )
    session.flush()


def _entry(row: AuditEntry) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": to_local_iso(row.at),
        "actor": row.actor,
        "role": row.role,
        "action": row.action,
        "kind": row.kind,
        "record_id": row.record_id,
        "detail": dict(row.detail or {}),
        "request_id": row.request_id,
    }


def list_audit(
    session: Session,
    *,
    action: str | None = None,
    kind: str | None = None,
    record_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[dict[str, Any]], int]:
    """A page of entries, newest first, and how many pass the filters."""
    query = select(AuditEntry)
    for column, value in (
        (AuditEntry.action, action),
        (AuditEntry.kind, kind),
        (AuditEntry.record_id, record_id),
        (AuditEntry.actor, actor),
    ):
        if value:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).offset((page - 1) * per_page).limit(per_page)
    )
    return [_entry(r) for r in rows], total


def purge_record(session: Session, kind: str, record_id: str) -> list[str]:
    """Erase the personal fields of a soft-deleted record; returns the names of the fields erased.

    Purging a need also empties the comments of the decisions on it; purging an expert, the
    comments of the decisions about that expert. :class:`NotFoundError` for an unknown record,
    :class:`ConflictError` for a live one (delete it first).
    """
    if kind not in _PURGE:
        raise ValueError(f"kind: purge works on {', '.join(_PURGE)}, got {kind!r}")
    table, erased = _PURGE[kind]
    row = session.get(table, record_id)
    if row is None:
        raise NotFoundError(f"there is no {kind[:-1]} with id {record_id!r}")
    if row.deleted_at is None:
        raise ConflictError(f"{kind[:-1]} {record_id} is not deleted; delete it first, then purge it")
    fields = [name for name, value in erased.items() if getattr(row, name) != value]
    for name, value in erased.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    condition = None
    if kind == "needs":
        condition = Decision.need_id == record_id
    elif kind == "experts":
        condition = (Decision.target_type == "expert") & (Decision.target_id == record_id)
    if condition is not None:
        result = session.execute(update(Decision).where(condition, Decision.comment != "").values(comment=""))
        if result.rowcount:
            fields.append("decisions.comment")
    session.flush()
    return fields
