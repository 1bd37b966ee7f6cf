"""Pydantic models of the bodies the API returns (and of the admin routes' requests).

The library items are the record models of :mod:`matcher.store.records` (the ones that validate
``POST``/``PUT`` and ``matcher import``) plus the fields the service adds (``updated_at``,
``open_engagements``, ``relevance``), so one definition describes what goes in and what comes out.
The match body is :class:`matcher.service.match.MatchResponse`. Every model forbids unknown fields: a
response that drifts from its model fails the tests (``VALIDATE_RESPONSES``) and schemathesis.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from matcher.matching.rank import WEAK_SCORE
from matcher.roles import ROLES
from matcher.store.audit import ACTIONS
from matcher.store.records import GOAL_MET, MODELS, DecisionIn, FeedbackIn, OutcomeIn, Timestamp

__all__ = [
    "ActivateIn",
    "ActivateOut",
    "AuditEntry",
    "AuditQuery",
    "BureauReport",
    "EngagementItem",
    "FeedbackOut",
    "FeedbackWithOutcomeIn",
    "Health",
    "KeyCreated",
    "KeyIn",
    "KeyItem",
    "KeyList",
    "ModelList",
    "OrganisationFile",
    "OutcomeItem",
    "Overview",
    "OverviewQuery",
    "Problem",
    "RollbackOut",
    "SessionIn",
    "SessionState",
    "item_model",
    "page_model",
]

Role = Literal[tuple(ROLES)]  # type: ignore[valid-type]
VERSION_PATTERN = r"^\d{8}T\d{6}Z$"
_NOUNS = {
    "organisations": "Organisation",
    "needs": "Need",
    "experts": "Expert",
    "resources": "Resource",
    "projects": "Project",
    "events": "Event",
    "attendees": "Attendee",
    "stages": "StageStep",
    "milestones": "Milestone",
}


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldError(_Out):
    field: str
    message: str
    row: int | None = None


class Problem(_Out):
    """An RFC 9457 problem: ``detail`` starts with the field it is about."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None
    request_id: str | None = None


class Health(_Out):
    status: Literal["ok", "unavailable"]
    model_version: str | None
    failed_version: str | None
    detail: str | None = None


@cache
def item_model(kind: str) -> type[BaseModel]:
    """The item model of a library kind: its record model plus the fields the service adds."""
    extra: dict[str, Any] = {
        "updated_at": (str, Field(description="Last change, ISO 8601 in +08:00.")),
        "relevance": (float | None, Field(default=None, description="Score of the free-text query `q`.")),
    }
    if kind == "experts":
        extra["open_engagements"] = (int, Field(ge=0, description="Open engagements (capacity used)."))
        doc = "An expert. `phone` and `email` are left out for roles without the contacts permission."
    else:
        doc = f"A record of {kind}."
    return create_model(f"{_NOUNS[kind]}Item", __base__=MODELS[kind], __doc__=doc, **extra)


@cache
def page_model(kind: str) -> type[BaseModel]:
    """``{items, total, page, per_page}`` of a kind (``engagements`` and ``audit`` too)."""
    items = {"engagements": EngagementItem, "audit": AuditEntry}.get(kind) or item_model(kind)
    name = {"engagements": "Engagement", "audit": "Audit"}.get(kind) or _NOUNS[kind]
    return create_model(
        f"{name}Page",
        __base__=_Out,
        items=(list[items], ...),
        total=(int, Field(ge=0)),
        page=(int, Field(ge=1)),
        per_page=(int, Field(ge=1)),
    )


class OutcomeItem(_Out):
    """The follow-up of a completed engagement (回访)."""

    decision_id: str = Field(description="The `completed` decision that closed the engagement.")
    engagement_id: int | None
    goal_met: Literal[GOAL_MET]  # type: ignore[valid-type]
    rating: int = Field(ge=1, le=5)
    hours: float | None = Field(description="The expert's hours on the engagement, if recorded.")
    changed: str = Field(description="What changed for the organisation.")
    follow_up_on: date | None
    recorded_at: datetime


class FeedbackWithOutcomeIn(FeedbackIn):
    """A decision; completing an engagement may carry its ``outcome`` (the decision's rating is the outcome's)."""

    outcome: OutcomeIn | None = None


class EngagementItem(_Out):
    id: int
    need_id: str
    target_type: Literal["expert", "resource", "project"]
    target_id: str
    status: Literal["open", "completed", "cancelled"]
    opened_at: datetime
    closed_at: datetime | None
    decision_id: str | None
    outcome: OutcomeItem | None = None
    need_title: str | None = None
    target_name: str | None = None


class DecisionItem(DecisionIn):
    """A recorded decision."""


class FeedbackOut(_Out):
    decision: DecisionItem
    engagement: EngagementItem | None


# --------------------------------------------------------------------------- models


class ModelVersion(_Out):
    version: str
    active: bool
    created_at: str | None
    model: str | None
    signed: bool = Field(description="The manifest carries artefact_hmac.")
    libraries: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    error: str | None = None


class ModelList(_Out):
    active: str | None
    signing: bool = Field(description="Whether a signing key is configured (unsigned versions are refused).")
    versions: list[ModelVersion] = Field(description="Newest first.")


class ActivateIn(_Out):
    version: str = Field(pattern=VERSION_PATTERN, description="A version of models/, e.g. 20261129T080000Z.")


