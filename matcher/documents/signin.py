"""An event's sign-in sheet (签到表): one line per attendee with a signature slot, as XLSX.

Built with the package's one tabular writer (:mod:`matcher.documents.writer`). The experts' contacts appear
only when the caller passes experts with ``phone``/``email`` (the web layer leaves them out for roles
without the contacts permission and audits the coordinators' views).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.documents.writer import xlsx_table
from matcher.store.schema import Attendee, Need, Organisation, Resource

__all__ = ["SIGNIN_HEADERS", "signin_rows", "signin_workbook"]

SIGNIN_HEADERS = ("序号", "机构", "需求", "出席状态", "签到（签名）", "备注")
_COLUMNS = ("number", "organisation", "need", "status", "signature", "note")
_STATUS = {"invited": "已邀请", "confirmed": "已确认", "attended": "出席", "absent": "缺席"}


def signin_rows(session: Session, event_id: str) -> list[dict[str, Any]]:
    """The live attendees of an event in id order, with their organisation's name and need's title."""
    query = (
        select(Attendee, Organisation.name, Need.title)
        .join(Organisation, Organisation.id == Attendee.org_id)
        .outerjoin(Need, Need.id == Attendee.need_id)
        .where(Attendee.event_id == event_id, Attendee.deleted_at.is_(None))
        .order_by(Attendee.id)
    )
    return [
        {
            "number": n,
            "organisation": name,
            "need": title or "（无具体需求）",
            "status": _STATUS.get(attendee.status, attendee.status),
            "signature": "",
            "note": "",
        }
        for n, (attendee, name, title) in enumerate(session.execute(query).all(), start=1)
    ]


def signin_workbook(session: Session, event: dict[str, Any], experts: list[dict[str, Any]]) -> bytes:
    """The sign-in sheet of ``event`` (an API item) with its ``experts`` (API items, contacts or not)."""
    venue = session.get(Resource, event["venue_id"]) if event.get("venue_id") else None
    people = []
    for expert in experts:
        contact = "，".join(v for v in (expert.get("phone"), expert.get("email")) if v)
        people.append(f"{expert['name']}（{contact}）" if contact else expert["name"])
    preamble = [
        [f"签到表：{event['title']}"],
        ["时间", f"{event['starts_at'][:16].replace('T', ' ')} 至 {event['ends_at'][11:16]}"],
        ["地点", venue.name if venue is not None else "（未定）"],
        ["专家", "；".join(people)],
        [],
    ]
    return xlsx_table(
        signin_rows(session, event["id"]), _COLUMNS, sheet="签到表", headers=SIGNIN_HEADERS, preamble=preamble
    )
