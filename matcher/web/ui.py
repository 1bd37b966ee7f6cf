"""The coordinators' page at ``/``: needs, matches with their reasons, decisions, engagements, overview.

One server-rendered page (Chinese, no build step) whose plain JavaScript (``static/match.js``)
calls the JSON API. With keys configured the page asks for one and signs in (``POST /session``):
the key is kept server-side, the browser holds only an HttpOnly session cookie, and the page sends
the session's CSRF token with every write. What the page offers follows the role: only roles that
may record decisions see accept/reject, only roles with the contacts permission see contacts, only
roles that may edit the libraries can save a typed need.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, g, render_template
from flask.typing import ResponseReturnValue

from matcher.roles import LOCAL, ROLES
from matcher.store.records import NEED_STATUSES, STAGES, URGENCIES
from matcher.web.access import soft_identity
from matcher.web.openapi import PUBLIC, operation

bp = Blueprint("ui", __name__)
logger = logging.getLogger(__name__)

ROLE_LABELS = {"coordinator": "协调员", "analyst": "分析员", "admin": "管理员"}
URGENCY_LABELS = {"high": "紧急", "medium": "一般", "low": "不急"}
STATUS_LABELS = {"open": "待匹配", "matched": "已匹配", "closed": "已关闭"}


def _choices() -> dict[str, list[str]]:
    """The values the filters offer, from the libraries as stored (empty when they cannot be read)."""
    try:
        libraries = current_app.extensions["matcher"].libraries()
    except Exception as error:  # the page still loads; its API calls will say what is wrong
        logger.warning("the page's filter values could not be read: %s", error)
        return {"categories": [], "counties": []}
    counties = sorted({c for c in libraries.organisations["county"] if c})
    return {"categories": libraries.taxonomy["label"].tolist(), "counties": counties}


@bp.get("/")
@operation(PUBLIC, "The coordinators' page", responses={200: ("text/html", {"type": "string"})}, tag="service")
def index() -> ResponseReturnValue:
    """The page (it calls the JSON API)."""
    identity = soft_identity()
    if g.get("via_session"):
        mode = "session"
    elif identity is LOCAL:
        mode = "local"
    else:
        mode = "signed_out"
    permissions: Any = ROLES.get(identity.role, frozenset()) if identity else frozenset()
    return render_template(
        "index.html",
        identity=identity,
        mode=mode,
        role=identity.role if identity else "",
        role_label=ROLE_LABELS.get(identity.role, "") if identity else "",
        can_decide="feedback" in permissions,
        can_contact="contacts" in permissions,
        can_edit="edit" in permissions,
        can_match="match" in permissions,
        csrf_token=g.get("csrf_token", "") if mode == "session" else "",
        choices=_choices() if identity else {"categories": [], "counties": []},
        stages=STAGES,
        urgencies=[(u, URGENCY_LABELS[u]) for u in reversed(URGENCIES)],
        statuses=[(s, STATUS_LABELS[s]) for s in NEED_STATUSES],
    )
