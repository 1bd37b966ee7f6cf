"""The web page at ``/``: type a need, see ranked experts, resources and projects with their reasons."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint("ui", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    """The match page (it calls ``POST /v1/match``)."""
    return render_template("index.html")
