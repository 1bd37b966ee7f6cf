"""Reading request payloads and writing response bodies, with the limits every route shares.

* :func:`json_body`: the JSON object of a request. Not JSON → 415 (or 400), malformed, too deeply
  nested or not an object → 400. Bodies over ``MAX_CONTENT_LENGTH`` (64 KiB) are refused with 413
  before they are read; a chunked body (no ``Content-Length``) is read up to the limit and refused
  with 413 when it goes past it (:class:`ChunkedBodyLimit`), never cut short.
* A query string over :data:`MAX_QUERY_STRING` bytes (as sent, percent-encoded) is refused with
  414; the documented 500-character ``q`` fits (gunicorn is started with its longest request line,
  8190 bytes, so that it reaches the app; longer lines are refused by gunicorn itself).
* Every response carries the security headers of :data:`SECURITY_HEADERS` (a Content-Security-Policy
  allowing scripts and styles from the service itself only, no framing, ``nosniff``,
  ``Referrer-Policy: same-origin``).
* Texts anywhere in a body, query string or path must not hold control characters other than tab,
  newline and carriage return (:data:`matcher.store.records.CONTROL_CHARACTERS`, the rule imports
  follow too) or unpaired surrogates (PostgreSQL, UTF-8 and worksheets cannot store them): 400
  naming the field.
* :func:`query`: a query string validated by a pydantic model (400 naming the parameter).
* :func:`respond`: a JSON body, checked against its response model when ``VALIDATE_RESPONSES`` is on
  (the tests turn it on), so the OpenAPI document and the bodies cannot drift apart.
"""

from __future__ import annotations

import io
import json
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge, RequestURITooLarge

from matcher.store.records import CONTROL_CHARACTERS
from matcher.web.errors import BadRequestError

__all__ = [
    "MAX_QUERY_STRING",
    "SECURITY_HEADERS",
    "ChunkedBodyLimit",
    "ResponseSchemaError",
    "install",
    "json_body",
    "query",
    "respond",
]

MAX_DEPTH = 32
#: Longest query string served, in bytes as sent (500 Chinese characters of ``q`` take 4,500).
MAX_QUERY_STRING = 6144
#: Headers of every response.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_TOO_LARGE = "matcher.body_too_large"


class ChunkedBodyLimit:
    """WSGI middleware: a chunked request body is read whole up to ``MAX_CONTENT_LENGTH`` bytes.

    Within the limit, the body is handed on with its ``Content-Length``; past it, the request is
    marked and answered 413 by the app (with the request's id and the usual problem body).
    """

    def __init__(self, wsgi_app: Any, app: Flask) -> None:
        self.wsgi_app = wsgi_app
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if chunked and not environ.get("CONTENT_LENGTH") and limit:
            stream = environ["wsgi.input"]
            data = bytearray()
            while len(data) <= limit:
                piece = stream.read(min(65536, limit + 1 - len(data)))
                if not piece:
                    break
                data += piece
            if len(data) > limit:
                environ[_TOO_LARGE] = True
                data = bytearray()
            environ["wsgi.input"] = io.BytesIO(bytes(data))
            environ["CONTENT_LENGTH"] = str(len(data))
        return self.wsgi_app(environ, start_response)


class ResponseSchemaError(RuntimeError):
    """A response body does not match its documented model (a bug: answered as 500)."""


def _bad_text(value: str) -> bool:
    if CONTROL_CHARACTERS.search(value):
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check(value: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise BadRequestError(f"{where or 'body'}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        if _bad_text(value):
            raise BadRequestError(f"{where or 'body'}: must not contain control characters or unpaired surrogates")
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if _bad_text(key):
                raise BadRequestError(
                    f"{where or 'body'}: a field name contains control characters or unpaired surrogates"
                )
            _check(item, path, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{where}.{index}" if where else str(index), depth + 1)


def json_body(*, not_json_status: int = 415) -> dict[str, Any]:
    """The request's JSON object; see the module docstring for the errors."""
    if not request.is_json:
        if not_json_status == 415:
            raise BadRequestError("the body must be JSON (Content-Type: application/json)", 415)
        raise BadRequestError("the body must be a JSON object (Content-Type: application/json)")
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise BadRequestError(f"body: nested more than {MAX_DEPTH} levels deep") from None
    if body is None:
        raise BadRequestError("the body is not valid JSON")
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    _check(body, "")
    return body


def query(model: type[BaseModel]) -> Any:
    """The query string validated by ``model`` (its values are texts; the model converts them)."""
    return model.model_validate(request.args.to_dict())


def respond(body: Any, model: type[BaseModel] | None = None, status: int = 200) -> tuple[Response, int]:
    """``body`` as JSON with ``status``; checked against ``model`` when ``VALIDATE_RESPONSES`` is on."""
    if model is not None and current_app.config.get("VALIDATE_RESPONSES"):
        try:
            model.model_validate(json.loads(json.dumps(body)))
        except ValidationError as error:
            raise ResponseSchemaError(f"{request.endpoint}: the response breaks {model.__name__}: {error}") from error
    return jsonify(body), status


def _check_url_texts() -> None:
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and _bad_text(value):
            raise BadRequestError(f"{name}: must not contain control characters")
    for name, value in request.args.items(multi=True):
        if _bad_text(name) or _bad_text(value):
            raise BadRequestError(f"{name if not _bad_text(name) else 'query'}: must not contain control characters")


def _check_limits() -> None:
    if request.environ.get(_TOO_LARGE):
        raise RequestEntityTooLarge(f"the body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes")
    if len(request.environ.get("QUERY_STRING", "")) > MAX_QUERY_STRING:
        raise RequestURITooLarge(f"the query string is longer than {MAX_QUERY_STRING} bytes")


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def install(app: Flask) -> None:
    """Body and query-string limits and control characters checked before any view runs; security headers."""
    app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, app)  # type: ignore[method-assign]
    app.before_request(_check_limits)
    app.before_request(_check_url_texts)
    app.after_request(_security_headers)
