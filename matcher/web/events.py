"""Events over HTTP beyond their records: planning (``POST /v1/events/plan``) and the sign-in sheet.

The records themselves (``/v1/events``, ``/v1/attendees``) are served by :mod:`matcher.web.records`.
Planning keeps a short time limit (``EVENTS_PLAN_SECONDS``, default 5 s) so that it never holds a
web worker for long; the response says when the optimiser stopped at it.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from flask import Blueprint, Response, current_app
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field

from matcher.documents.recommendations import XLSX_MEDIA_TYPE
from matcher.documents.signin import signin_workbook
from matcher.jobs.planning import PlanOptions, commit_plan, plan_inputs, solve
from matcher.matching.rank import WEAK_SCORE
from matcher.store.crud import get_record
from matcher.store.transactions import transaction
from matcher.web.access import audit, present
from matcher.web.openapi import operation
from matcher.web.payload import json_body, respond

bp = Blueprint("events", __name__, url_prefix="/v1")
XLSX = {200: (XLSX_MEDIA_TYPE, {"type": "string", "contentMediaType": XLSX_MEDIA_TYPE})}
EventKind = Literal["training", "workshop", "supervision"]


class PlanIn(BaseModel):
    """What to plan: the period (local dates, both included) and the options of ``matcher events plan``."""

    model_config = ConfigDict(extra="forbid")

    starts: date
    ends: date
    kinds: list[EventKind] = Field(default_factory=lambda: ["training", "workshop", "supervision"], max_length=3)
    counties: list[str] = Field(default_factory=list, max_length=20)
    min_size: int = Field(default=3, ge=2, le=200)
    max_size: int = Field(default=12, ge=2, le=200)
    threshold: float = Field(default=WEAK_SCORE, ge=0, le=1)
    commit: bool = Field(default=False, description="Store the events (planned) and attendees (invited).")


class PlanNeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    need_id: str
    org_id: str
    score: float


class PlanReasons(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terms: list[str]
    tags: list[str]
    expert: str
    venue: str


class PlanEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: EventKind
    title: str
    tags: list[str]
    expert_ids: list[str]
    venue_id: str | None
    resource_ids: list[str]
    county: str
    starts_at: str
    ends_at: str
    seats: int
    needs: list[PlanNeed]
    reasons: PlanReasons


class Unserved(BaseModel):
    model_config = ConfigDict(extra="forbid")
    need_id: str
    reason: str


class PlanOut(BaseModel):
    """A plan: ``events`` and ``unserved`` as ``--out plan.json`` writes them, and how the optimiser ended."""

    model_config = ConfigDict(extra="forbid")
    events: list[PlanEvent]
    unserved: list[Unserved]
    status: str
    stopped_at_limit: bool
    seconds: float
    summary: str
    event_ids: list[str] | None = None


@bp.post("/events/plan")
@operation(
    "edit",
    "Plan events for the open needs",
    body=PlanIn,
    responses={200: PlanOut},
    description="Groups open needs into trainings, workshops and supervision rounds (OR-Tools CP-SAT, short time limit).",
    tag="events",
)
def plan_events() -> ResponseReturnValue:
    """Propose events for a period; with ``commit`` store them as planned events with invited attendees."""
    given = PlanIn.model_validate(json_body(not_json_status=400))
    options = PlanOptions(
        starts=given.starts,
        ends=given.ends,
        kinds=tuple(given.kinds),
        counties=tuple(given.counties),
        min_size=given.min_size,
        max_size=given.max_size,
        threshold=given.threshold,
        time_limit=float(current_app.config.get("EVENTS_PLAN_SECONDS", 5.0)),
    )
    options.check()
    service = current_app.extensions["matcher"]
    result = solve(plan_inputs(service=service), options)
    body: dict[str, Any] = {
        **result.body(),
        "status": result.status,
        "stopped_at_limit": result.stopped_at_limit,
        "seconds": round(result.seconds, 3),
        "summary": result.summary(),
    }
    if given.commit:
        body["event_ids"] = commit_plan(
            result.body(),
            url=service.database_url,
            audit=lambda kind, id_, session: audit("create", kind, id_, session=session),
        )
    return respond(body, PlanOut)


@bp.get("/events/<event_id>/signin.xlsx")
@operation(
    "read",
    "An event's sign-in sheet (签到表) as XLSX",
    responses=XLSX,
    description="Organisation, need and a signature slot per attendee; the experts' contacts for coordinators only.",
    tag="events",
)
def signin_sheet(event_id: str) -> ResponseReturnValue:
    """The sign-in sheet; contacts shown to coordinators are written to the audit log."""
    service = current_app.extensions["matcher"]
    service.ensure_database()
    with transaction(service.database_url) as session:
        event = get_record(session, "events", event_id)
        experts = [get_record(session, "experts", e) for e in event["expert_ids"]]
        experts = present("experts", experts, session)  # no contacts without the permission; views audited
        data = signin_workbook(session, event, experts)
    name = f"signin-{re.sub(r'[^A-Za-z0-9_.-]', '_', event_id)}.xlsx"
    return Response(data, mimetype=XLSX_MEDIA_TYPE, headers={"Content-Disposition": f'attachment; filename="{name}"'})
