"""An organisation's incubation file over HTTP: ``GET /v1/organisations/<id>/file`` and its XLSX.

The file's parts are records of their own (``/v1/organisations``, ``/v1/stages``,
``/v1/milestones``, outcomes at ``/v1/engagements/<id>/outcome``); these routes read them together
(:mod:`matcher.documents.orgfile`). Analysts get every text redacted, as in the other reads.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app
from flask.typing import ResponseReturnValue

from matcher.documents import orgfile as document
from matcher.documents.recommendations import XLSX_MEDIA_TYPE
from matcher.store.transactions import transaction
from matcher.web.access import present
from matcher.web.openapi import operation
from matcher.web.payload import respond
from matcher.web.schemas import OrganisationFile

bp = Blueprint("orgfile", __name__, url_prefix="/v1")
XLSX = {200: (XLSX_MEDIA_TYPE, {"type": "string", "contentMediaType": XLSX_MEDIA_TYPE})}


def _file(org_id: str) -> dict:
    service = current_app.extensions["matcher"]
    service.ensure_database()
    with transaction(service.database_url) as session:
        return present("file", [document.organisation_file(session, org_id)], session)[0]


@bp.get("/organisations/<org_id>/file")
@operation(
    "read",
    "An organisation's incubation file (机构档案)",
    responses={200: OrganisationFile},
    description="Status and admission, stage history, the plan, staff figures, engagements with outcomes, events, resources.",
    tag="records",
)
def organisation_file(org_id: str) -> ResponseReturnValue:
    """The whole file of one organisation."""
    return respond(_file(org_id), OrganisationFile)


@bp.get("/organisations/<org_id>/file.xlsx")
@operation(
    "read",
    "An organisation's incubation file as XLSX",
    responses=XLSX,
    description="Sheets 机构, 阶段历史, 孵化计划, 需求, 合作与成效, 活动, 资源.",
    tag="records",
)
def organisation_file_xlsx(org_id: str) -> ResponseReturnValue:
    """The file as a workbook."""
    data = document.file_workbook(_file(org_id))
    name = f"file-{re.sub(r'[^A-Za-z0-9_.-]', '_', org_id)}.xlsx"
    return Response(data, mimetype=XLSX_MEDIA_TYPE, headers={"Content-Disposition": f'attachment; filename="{name}"'})
