"""The web page at ``/``: type a need, see ranked experts, resources and projects with their reasons.

With keys configured the page asks for one and signs in (``POST /session``): the key is kept
server-side, the browser holds only an HttpOnly session cookie, and the page sends the session's
CSRF token with every write.
"""

from __future__ import annotations

from flask import Blueprint, g, render_template
from flask.typing import ResponseReturnValue

from matcher.auth import LOCAL
from matcher.web.access import soft_identity
from matcher.web.openapi import PUBLIC, operation

bp = Blueprint("ui", __name__)

ROLE_LABELS = {"coordinator": "协调员", "analyst": "分析员", "admin": "管理员"}


@bp.get("/")
@operation(PUBLIC, "The match page", responses={200: ("text/html", {"type": "string"})}, tag="service")
def index() -> ResponseReturnValue:
    """The match page (it calls ``POST /v1/match``)."""
    identity = soft_identity()
    if g.get("via_session"):
        mode = "session"
    elif identity is LOCAL:
        mode = "local"
    else:
        mode = "signed_out"
    return render_template(
        "index.html",
        identity=identity,
        mode=mode,
        role_label=ROLE_LABELS.get(identity.role, "") if identity else "",
        csrf_token=g.get("csrf_token", "") if mode == "session" else "",
    )