class ActivateOut(_Out):
    active: str
    previous: str | None


class RollbackOut(_Out):
    active: str
    previous: str


# --------------------------------------------------------------------------- keys, sessions, audit


class KeyIn(_Out):
    name: str = Field(min_length=1, max_length=100, pattern=r"\S", description="Who or what uses the key.")
    role: Role


class KeyItem(_Out):
    id: str
    name: str
    role: Role
    created_at: datetime | None
    created_by: str
    revoked_at: datetime | None
    source: Literal["database", "environment"] = "database"


class KeyCreated(KeyItem):
    token: str = Field(description="The key itself: shown this once, stored only as its SHA-256.")


class KeyList(_Out):
    items: list[KeyItem]


class SessionIn(_Out):
    key: str = Field(min_length=1, max_length=512)


class SessionState(_Out):
    signed_in: bool = Field(description="A page session (cookie) is open.")
    local: bool = Field(description="Keyless loopback access as the local coordinator (no keys configured).")
    role: Role | None
    name: str | None
    csrf_token: str | None = Field(description="Send it as X-CSRF-Token on writes made with the session cookie.")


class AuditEntry(_Out):
    id: int
    at: datetime
    actor: str
    role: str
    action: Literal[ACTIONS]  # type: ignore[valid-type]
    kind: str
    record_id: str | None
    detail: dict[str, Any]
    request_id: str | None


class AuditQuery(_Out):
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=100)
    action: Literal[ACTIONS] | None = None  # type: ignore[valid-type]
    kind: str | None = Field(default=None, max_length=32)
    record_id: str | None = Field(default=None, max_length=64)
    actor: str | None = Field(default=None, max_length=100)
    since: Timestamp | None = Field(default=None, description="ISO 8601; without a zone, Asia/Shanghai time.")
    until: Timestamp | None = None


# --------------------------------------------------------------------------- the base's overview


class CategorySupply(_Out):
    category: str
    open_needs: int = Field(ge=0, description="Open needs tagged with the category.")
    experts: int = Field(ge=0, description="Available experts with that specialty.")
    free_places: int = Field(ge=0, description="Their capacity minus open engagements.")
    resources: int = Field(ge=0)
    projects: int = Field(ge=0)


class WeakNeed(_Out):
    need_id: str
    title: str
    org_id: str | None
    org_name: str | None
    county: str | None
    tags: list[str]
    best_score: float = Field(description="The best available expert's weighted-sum score.")
    best_id: str | None
    best_name: str | None


class Overview(_Out):
    """Open needs against free expert capacity per category, and the weakest-served open needs."""

    model_version: str
    threshold: float = Field(description="A need is weak when its best expert scores below this.")
    weak_needs: int = Field(ge=0, description="Open needs below the threshold.")
    categories: list[CategorySupply]
    weakest: list[WeakNeed] = Field(description="The open needs with the weakest best match, weakest first.")


class OverviewQuery(_Out):
    weakest: int = Field(default=10, ge=1, le=100, description="How many of the weakest-served needs to list.")
    threshold: float = Field(default=WEAK_SCORE, ge=0, le=1)


# --------------------------------------------------------------------------- the organisation file


class FileNeed(_Out):
    id: str
    title: str
    tags: list[str]
    status: str
    created_at: datetime


class FileEvent(_Out):
    event_id: str
    title: str
    kind: str
    starts_at: datetime
    event_status: str
    attendance: str
    rating: int | None
    need_id: str | None


class FileResource(_Out):
    resource_id: str
    name: str
    type: str
    provider: str
    amount_yuan: int | None
    via: Literal["合作", "活动"] = Field(
        description="Linked by an engagement (合作) or used at an event attended (活动)."
    )
    reference: str | None = Field(description="The need (合作) or the event (活动).")
    at: datetime | None


class FileSummary(_Out):
    needs: int
    engagements: int
    completed: int
    awaiting_outcome: int
    goal_met: int
    expert_hours: float
    events_attended: int
    resources: int


class OrganisationFile(_Out):
    """An organisation's incubation file (机构档案)."""

    organisation: item_model("organisations")  # type: ignore[valid-type]
    stages: list[item_model("stages")]  # type: ignore[valid-type]
    milestones: list[item_model("milestones")]  # type: ignore[valid-type]
    needs: list[FileNeed]
    engagements: list[EngagementItem]
    events: list[FileEvent]
    resources: list[FileResource]
    summary: FileSummary


# --------------------------------------------------------------------------- the bureau report


class ReportQuery(_Out):
    period: str = Field(max_length=16, description="A quarter (2026Q3), a month (2026-07) or a year (2026).")
    county: str | None = Field(default=None, max_length=50, description="Only this county's organisations.")


class PeriodOut(_Out):
    label: str
    start: date
    end: date


class ReportRow(_Out):
    county: str = Field(description="A county, or 合计 (each record once).")
    group: str = Field(
        description="The category: a need category, status, stage, kind, event kind, resource type or funder."
    )
    item: str
    current: float | None
    previous: float | None
    change: float | None


class ReportTable(_Out):
    name: str
    title: str
    rows: list[ReportRow]


class BureauReport(_Out):
    """The bureau report: every table for the period, with the previous period beside it."""

    period: PeriodOut
    previous: PeriodOut
    county: str | None
    produced_at: datetime
    headers: list[str]
    definitions: list[str]
    tables: list[ReportTable]
