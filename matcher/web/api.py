"""The JSON API: ``GET /health`` and ``POST /v1/match``."""

from __future__ import annotations

import time

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue

from matcher.service.match import MatchRequest, MatchResponse, MatchService
from matcher.web.monitoring import observe_match
from matcher.web.openapi import PUBLIC, operation
from matcher.web.payload import json_body, respond
from matcher.web.schemas import Health

bp = Blueprint("api", __name__)


def _service() -> MatchService:
    return current_app.extensions["matcher"]


def match_and_time(request: MatchRequest) -> dict:
    """``MatchService.match``, its time recorded in the match latency histogram."""
    started = time.perf_counter()
    body = _service().match(request)
    observe_match(time.perf_counter() - started)
    return body


@bp.get("/health")
@operation(PUBLIC, "Liveness and the model version served", responses={200: Health, 503: Health}, tag="service")
def health() -> ResponseReturnValue:
    """Liveness and the model version being served."""
    service = _service()
    try:
        service.model()
    except Exception as error:  # reported, not raised: health must answer
        return respond({"status": "unavailable", "detail": str(error), **service.status()}, Health, 503)
    return respond({"status": "ok", **service.status()}, Health)


@bp.post("/v1/match")
@operation(
    "match",
    "Match a need",
    body=MatchRequest,
    responses={200: MatchResponse},
    description=(
        "A free-text need (`text`, optional `tags`) or a stored one (`need_id`); `k` results per target type. "
        "Phone, ID card, e-mail and bank card numbers in the need are redacted before matching."
    ),
)
def match() -> ResponseReturnValue:
    """Match a free-text or stored need; see :meth:`matcher.service.match.MatchService.match`."""
    return respond(match_and_time(MatchRequest.model_validate(json_body())), MatchResponse)
