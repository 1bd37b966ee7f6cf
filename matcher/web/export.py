"""A need's recommendations with their reasons as an XLSX file (:mod:`matcher.documents.recommendations`).

``GET /v1/needs/<id>/matches.xlsx`` for a stored need, ``POST /v1/match/export`` for any match
request (a need typed in freely too). Both match exactly as ``POST /v1/match`` does.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app
from flask.typing import ResponseReturnValue

from matcher.documents.recommendations import XLSX_MEDIA_TYPE, recommendations_workbook
from matcher.service.match import MatchRequest
from matcher.text.privacy import redact
from matcher.web.api import match_and_time
from matcher.web.openapi import operation
from matcher.web.payload import json_body
from matcher.web.records import MatchQuery, need_match_request

bp = Blueprint("export", __name__, url_prefix="/v1")
XLSX = {200: (XLSX_MEDIA_TYPE, {"type": "string", "contentMediaType": XLSX_MEDIA_TYPE})}


def _xlsx(request: MatchRequest) -> Response:
    body = match_and_time(request.model_copy(update={"profiles": True}))
    title = org_name = None
    if request.need_id is not None:
        libraries = current_app.extensions["matcher"].libraries()
        need = libraries.need(request.need_id)
        title = redact(need["title"])  # as the need's text is: the one redaction, for every role
        org_name = libraries.organisations.set_index("id")["name"].get(need["org_id"])
    data = recommendations_workbook(body, title=title, org_name=org_name)
    name = f"matches-{re.sub(r'[^A-Za-z0-9_.-]', '_', request.need_id)}.xlsx" if request.need_id else "matches.xlsx"
    return Response(data, mimetype=XLSX_MEDIA_TYPE, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/needs/<need_id>/matches.xlsx")
@operation(
    "match",
    "A stored need's recommendations as XLSX",
    query=MatchQuery,
    responses=XLSX,
    description="Sheets 需求 and 推荐: the same matches as GET /v1/needs/{{need_id}}/matches, with their reasons.",
)
def need_export(need_id: str) -> ResponseReturnValue:
    """The XLSX of a stored need's matches."""
    return _xlsx(need_match_request(need_id))


@bp.post("/match/export")
@operation(
    "match",
    "Match a need and export the recommendations as XLSX",
    body=MatchRequest,
    responses=XLSX,
    description="The body of POST /v1/match; the answer is the XLSX file of its results.",
)
def match_export() -> ResponseReturnValue:
    """The XLSX of any match request (a free-text need too)."""
    return _xlsx(MatchRequest.model_validate(json_body()))
