"""Who may call what: API keys, the page's signed-in session, CSRF, and what each role is shown.

Every request to a route that declares a permission (:func:`matcher.web.openapi.operation`) is
authenticated, in this order:

1. ``Authorization: Bearer <key>``: the key must be live (401 otherwise, whatever else is true);
2. the page's session cookie (``matcher_session``, HttpOnly, SameSite=Strict), made by
   ``POST /session`` with a key and stored server-side; writes made with it must carry the session's
   token in ``X-CSRF-Token`` (403 otherwise);
3. no key and no cookie: while **no key is configured** (:class:`matcher.roles.KeyRing`) and the
   request comes from a loopback address without any header a proxy adds (:data:`PROXY_HEADERS`:
   ``Forwarded``, ``Via``, ``X-Forwarded-*``, ``X-Real-IP``, ``CF-Connecting-IP``, ``True-Client-IP``,
   any ``…-Client-IP``…), it is served as the local coordinator; otherwise 401.

Then the identity's role must hold the route's permission (403 otherwise). Routes that declare no
rule are refused to everyone. Roles without the ``contacts`` permission get expert items without
``phone``/``email`` and every text redacted (:func:`present`); coordinators' views of contact
details are written to the audit log.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from matcher.errors import MatcherError
from matcher.roles import LOCAL, Identity, KeyRing, hash_token, is_loopback, looks_like_token, parse_env_keys
from matcher.store import audit as audit_log
from matcher.store import keys
from matcher.store.transactions import transaction
from matcher.text.privacy import CONTACT_FIELDS, redact_item
from matcher.web.errors import AccessError
from matcher.web.openapi import PUBLIC, operation
from matcher.web.payload import json_body, respond
from matcher.web.schemas import SessionIn, SessionState

__all__ = ["audit", "bp", "current_identity", "install", "present"]

logger = logging.getLogger(__name__)

COOKIE = "matcher_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Headers that proxies, load balancers and CDNs add: any of them ends keyless local mode.
PROXY_HEADERS = (
    "Forwarded",
    "Via",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Real-IP",
    "X-Client-IP",
    "Client-IP",
    "CF-Connecting-IP",
    "True-Client-IP",
    "X-Cluster-Client-IP",
    "Fastly-Client-IP",
    "X-Originating-IP",
    "X-Remote-IP",
    "X-Remote-Addr",
)
#: Families of such headers, by name: ``X-Forwarded-*``, ``X-Original-*`` and any ``…-Client-IP`` / ``…Real-IP``.
_PROXY_NAMES = re.compile(r"^(x-forwarded-|x-original-|x-envoy-)|client-ip|connecting-ip|real-ip", re.IGNORECASE)
_DESCRIBE = {
    "read": "read the libraries",
    "match": "match needs",
    "feedback": "record decisions",
    "edit": "edit the libraries",
    "contacts": "see contact details",
    "models": "list model versions",
    "activate": "activate model versions",
    "keys": "manage API keys",
    "audit": "read the audit log",
    "metrics": "read the metrics",
}

bp = Blueprint("access", __name__)


def _service():
    return current_app.extensions["matcher"]


def _keyring() -> KeyRing:
    return current_app.extensions["keyring"]


def make_keyring(app: Flask) -> KeyRing:
    """The app's key ring: ``MATCHER_API_KEYS`` (config ``API_KEYS``), then the ``api_keys`` table."""
    service = app.extensions["matcher"]

    def lookup(key_hash: str) -> Identity | None:
        service.ensure_database()
        with transaction(service.database_url) as session:
            return keys.find_key(session, key_hash)

    def count() -> int:
        service.ensure_database()
        with transaction(service.database_url) as session:
            return keys.count_keys(session)

    env = app.config.get("API_KEYS")
    return KeyRing(
        parse_env_keys(env if isinstance(env, str) else None),
        lookup,
        count,
        ttl=float(app.config.get("AUTH_CACHE_SECONDS", 2.0)),
    )


# --------------------------------------------------------------------------- identity


def forwarded() -> bool:
    """Whether the request carries any header a proxy adds (:data:`PROXY_HEADERS` or a name of their families)."""
    return any(name in request.headers for name in PROXY_HEADERS) or any(
        _PROXY_NAMES.search(name) for name, _ in request.headers.items()
    )


def _local() -> Identity | None:
    """The local coordinator, for a keyless request from loopback, without proxy headers, while no key is configured."""
    if forwarded() or not is_loopback(request.remote_addr):
        return None
    return None if _keyring().configured() else LOCAL


def _from_session(token: str) -> tuple[Identity, str] | None:
    service = _service()
    service.ensure_database()
    with transaction(service.database_url) as session:
        found = keys.find_session(session, token)
    if found is None:
        return None
    identity = _keyring().identity(found[0])
    return (identity, found[1]) if identity is not None else None


def current_identity() -> Identity | None:
    """Who the request comes from, or None (see the module docstring); raises 401 for a bad key."""
    if "identity" in g:
        return g.identity
    identity: Identity | None = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AccessError("Authorization: expected 'Bearer <key>'")
        identity = _keyring().identity(hash_token(token)) if looks_like_token(token) else None
        if identity is None:
            raise AccessError("Authorization: the key is not valid (unknown or revoked)")
    else:
        cookie = request.cookies.get(COOKIE)
        found = _from_session(cookie) if cookie and looks_like_token(cookie) else None
        if found is not None:
            identity, g.csrf_token = found
            g.via_session = True
        else:
            identity = _local()
    g.identity = identity
    return identity


