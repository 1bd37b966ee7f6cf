"""The bureau report over HTTP: ``GET /v1/report`` (JSON, for the page's 工作报表) and ``GET /v1/report.xlsx``.

The same figures as ``matcher report`` (:mod:`matcher.documents.bureau`); a bad period or county is 400.
Aggregate figures hold no personal data: coordinators and analysts may read them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, current_app
from flask.typing import ResponseReturnValue

from matcher.documents.bureau import PeriodError, bureau_report, report_workbook
from matcher.documents.recommendations import XLSX_MEDIA_TYPE
from matcher.store.transactions import transaction
from matcher.web.errors import BadRequestError
from matcher.web.openapi import operation
from matcher.web.payload import query, respond
from matcher.web.schemas import BureauReport, ReportQuery

bp = Blueprint("bureau", __name__, url_prefix="/v1")
XLSX = {200: (XLSX_MEDIA_TYPE, {"type": "string", "contentMediaType": XLSX_MEDIA_TYPE})}


def _report() -> dict[str, Any]:
    wanted = query(ReportQuery)
    service = current_app.extensions["matcher"]
    service.ensure_database()
    try:
        with transaction(service.database_url) as session:
            return bureau_report(session, wanted.period, wanted.county)
    except PeriodError as error:
        raise BadRequestError(str(error)) from error


@bp.get("/report")
@operation(
    "read",
    "The bureau report (工作报表)",
    query=ReportQuery,
    responses={200: BureauReport},
    description="Organisations, social workers, needs, engagements and outcomes, events, resources and funds, "
    "by county and category, with the previous period beside.",
    tag="records",
)
def report() -> ResponseReturnValue:
    """The report's tables as JSON."""
    return respond(_report(), BureauReport)


@bp.get("/report.xlsx")
@operation(
    "read",
    "The bureau report as XLSX",
    query=ReportQuery,
    responses=XLSX,
    description="A cover sheet (period, when produced, definitions), then one sheet per table.",
    tag="records",
)
def report_xlsx() -> ResponseReturnValue:
    """The report as a workbook."""
    body = _report()
    suffix = f"-{body['county']}" if body["county"] else ""
    name = f"report-{body['period']['label']}.xlsx"
    headers = {
        "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''report-{body['period']['label']}{_quoted(suffix)}.xlsx"
    }
    return Response(report_workbook(body), mimetype=XLSX_MEDIA_TYPE, headers=headers)


def _quoted(text: str) -> str:
    return quote(text)
