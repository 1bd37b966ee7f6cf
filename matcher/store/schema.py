"""SQLAlchemy 2 models of the libraries, the taxonomy, match decisions and engagements.

List-valued fields (tags, counties, courses) are JSON arrays, which SQLite and PostgreSQL both store;
filtering on them happens in Python on the cached library frames (see :mod:`matcher.store.search`).
All timestamps are stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import ClassVar

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiKey",
    "Attendee",
    "AuditEntry",
    "Base",
    "Decision",
    "Engagement",
    "Event",
    "Expert",
    "Milestone",
    "Need",
    "Organisation",
    "Outcome",
    "Project",
    "Resource",
    "Revision",
    "StageStep",
    "Tag",
    "WebSession",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time in UTC, timezone-aware."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map: ClassVar[dict] = {datetime: UTCDateTime, list: JSON}


class Tag(Base):
    """One category of the shared taxonomy; ``label`` is the tag value used everywhere."""

    __tablename__ = "tags"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), unique=True)
    label_en: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list] = mapped_column(default=list)


class _Record:
    """Columns every library record has."""

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class Organisation(_Record, Base):
    __tablename__ = "organisations"
    name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(16))
    county: Mapped[str] = mapped_column(String(50))
    township: Mapped[str] = mapped_column(String(50), default="")
    founded_year: Mapped[int | None] = mapped_column(Integer)
    staff_count: Mapped[int | None] = mapped_column(Integer)
    # the organisation file (migration 0005)
    kind: Mapped[str] = mapped_column(String(16), default="agency")
    status: Mapped[str] = mapped_column(String(16), default="resident")
    admitted_on: Mapped[date | None] = mapped_column(Date, default=None)
    left_on: Mapped[date | None] = mapped_column(Date, default=None)
    licensed_social_workers: Mapped[int | None] = mapped_column(Integer, default=None)


class Need(_Record, Base):
    __tablename__ = "needs"
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    tags: Mapped[list] = mapped_column(default=list)
    urgency: Mapped[str] = mapped_column(String(16), default="medium")
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Expert(_Record, Base):
    __tablename__ = "experts"
    name: Mapped[str] = mapped_column(String(100))
    affiliation: Mapped[str] = mapped_column(String(200), default="")
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organisations.id"), default=None)
    title: Mapped[str] = mapped_column(String(100), default="")
    specialties: Mapped[list] = mapped_column(default=list)
    bio: Mapped[str] = mapped_column(Text, default="")
    counties: Mapped[list] = mapped_column(default=list)
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    available: Mapped[bool] = mapped_column(Boolean, default=True)
    phone: Mapped[str] = mapped_column(String(50), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    courses: Mapped[list] = mapped_column(default=list)


class Resource(_Record, Base):
    __tablename__ = "resources"
    type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(String(200), default="")
    county: Mapped[str] = mapped_column(String(50), default="")
    quantity: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list] = mapped_column(default=list)
    seats: Mapped[int | None] = mapped_column(Integer, default=None)  # venues: people it seats (migration 0004)
    amount_yuan: Mapped[int | None] = mapped_column(Integer, default=None)  # funding: yuan (migration 0005)


class Project(_Record, Base):
    __tablename__ = "projects"
    name: Mapped[str] = mapped_column(String(200))
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organisations.id"), default=None)
    tags: Mapped[list] = mapped_column(default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    outcomes: Mapped[str] = mapped_column(Text, default="")


class Decision(Base):
    """A coordinator's decision on a recommended target, with what was shown."""

    __tablename__ = "decisions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    need_id: Mapped[str] = mapped_column(ForeignKey("needs.id"), index=True)
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64), index=True)
    decision: Mapped[str] = mapped_column(String(16))
    rating: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    model_version: Mapped[str | None] = mapped_column(String(32))
    rank: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    decided_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Engagement(Base):
    """An accepted target working on a need; an open engagement uses one unit of the expert's capacity."""

    __tablename__ = "engagements"
    __table_args__ = (Index("ix_engagements_target_status", "target_type", "target_id", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    need_id: Mapped[str] = mapped_column(ForeignKey("needs.id"), index=True)
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    decision_id: Mapped[str | None] = mapped_column(ForeignKey("decisions.id"), default=None)
    # the completed or cancelled decision that closed it (migration 0005)
    closed_decision_id: Mapped[str | None] = mapped_column(ForeignKey("decisions.id"), default=None)


class Revision(Base):
    """A counter bumped by every write to the libraries, so caches know when to refresh."""

    __tablename__ = "revision"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


# --------------------------------------------------------------------------- access and audit (migration 0002)


class ApiKey(Base):
    """An API key: only the SHA-256 of the token is stored; ``role`` is coordinator, analyst or admin."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class WebSession(Base):
    """A signed-in page session: ``id`` is the SHA-256 of the cookie's token; it refers to a key by its hash."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AuditEntry(Base):
    """Who did what, when: every edit, decision, view of contact details, key and model change, purge.

    ``detail`` holds ids and field names, never the values of personal fields.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_kind_record", "kind", "record_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16), default="")
    action: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="")
    record_id: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)


# --------------------------------------------------------------------------- events (migration 0004)


class Event(_Record, Base):
    """A training, workshop or supervision round: one unit of each expert's capacity while confirmed.

    ``expert_ids`` and ``resource_ids`` are JSON arrays of ids; ``venue_id`` is a resource of type venue.
    """

    __tablename__ = "events"
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list] = mapped_column(default=list)
    expert_ids: Mapped[list] = mapped_column(default=list)
    venue_id: Mapped[str | None] = mapped_column(ForeignKey("resources.id"), default=None)
    resource_ids: Mapped[list] = mapped_column(default=list)
    county: Mapped[str] = mapped_column(String(50), default="")
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime] = mapped_column()
    seats: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="planned", index=True)


class Attendee(_Record, Base):
    """An organisation attending an event, with the need it comes for (if any), attendance and rating."""

    __tablename__ = "attendees"
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    need_id: Mapped[str | None] = mapped_column(ForeignKey("needs.id"), default=None)
    status: Mapped[str] = mapped_column(String(16), default="invited")
    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    comment: Mapped[str] = mapped_column(Text, default="")


# --------------------------------------------------------------------------- the organisation file (migration 0005)


class StageStep(_Record, Base):
    """One step of an organisation's stage history: in ``stage`` since ``since``."""

    __tablename__ = "stages"
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    since: Mapped[date] = mapped_column(Date)


class Milestone(_Record, Base):
    """A milestone of an organisation's incubation plan (goal per stage, due date, status)."""

    __tablename__ = "milestones"
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    goal: Mapped[str] = mapped_column(String(200))
    milestone: Mapped[str] = mapped_column(String(200))
    due_on: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(16), default="planned")


class Outcome(Base):
    """The follow-up of a completed engagement, keyed by the ``completed`` decision that closed it.

    A derived label for learning (:mod:`matcher.matching.grades`), never a row of ``decisions``.
    """

    __tablename__ = "outcomes"
    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"), primary_key=True)
    engagement_id: Mapped[int | None] = mapped_column(ForeignKey("engagements.id"), unique=True, default=None)
    goal_met: Mapped[str] = mapped_column(String(8))
    rating: Mapped[int] = mapped_column(Integer)
    hours: Mapped[float | None] = mapped_column(Float, default=None)
    changed: Mapped[str] = mapped_column(Text, default="")
    follow_up_on: Mapped[date | None] = mapped_column(Date, default=None)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
