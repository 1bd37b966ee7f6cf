"""The library records over HTTP: list, read, create, replace, delete; feedback and engagements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from matcher.service import MatchRequest, MatchService
from matcher.web.errors import BadRequestError

bp = Blueprint("records", __name__, url_prefix="/v1")

KIND = "<any(organisations, needs, experts, resources, projects):kind>"


class Page(BaseModel):
    """Pagination and filters of a list request (query string)."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1)
    per_page: int = Field(default=20, ge=1, le=100)
    tag: str | None = Field(default=None, max_length=64)
    county: str | None = Field(default=None, max_length=50)
    stage: str | None = Field(default=None, max_length=16)
    status: str | None = Field(default=None, max_length=16)
    urgency: str | None = Field(default=None, max_length=16)
    org_id: str | None = Field(default=None, max_length=64)
    q: str | None = Field(default=None, max_length=500)


class EngagementQuery(BaseModel):
    """Filters of ``GET /v1/engagements``."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1)
    per_page: int = Field(default=20, ge=1, le=100)
    need_id: str | None = Field(default=None, max_length=64)
    org_id: str | None = Field(default=None, max_length=64)
    expert_id: str | None = Field(default=None, max_length=64)
    status: str | None = Field(default=None, max_length=16)


class MatchQuery(BaseModel):
    """Query string of ``GET /v1/needs/<id>/matches``."""

    model_config = ConfigDict(extra="forbid")

    k: int = 5
    targets: str | None = None
    county: str | None = None


def _service() -> MatchService:
    return current_app.extensions["matcher"]


@contextmanager
def _session() -> Iterator[Session]:
    from matcher.store.repository import transaction

    service = _service()
    service.ensure_database()
    with transaction(service.database_url) as session:
        yield session


def _query(model: type[BaseModel]) -> Any:
    return model.model_validate(request.args.to_dict())


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object (Content-Type: application/json)")
    return body


def _page(items: list[dict], total: int, query: Page | EngagementQuery) -> ResponseReturnValue:
    return jsonify({"items": items, "total": total, "page": query.page, "per_page": query.per_page})


@bp.get(f"/{KIND}")
def list_records(kind: str) -> ResponseReturnValue:
    """A page of records of one kind, filtered; ``q`` ranks by the Chinese text pipeline."""
    from matcher.store import repository

    query = _query(Page)
    with _session() as session:
        items, total = repository.list_records(session, kind, **query.model_dump())
    return _page(items, total, query)


@bp.get(f"/{KIND}/<record_id>")
def get_record(kind: str, record_id: str) -> ResponseReturnValue:
    """One record."""
    from matcher.store import repository

    with _session() as session:
        return jsonify(repository.get_record(session, kind, record_id))


@bp.post(f"/{KIND}")
def create_record(kind: str) -> ResponseReturnValue:
    """Create a record (409 when the id exists)."""
    from matcher.store import repository

    with _session() as session:
        record = repository.create_record(session, kind, _body())
    return jsonify(record), 201


@bp.put(f"/{KIND}/<record_id>")
def replace_record(kind: str, record_id: str) -> ResponseReturnValue:
    """Replace a record as a whole."""
    from matcher.store import repository

    body = _body()
    if body.setdefault("id", record_id) != record_id:
        raise BadRequestError(f"id: the body's id {body['id']!r} differs from the URL's {record_id!r}")
    with _session() as session:
        return jsonify(repository.replace_record(session, kind, record_id, body))


@bp.delete(f"/{KIND}/<record_id>")
def delete_record(kind: str, record_id: str) -> ResponseReturnValue:
    """Delete a record (soft: it stays for the audit trail but is never matched or listed)."""
    from matcher.store import repository

    with _session() as session:
        repository.delete_record(session, kind, record_id)
    return "", 204


@bp.post("/feedback")
def feedback() -> ResponseReturnValue:
    """Record a coordinator's decision; accepting an expert opens an engagement (409 when fully booked)."""
    from matcher.store import repository
    from matcher.store.records import FeedbackIn

    decision = FeedbackIn.model_validate(_body())
    with _session() as session:
        return jsonify(repository.record_feedback(session, decision)), 201


@bp.get("/needs/<need_id>/matches")
def need_matches(need_id: str) -> ResponseReturnValue:
    """The matches of a stored need: the same result as ``POST /v1/match`` with its ``need_id``."""
    query = _query(MatchQuery)
    payload: dict[str, Any] = {"need_id": need_id, "k": query.k}
    if query.targets:
        payload["targets"] = [t.strip() for t in query.targets.split(",") if t.strip()]
    if query.county:
        payload["filters"] = {"county": query.county}
    return jsonify(_service().match(MatchRequest.model_validate(payload)))


@bp.get("/engagements")
def engagements() -> ResponseReturnValue:
    """Engagements by need, organisation or expert."""
    from matcher.store import repository

    query = _query(EngagementQuery)
    with _session() as session:
        items, total = repository.list_engagements(session, **query.model_dump())
    return _page(items, total, query)
