"""Every error leaves the service as ``application/problem+json``, mapped here and nowhere else."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, has_request_context, json
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from matcher.errors import ConflictError, DatabaseUnavailableError, LibraryError, ModelError, NotFoundError

logger = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


class BadRequestError(Exception):
    """A client error found by the web layer itself (body not JSON, not an object…)."""

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class AccessError(Exception):
    """No valid key (401), or a role that may not do this, or a missing CSRF token (403)."""

    def __init__(self, detail: str, status: int = 401) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


def problem(status: int, title: str, detail: str, **extra: object) -> Response:
    """An RFC 9457 problem response (with the request's id, to find its log lines)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    if has_request_context() and g.get("request_id"):
        body["request_id"] = g.request_id
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM)


def _field(location: tuple) -> str:
    return ".".join(str(part) for part in location) or "body"


def register_error_handlers(app: Flask) -> None:
    """Map exceptions to problem responses once for the whole app."""

    @app.errorhandler(ValidationError)
    def _validation(error: ValidationError) -> Response:
        errors = [{"field": _field(e["loc"]), "message": e["msg"]} for e in error.errors(include_url=False)]
        first = errors[0]
        return problem(400, "Invalid request", f"{first['field']}: {first['message']}", errors=errors)

    @app.errorhandler(AccessError)
    def _access(error: AccessError) -> Response:
        if error.status == 401:
            response = problem(401, "Unauthorized", error.detail)
            response.headers["WWW-Authenticate"] = 'Bearer realm="matcher"'
            return response
        return problem(403, "Forbidden", error.detail)

    @app.errorhandler(BadRequestError)
    def _bad_request(error: BadRequestError) -> Response:
        return problem(error.status, "Invalid request", error.detail)

    @app.errorhandler(NotFoundError)
    def _not_found(error: NotFoundError) -> Response:
        return problem(404, "Not found", str(error))

    @app.errorhandler(ConflictError)
    def _conflict(error: ConflictError) -> Response:
        return problem(409, "Conflict", str(error))

    @app.errorhandler(LibraryError)
    def _invalid_record(error: LibraryError) -> Response:
        errors = getattr(error, "errors", None)
        if errors is None:  # a library file the service itself reads is broken
            logger.error("service unavailable: %s", error)
            return problem(503, "Service unavailable", str(error))
        return problem(400, "Invalid record", str(error), errors=errors)

    @app.errorhandler(ModelError)
    @app.errorhandler(DatabaseUnavailableError)
    def _unavailable(error: Exception) -> Response:
        logger.error("service unavailable: %s", error)
        return problem(503, "Service unavailable", str(error))

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database(error: Exception) -> Response:
        logger.error("database unavailable: %s", getattr(error, "orig", error))
        return problem(503, "Service unavailable", "the database cannot be reached; try again shortly")

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        return problem(error.code or 500, error.name, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unexpected error")
        return problem(500, "Internal server error", "an unexpected error occurred; it has been logged")
