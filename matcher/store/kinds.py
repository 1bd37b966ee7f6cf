"""The kinds of record the store holds: each one's table, noun, export columns and tags field; their live rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matcher.inputs.library import FILES, OPTIONAL_COLUMNS
from matcher.store import events as event_rules
from matcher.store.records import EVENT_KINDS, FILE_KINDS, KINDS, MODELS
from matcher.store.schema import (
    Attendee,
    Base,
    Decision,
    Engagement,
    Event,
    Expert,
    Milestone,
    Need,
    Organisation,
    Project,
    Resource,
    StageStep,
    Tag,
)

__all__ = [
    "ALL_KINDS",
    "SPECS",
    "TARGET_KINDS",
    "TARGET_TABLES",
    "Kind",
    "counts",
    "live_rows",
]


@dataclass(frozen=True)
class Kind:
    """One kind of record: its table, the noun messages use, its export columns and its checks."""

    name: str
    table: type[Base]
    noun: str
    columns: tuple[str, ...]  # export columns, as in data/<name>.csv
    tags: str | None  # the taxonomy-valued list field
    soft_delete: bool = True
    # checks against the stored state: (session, values, stored row or None) -> reference problems
    check: Callable[[Session, dict[str, Any], Any], list[dict[str, str]]] | None = None


SPECS: dict[str, Kind] = {
    "organisations": Kind(
        "organisations",
        Organisation,
        "organisation",
        (*FILES["organisations"], *OPTIONAL_COLUMNS["organisations"]),
        None,
    ),
    "needs": Kind("needs", Need, "need", FILES["needs"], "tags"),
    "experts": Kind("experts", Expert, "expert", FILES["experts"], "specialties"),
    "resources": Kind("resources", Resource, "resource", (*FILES["resources"], *OPTIONAL_COLUMNS["resources"]), "tags"),
    "projects": Kind("projects", Project, "project", FILES["projects"], "tags"),
    "decisions": Kind(
        "decisions",
        Decision,
        "decision",
        (*FILES["decisions"], "comment", "model_version", "score"),
        None,
        soft_delete=False,
    ),
    "events": Kind(
        "events",
        Event,
        "event",
        tuple(MODELS["events"].model_fields),
        "tags",
        check=event_rules.check_event,
    ),
    "attendees": Kind(
        "attendees",
        Attendee,
        "attendee",
        tuple(MODELS["attendees"].model_fields),
        None,
        check=event_rules.check_attendee,
    ),
    "stages": Kind("stages", StageStep, "stage step", tuple(MODELS["stages"].model_fields), None),
    "milestones": Kind("milestones", Milestone, "milestone", tuple(MODELS["milestones"].model_fields), None),
}
#: A decision's target type -> the table of its targets, and the kind of record they are.
TARGET_TABLES: dict[str, type[Base]] = {"expert": Expert, "resource": Resource, "project": Project}
TARGET_KINDS = {"expert": "experts", "resource": "resources", "project": "projects"}
#: Every kind the store holds, in the order messages list them.
ALL_KINDS = (*KINDS, *EVENT_KINDS, *FILE_KINDS)


def live_rows(session: Session, kind: str, *, live: bool = True) -> list[dict[str, Any]]:
    """The rows of ``kind`` as dicts of their columns, ordered by id; soft-deleted ones only when not ``live``."""
    spec = SPECS[kind]
    table = spec.table.__table__
    query = select(table)
    if live and spec.soft_delete:
        query = query.where(table.c.deleted_at.is_(None))
    # sorted here, not by the database: PostgreSQL collations order text differently from SQLite
    return sorted((dict(row._mapping) for row in session.execute(query)), key=lambda r: r["id"])


def counts(session: Session) -> dict[str, int]:
    """Live rows per kind, plus ``tags`` and ``open_engagements``."""
    result = {"tags": session.scalar(select(func.count()).select_from(Tag)) or 0}
    for kind, spec in SPECS.items():
        query = select(func.count()).select_from(spec.table)
        if spec.soft_delete:
            query = query.where(spec.table.deleted_at.is_(None))
        result[kind] = session.scalar(query) or 0
    result["open_engagements"] = (
        session.scalar(select(func.count()).select_from(Engagement).where(Engagement.status == "open")) or 0
    )
    return result
