"""The JSON API: ``GET /health`` and ``POST /v1/match``."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from matcher.service import MatchRequest, MatchService
from matcher.web.errors import BadRequestError

bp = Blueprint("api", __name__)


def _service() -> MatchService:
    return current_app.extensions["matcher"]


@bp.get("/health")
def health() -> ResponseReturnValue:
    """Liveness and the model version being served."""
    service = _service()
    try:
        service.model()
    except Exception as error:  # reported, not raised: health must answer
        return jsonify({"status": "unavailable", "detail": str(error), **service.status()}), 503
    return jsonify({"status": "ok", **service.status()})


def _json_object() -> dict:
    if not request.is_json:
        raise BadRequestError("the body must be JSON (Content-Type: application/json)", 415)
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequestError("the body is not valid JSON")
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


@bp.post("/v1/match")
def match() -> ResponseReturnValue:
    """Match a free-text or stored need; see :meth:`matcher.service.MatchService.match`."""
    return jsonify(_service().match(MatchRequest.model_validate(_json_object())))
