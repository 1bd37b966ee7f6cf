"""The library records over HTTP: list, read, create, replace, delete; feedback and engagements.

Reading is for coordinators and analysts (analysts see no contact details and redacted texts, see
:func:`matcher.web.access.present`); editing and decisions are for coordinators, and each is written
to the audit log in the same transaction as the change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from matcher.service.match import MAX_K, MatchRequest, MatchResponse, MatchService
from matcher.store import crud, search
from matcher.store import engagements as engagement_store
from matcher.store.engagements import list_engagements
from matcher.store.records import MODELS, FeedbackIn, NewNeedIn, OutcomeIn
from matcher.store.transactions import transaction
from matcher.web.access import audit, present
from matcher.web.api import match_and_time
from matcher.web.errors import BadRequestError
from matcher.web.openapi import operation
from matcher.web.payload import json_body, respond
from matcher.web.payload import query as _query
from matcher.web.schemas import EngagementItem, FeedbackOut, FeedbackWithOutcomeIn, item_model, page_model

bp = Blueprint("records", __name__, url_prefix="/v1")

KIND = "<any(organisations, needs, experts, resources, projects, events, attendees, stages, milestones):kind>"


class Page(BaseModel):
    """Pagination and filters of a list request (query string)."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=20, ge=1, le=100)
    tag: str | None = Field(default=None, max_length=64)
    county: str | None = Field(default=None, max_length=50)
    stage: str | None = Field(default=None, max_length=16)
    status: str | None = Field(default=None, max_length=16)
    urgency: str | None = Field(default=None, max_length=16)
    org_id: str | None = Field(default=None, max_length=64)
    q: str | None = Field(default=None, max_length=500)
    event_id: str | None = Field(default=None, max_length=64, description="Attendees of this event.")


class EngagementQuery(BaseModel):
    """Filters of ``GET /v1/engagements``."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=20, ge=1, le=100)
    need_id: str | None = Field(default=None, max_length=64)
    org_id: str | None = Field(default=None, max_length=64)
    expert_id: str | None = Field(default=None, max_length=64)
    status: str | None = Field(default=None, max_length=16)
    awaiting_outcome: bool = Field(default=False, description="Only completed engagements without an outcome yet.")


class MatchQuery(BaseModel):
    """Query string of ``GET /v1/needs/<id>/matches``."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=5, ge=1, le=MAX_K)
    targets: str | None = Field(default=None, max_length=100, description="Comma-separated: expert,resource,project.")
    county: str | None = Field(default=None, max_length=50)


def _service() -> MatchService:
    return current_app.extensions["matcher"]


@contextmanager
def _session() -> Iterator[Session]:
    service = _service()
    service.ensure_database()
    with transaction(service.database_url) as session:
        yield session


def _body() -> dict[str, Any]:
    return json_body(not_json_status=400)


def _record(kind: str | None) -> type[BaseModel]:
    return MODELS[kind]


def _new_record(kind: str | None) -> type[BaseModel]:
    return NewNeedIn if kind == "needs" else MODELS[kind]


def _page(items: list[dict], total: int, query: Page | EngagementQuery, kind: str) -> ResponseReturnValue:
    body = {"items": items, "total": total, "page": query.page, "per_page": query.per_page}
    return respond(body, page_model(kind))


@bp.get(f"/{KIND}")
@operation(
    "read",
    "List {kind}",
    query=Page,
    responses={200: page_model},
    description="A page of {kind}, filtered; `q` ranks by matcher's Chinese text pipeline.",
    tag="records",
)
def list_records(kind: str) -> ResponseReturnValue:
    """A page of records of one kind, filtered; ``q`` ranks by the Chinese text pipeline."""
    query = _query(Page)
    with _session() as session:
        items, total = search.list_records(session, kind, **query.model_dump())
        items = present(kind, items, session)
    return _page(items, total, query, kind)


@bp.get(f"/{KIND}/<record_id>")
@operation("read", "Read one of {kind}", responses={200: item_model}, tag="records")
def get_record(kind: str, record_id: str) -> ResponseReturnValue:
    """One record."""
    with _session() as session:
        item = present(kind, [crud.get_record(session, kind, record_id)], session)[0]
    return respond(item, item_model(kind))


@bp.post(f"/{KIND}")
@operation(
    "edit",
    "Create one of {kind}",
    body=_new_record,
    responses={201: item_model},
    description="409 when the id exists. A need sent without `id` gets the next free `N` number.",
    tag="records",
)
def create_record(kind: str) -> ResponseReturnValue:
    """Create a record (409 when the id exists; a need without an id gets the next free number)."""
    with _session() as session:
        record = crud.create_record(session, kind, _body())
        audit("create", kind, record["id"], session=session)
    return respond(record, item_model(kind), 201)


