"""``GET /v1/overview``: what the base should recruit, from the supply-gap analysis of the libraries."""

from __future__ import annotations

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue

from matcher.web.openapi import operation
from matcher.web.payload import query, respond
from matcher.web.schemas import Overview, OverviewQuery

bp = Blueprint("overview", __name__, url_prefix="/v1")


@bp.get("/overview")
@operation(
    "read",
    "The base's overview",
    query=OverviewQuery,
    responses={200: Overview},
    description=(
        "Open needs against free expert places per category, and the open needs whose best expert scores "
        "below `threshold` (the analysis of `matcher gaps`), weakest first."
    ),
    tag="records",
)
def overview() -> ResponseReturnValue:
    """Supply against demand per category and the weakest-served open needs."""
    wanted = query(OverviewQuery)
    body = current_app.extensions["matcher"].overview(weakest=wanted.weakest, threshold=wanted.threshold)
    return respond(body, Overview)