def _authorize() -> None:
    if request.endpoint is None or request.endpoint == "static":
        return  # 404 / 405 / static files
    view = current_app.view_functions.get(request.endpoint)
    op = getattr(view, "operation", None)
    if op is None:
        raise AccessError(f"{request.endpoint}: this route has no access rule", 403)
    if op.permission is PUBLIC:
        return
    identity = current_identity()
    if identity is None:
        raise AccessError("no API key: send 'Authorization: Bearer <key>' (or sign in on the page)")
    if g.get("via_session") and request.method not in SAFE_METHODS:
        _check_csrf()
    if not identity.may(op.permission):
        raise AccessError(f"role {identity.role} may not {_DESCRIBE.get(op.permission, op.permission)}", 403)


def _check_csrf() -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    expected = g.get("csrf_token") or ""
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise AccessError(f"{CSRF_HEADER}: missing or wrong; writes made with the page's session need it", 403)


# --------------------------------------------------------------------------- what a role sees


def present(kind: str, items: list[dict[str, Any]], session=None) -> list[dict[str, Any]]:
    """Items as the request's identity may see them; a coordinator's view of contacts is audited.

    Roles without ``contacts``: experts lose ``phone``/``email`` and every text is redacted (need
    titles and descriptions, bios, comments…).
    """
    identity: Identity = g.identity
    if not identity.may("contacts"):
        return [redact_item(item) for item in items]
    if kind == "experts":
        shown = [item["id"] for item in items if any(item.get(f) for f in CONTACT_FIELDS)]
        if shown:
            audit("view_contacts", "experts", shown[0] if len(shown) == 1 else None, {"ids": shown}, session=session)
    return items


def audit(
    action: str, kind: str = "", record_id: str | None = None, detail: dict[str, Any] | None = None, session=None
) -> None:
    """Write an audit entry for the request's identity (in ``session``'s transaction when given)."""
    identity: Identity = g.get("identity") or LOCAL
    entry = {
        "actor": identity.actor,
        "role": identity.role,
        "action": action,
        "kind": kind,
        "record_id": record_id,
        "detail": detail,
        "request_id": g.get("request_id"),
    }
    if session is not None:
        audit_log.record(session, **entry)
        return
    with transaction(_service().database_url) as own:
        audit_log.record(own, **entry)


# --------------------------------------------------------------------------- the page's session


def _state(identity: Identity | None, csrf: str | None) -> dict[str, Any]:
    return {
        "signed_in": csrf is not None,
        "local": identity is LOCAL,
        "role": identity.role if identity else None,
        "name": identity.name if identity else None,
        "csrf_token": csrf,
    }


def soft_identity() -> Identity | None:
    """:func:`current_identity`, or None where it would refuse the request (for public pages)."""
    try:
        return current_identity()
    except (AccessError, MatcherError, SQLAlchemyError):
        return None


@bp.get("/session")
@operation(PUBLIC, "Who the page is signed in as", responses={200: SessionState}, tag="session")
def session_state() -> ResponseReturnValue:
    """The page's session: signed in or not, the role, and the CSRF token for writes."""
    identity = soft_identity()
    return respond(_state(identity, g.get("csrf_token") if g.get("via_session") else None), SessionState)


@bp.post("/session")
@operation(
    PUBLIC,
    "Sign the page in with a key",
    body=SessionIn,
    responses={201: SessionState},
    description="Sets the HttpOnly session cookie; the key itself is kept server-side only as its hash.",
    tag="session",
)
def sign_in() -> ResponseReturnValue:
    """Open a page session for a valid key (401 otherwise)."""
    given = SessionIn.model_validate(json_body())
    token = given.key.strip()
    identity = _keyring().identity(hash_token(token)) if looks_like_token(token) else None
    if identity is None:
        raise AccessError("key: not valid (unknown or revoked)")
    service = _service()
    hours = float(current_app.config.get("SESSION_HOURS", 8))
    with transaction(service.database_url) as session:
        cookie, csrf = keys.create_session(session, identity.key_hash or hash_token(token), hours=hours)
        g.identity = identity
        audit("sign_in", "api_keys", identity.key_id, session=session)
    response, status = respond(_state(identity, csrf), SessionState, 201)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(hours * 3600),
        httponly=True,
        samesite="Strict",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE", False)),
        path="/",
    )
    return response, status


@bp.delete("/session")
@operation(PUBLIC, "Sign the page out", responses={204: None}, tag="session")
def sign_out() -> ResponseReturnValue:
    """End the page session (needs the X-CSRF-Token of the session)."""
    cookie = request.cookies.get(COOKIE)
    found = _from_session(cookie) if cookie and looks_like_token(cookie) else None
    if found is not None:
        g.via_session = True
        g.csrf_token = found[1]
        _check_csrf()
        with transaction(_service().database_url) as session:
            keys.delete_session(session, cookie)
    response = Response(status=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict")
    return response


def install(app: Flask) -> None:
    """Authenticate and authorise every request of ``app``; the session routes."""
    app.extensions["keyring"] = make_keyring(app)
    app.before_request(_authorize)
    app.register_blueprint(bp)