@bp.put(f"/{KIND}/<record_id>")
@operation("edit", "Replace one of {kind}", body=_record, responses={200: item_model}, tag="records")
def replace_record(kind: str, record_id: str) -> ResponseReturnValue:
    """Replace a record as a whole."""
    body = _body()
    if body.setdefault("id", record_id) != record_id:
        raise BadRequestError(f"id: the body's id {body['id']!r} differs from the URL's {record_id!r}")
    with _session() as session:
        before = crud.get_record(session, kind, record_id)
        record = crud.replace_record(session, kind, record_id, body)
        changed = sorted(name for name in MODELS[kind].model_fields if before.get(name) != record.get(name))
        if changed:
            audit("replace", kind, record_id, {"fields": changed}, session=session)
    return respond(record, item_model(kind))


@bp.delete(f"/{KIND}/<record_id>")
@operation("edit", "Delete one of {kind}", responses={204: None}, tag="records")
def delete_record(kind: str, record_id: str) -> ResponseReturnValue:
    """Delete a record (soft: it stays for the audit trail but is never matched or listed)."""
    with _session() as session:
        crud.delete_record(session, kind, record_id)
        audit("delete", kind, record_id, session=session)
    return "", 204


@bp.post("/feedback")
@operation(
    "feedback",
    "Record a decision",
    body=FeedbackWithOutcomeIn,
    responses={201: FeedbackOut},
    description=(
        "Accepting an expert opens an engagement and uses one unit of capacity (409 when fully booked). "
        "Completing may carry the engagement's `outcome` (goal met, rating 1-5, hours, what changed, follow-up date)."
    ),
    tag="records",
)
def feedback() -> ResponseReturnValue:
    """Record a coordinator's decision; accepting an expert opens an engagement (409 when fully booked)."""
    given = FeedbackWithOutcomeIn.model_validate(_body())
    decision = FeedbackIn.model_validate(given.model_dump(exclude={"outcome"}))
    with _session() as session:
        result = engagement_store.record_feedback(session, decision, given.outcome)
        detail = {
            "need_id": decision.need_id,
            "target_type": decision.target_type,
            "target_id": decision.target_id,
            "decision": decision.decision,
        }
        if given.outcome is not None:
            detail["outcome"] = sorted(given.outcome.model_fields_set)
        audit("feedback", "decisions", result["decision"]["id"], detail, session=session)
    return respond(result, FeedbackOut, 201)


@bp.put("/engagements/<int:engagement_id>/outcome")
@operation(
    "feedback",
    "Record the outcome of a completed engagement",
    body=OutcomeIn,
    responses={200: EngagementItem, 201: EngagementItem},
    description="201 when the engagement had no outcome yet, 200 when it replaces one; 409 when it is not completed.",
    tag="records",
)
def engagement_outcome(engagement_id: int) -> ResponseReturnValue:
    """Add (or correct) the follow-up of a completed engagement."""
    outcome = OutcomeIn.model_validate(_body())
    with _session() as session:
        item, created = engagement_store.set_outcome(session, engagement_id, outcome)
        action = "create" if created else "replace"
        fields = {"fields": sorted(outcome.model_fields_set)}
        audit(
            action,
            "outcomes",
            item["outcome"]["decision_id"],
            {"engagement_id": engagement_id, **fields},
            session=session,
        )
    return respond(item, EngagementItem, 201 if created else 200)


@bp.get("/needs/<need_id>/matches")
@operation(
    "match",
    "Matches of a stored need",
    query=MatchQuery,
    responses={200: MatchResponse},
    description="The same body as POST /v1/match with this need_id.",
)
def need_matches(need_id: str) -> ResponseReturnValue:
    """The matches of a stored need: the same result as ``POST /v1/match`` with its ``need_id``."""
    return respond(match_and_time(need_match_request(need_id)), MatchResponse)


def need_match_request(need_id: str) -> MatchRequest:
    """The match request of a stored need, from the query string (:class:`MatchQuery`)."""
    query = _query(MatchQuery)
    payload: dict[str, Any] = {"need_id": need_id, "k": query.k}
    if query.targets:
        payload["targets"] = [t.strip() for t in query.targets.split(",") if t.strip()]
    if query.county:
        payload["filters"] = {"county": query.county}
    return MatchRequest.model_validate(payload)


@bp.get("/engagements")
@operation(
    "read", "Engagements", query=EngagementQuery, responses={200: lambda _: page_model("engagements")}, tag="records"
)
def engagements() -> ResponseReturnValue:
    """Engagements by need, organisation or expert."""
    query = _query(EngagementQuery)
    with _session() as session:
        items, total = list_engagements(session, **query.model_dump())
        items = present("engagements", items, session)
    return _page(items, total, query, "engagements")
