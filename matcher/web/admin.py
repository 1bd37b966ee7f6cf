"""Model versions, API keys and the audit log over HTTP.

``GET /v1/models`` lists the versions (analysts and admins); activating and rolling back are for
admins only. Activation verifies the artefact first (sha256, and the HMAC when ``MATCHER_SIGNING_KEY``
is set) and writes ``models/ACTIVE`` only when it passes: every server process switches on its next
request, and a refused version changes nothing (409).
"""

from __future__ import annotations

from flask import Blueprint, current_app, g
from flask.typing import ResponseReturnValue

from matcher.errors import ConflictError, ModelError
from matcher.matching import persist
from matcher.store import keys
from matcher.store.audit import list_audit
from matcher.store.transactions import transaction
from matcher.web.access import audit
from matcher.web.openapi import operation
from matcher.web.payload import json_body, query, respond
from matcher.web.schemas import (
    ActivateIn,
    ActivateOut,
    AuditQuery,
    KeyCreated,
    KeyIn,
    KeyItem,
    KeyList,
    ModelList,
    RollbackOut,
    page_model,
)

bp = Blueprint("admin", __name__, url_prefix="/v1")


def _service():
    return current_app.extensions["matcher"]


def _actor() -> str:
    identity = g.get("identity")
    return f"http:{identity.actor}" if identity else "http"


def _switch_now() -> None:
    """Load the newly active version in this process at once (the others switch on their next request)."""
    try:
        _service().model()
    except Exception:  # reported by /health and the next match; the activation itself succeeded
        current_app.logger.warning("the new model version could not be loaded yet", exc_info=True)


# --------------------------------------------------------------------------- models


@bp.get("/models")
@operation("models", "Model versions", responses={200: ModelList}, tag="models")
def list_models() -> ResponseReturnValue:
    """Saved model versions, newest first, and which is active."""
    service = _service()
    body = {
        "active": persist.active_version(service.models_dir),
        "signing": persist.signing_key(service.signing_key) is not None,
        "versions": persist.describe_versions(service.models_dir),
    }
    return respond(body, ModelList)


@bp.post("/admin/model/activate")
@operation(
    "activate",
    "Activate a model version",
    body=ActivateIn,
    responses={200: ActivateOut},
    description="Verifies the artefact's sha256 (and HMAC when a signing key is set) first; 409 when it fails.",
    tag="models",
)
def activate_model() -> ResponseReturnValue:
    """Make a version active in every server process without a restart."""
    wanted = ActivateIn.model_validate(json_body())
    service = _service()
    try:
        previous = persist.activate(wanted.version, root=service.models_dir, key=service.signing_key, by=_actor())
    except ModelError as error:
        raise ConflictError(f"version: {error}") from error
    audit("model_activate", "models", wanted.version, {"previous": previous})
    _switch_now()
    return respond({"active": wanted.version, "previous": previous}, ActivateOut)


@bp.post("/admin/model/rollback")
@operation(
    "activate",
    "Roll back to the previous model version",
    responses={200: RollbackOut},
    description="The version active before the current one (models/HISTORY); 409 when there is none or it fails its checks.",
    tag="models",
)
def rollback_model() -> ResponseReturnValue:
    """Go back one activation."""
    service = _service()
    try:
        current, target = persist.rollback(root=service.models_dir, key=service.signing_key, by=_actor())
    except ModelError as error:
        raise ConflictError(f"rollback: {error}") from error
    audit("model_rollback", "models", target, {"previous": current})
    _switch_now()
    return respond({"active": target, "previous": current}, RollbackOut)


# --------------------------------------------------------------------------- keys


@bp.get("/admin/keys")
@operation("keys", "API keys", responses={200: KeyList}, tag="admin")
def list_keys() -> ResponseReturnValue:
    """Every key (never the key itself): from the database, then those of MATCHER_API_KEYS."""
    service = _service()
    with transaction(service.database_url) as session:
        items = [{**item, "source": "database"} for item in keys.list_keys(session)]
    for identity in current_app.extensions["keyring"].env_keys.values():
        items.append(
            {
                "id": identity.key_id,
                "name": identity.name,
                "role": identity.role,
                "created_at": None,
                "created_by": "MATCHER_API_KEYS",
                "revoked_at": None,
                "source": "environment",
            }
        )
    return respond({"items": items}, KeyList)


@bp.post("/admin/keys")
@operation("keys", "Create an API key", body=KeyIn, responses={201: KeyCreated}, tag="admin")
def create_key() -> ResponseReturnValue:
    """A new key; the response holds the key itself, shown this once."""
    wanted = KeyIn.model_validate(json_body())
    with transaction(_service().database_url) as session:
        token, item = keys.create_key(session, wanted.name, wanted.role, created_by=_actor())
        audit("key_create", "api_keys", item["id"], {"role": item["role"]}, session=session)
    current_app.extensions["keyring"].forget()
    return respond({**item, "source": "database", "token": token}, KeyCreated, 201)


@bp.delete("/admin/keys/<key_id>")
@operation("keys", "Revoke an API key", responses={200: KeyItem}, tag="admin")
def revoke_key(key_id: str) -> ResponseReturnValue:
    """Revoke a key of the database (its page sessions end); 404, or 409 when already revoked."""
    with transaction(_service().database_url) as session:
        item = keys.revoke_key(session, key_id)
        audit("key_revoke", "api_keys", key_id, session=session)
    current_app.extensions["keyring"].forget()
    return respond({**item, "source": "database"}, KeyItem)


# --------------------------------------------------------------------------- audit


@bp.get("/admin/audit")
@operation("audit", "The audit log", query=AuditQuery, responses={200: lambda _: page_model("audit")}, tag="admin")
def audit_log() -> ResponseReturnValue:
    """Audit entries, newest first: who, when, what (ids and field names, never personal values)."""
    wanted = query(AuditQuery)
    service = _service()
    service.ensure_database()
    with transaction(service.database_url) as session:
        items, total = list_audit(session, **wanted.model_dump())
    body = {"items": items, "total": total, "page": wanted.page, "per_page": wanted.per_page}
    return respond(body, page_model("audit"))
