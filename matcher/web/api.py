"""The JSON API: ``GET /health`` and ``POST /v1/match``."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from matcher.service import MatchRequest, match_body
from matcher.web.errors import BadRequestError

bp = Blueprint("api", __name__)


def _state():
    return current_app.extensions["matcher"]


@bp.get("/health")
def health() -> ResponseReturnValue:
    """Liveness and the model version being served."""
    state = _state()
    try:
        state.model()
        status = "ok"
    except Exception as error:  # reported, not raised: health must answer
        return jsonify({"status": "unavailable", "detail": str(error), **state.status()}), 503
    return jsonify({"status": status, **state.status()})


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
    """Match a free-text or stored need; see :func:`matcher.service.match_body`."""
    match_request = MatchRequest.model_validate(_json_object())
    state = _state()
    model, manifest = state.model()
    return jsonify(match_body(match_request, model, manifest["version"], state.libraries()))
