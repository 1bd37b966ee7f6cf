"""An organisation's incubation file (机构档案): the organisation, its stage history and plan, and
everything it received (engagements with their outcomes, events attended, resources used), as a
JSON-ready dict (:func:`organisation_file`) and as an XLSX workbook (:func:`file_workbook`, through
:mod:`matcher.documents.writer`).
"""

from __future__ import annotations

from typing import Any

from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.documents.bureau import EVENT_LABELS, GOAL_LABELS, KIND_LABELS, RESOURCE_LABELS, STATUS_LABELS
from matcher.documents.writer import append_row, save_workbook, workbook
from matcher.store.crud import get_record
from matcher.store.engagements import list_engagements
from matcher.store.records import to_local_iso
from matcher.store.schema import Attendee, Event, Resource
from matcher.store.search import list_records

__all__ = ["file_workbook", "organisation_file"]

ATTENDANCE_LABELS = {"invited": "已邀请", "confirmed": "已确认", "attended": "出席", "absent": "缺席"}
EVENT_STATUS_LABELS = {"planned": "计划中", "confirmed": "已确认", "held": "已举办", "cancelled": "已取消"}
ENGAGEMENT_LABELS = {"open": "进行中", "completed": "已完成", "cancelled": "已取消"}
MILESTONE_LABELS = {"planned": "计划中", "done": "已完成", "missed": "未按期完成"}
TYPE_LABELS = {"expert": "专家", "resource": "资源", "project": "示范项目"}


def _all(session: Session, kind: str, **filters: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        chunk, total = list_records(session, kind, page=page, per_page=1000, **filters)
        items += chunk
        if len(items) >= total or not chunk:
            return items
        page += 1


def _engagements(session: Session, org_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        chunk, total = list_engagements(session, org_id=org_id, page=page, per_page=1000)
        items += chunk
        if len(items) >= total or not chunk:
            return items
        page += 1


def organisation_file(session: Session, org_id: str) -> dict[str, Any]:
    """The whole file of ``org_id``; :class:`~matcher.errors.NotFoundError` when there is no such organisation.

    Keys: ``organisation``, ``stages`` (oldest first), ``milestones`` (by due date), ``needs``,
    ``engagements`` (with ``outcome``), ``events`` (attendances with their event), ``resources``
    (linked by an engagement, or used at an event attended) and ``summary`` (counts).
    """
    organisation = get_record(session, "organisations", org_id)
    stages = sorted(_all(session, "stages", org_id=org_id), key=lambda s: (s["since"], s["id"]))
    milestones = sorted(_all(session, "milestones", org_id=org_id), key=lambda m: (m["due_on"], m["id"]))
    needs = [
        {"id": n["id"], "title": n["title"], "tags": n["tags"], "status": n["status"], "created_at": n["created_at"]}
        for n in sorted(_all(session, "needs", org_id=org_id), key=lambda n: (n["created_at"], n["id"]))
    ]
    engagements = _engagements(session, org_id)
    attendances = session.execute(
        select(Attendee, Event)
        .join(Event, Event.id == Attendee.event_id)
        .where(Attendee.org_id == org_id, Attendee.deleted_at.is_(None), Event.deleted_at.is_(None))
        .order_by(Event.starts_at, Event.id)
    ).all()
    events = [
        {
            "event_id": event.id,
            "title": event.title,
            "kind": event.kind,
            "starts_at": to_local_iso(event.starts_at),
            "event_status": event.status,
            "attendance": attendee.status,
            "rating": attendee.rating,
            "need_id": attendee.need_id,
        }
        for attendee, event in attendances
    ]
    resource_ids = {e["target_id"] for e in engagements if e["target_type"] == "resource"}
    for _, event in attendances:
        resource_ids |= {event.venue_id, *(event.resource_ids or [])} - {None}
    resources_by_id = {r.id: r for r in session.scalars(select(Resource).where(Resource.id.in_(sorted(resource_ids))))}
    resources = []
    for engagement in engagements:
        resource = resources_by_id.get(engagement["target_id"]) if engagement["target_type"] == "resource" else None
        if resource is not None:
            resources.append(_resource(resource, "合作", engagement["need_id"], engagement["opened_at"]))
    for attendee, event in attendances:
        if attendee.status == "absent":
            continue
        for resource_id in [event.venue_id, *(event.resource_ids or [])]:
            if resource_id in resources_by_id:
                resources.append(
                    _resource(resources_by_id[resource_id], "活动", event.id, to_local_iso(event.starts_at))
                )
    completed = [e for e in engagements if e["status"] == "completed"]
    outcomes = [e["outcome"] for e in completed if e["outcome"]]
    summary = {
        "needs": len(needs),
        "engagements": len(engagements),
        "completed": len(completed),
        "awaiting_outcome": len(completed) - len(outcomes),
        "goal_met": sum(o["goal_met"] == "yes" for o in outcomes),
        "expert_hours": round(sum(o["hours"] or 0 for o in outcomes), 2),
        "events_attended": sum(e["attendance"] == "attended" for e in events),
        "resources": len(resources),
    }
    return {
        "organisation": organisation,
        "stages": stages,
        "milestones": milestones,
        "needs": needs,
        "engagements": engagements,
        "events": events,
        "resources": resources,
        "summary": summary,
    }


def _resource(resource: Resource, via: str, reference: str | None, at: str | None) -> dict[str, Any]:
    return {
        "resource_id": resource.id,
        "name": resource.name,
        "type": resource.type,
        "provider": resource.provider,
        "amount_yuan": resource.amount_yuan,
        "via": via,
        "reference": reference,
        "at": at,
    }


def _day(value: str | None) -> str:
    return value[:10] if value else ""


def file_workbook(file: dict[str, Any]) -> bytes:
    """The file as XLSX bytes: sheets 机构, 阶段历史, 孵化计划, 需求, 合作与成效, 活动, 资源."""
    org = file["organisation"]
    book = workbook()
    sheet = book.active
    sheet.title = "机构"
    for line in (
        ["机构档案", org["name"]],
        ["编号", org["id"]],
        ["类型", KIND_LABELS.get(org["kind"], org["kind"])],
        ["状态", STATUS_LABELS.get(org["status"], org["status"])],
        ["入驻日期", org["admitted_on"] or ""],
        ["离开/出壳日期", org["left_on"] or ""],
        ["当前阶段", org["stage"]],
        ["县区", org["county"]],
        ["乡镇", org["township"]],
        ["成立年份", org["founded_year"]],
        ["工作人员", org["staff_count"]],
        ["持证社工", org["licensed_social_workers"]],
        ["需求", file["summary"]["needs"]],
        ["合作", file["summary"]["engagements"]],
        ["已完成合作", file["summary"]["completed"]],
        ["待回访", file["summary"]["awaiting_outcome"]],
        ["目标达成", file["summary"]["goal_met"]],
        ["专家工时", file["summary"]["expert_hours"]],
        ["出席活动", file["summary"]["events_attended"]],
    ):
        append_row(sheet, line)
    sheet["A1"].font = Font(bold=True)
    sheet.column_dimensions["A"].width = 16
    sheet.column_dimensions["B"].width = 36

    def table(title: str, headers: list[str], rows: list[list[Any]]) -> None:
        page = book.create_sheet(title)
        append_row(page, headers)
        for cell in page[1]:
            cell.font = Font(bold=True)
        for row in rows:
            append_row(page, row)

    table("阶段历史", ["阶段", "起始日期"], [[s["stage"], s["since"]] for s in file["stages"]])
    table(
        "孵化计划",
        ["编号", "阶段", "目标", "里程碑", "截止日期", "状态"],
        [
            [
                m["id"],
                m["stage"],
                m["goal"],
                m["milestone"],
                m["due_on"],
                MILESTONE_LABELS.get(m["status"], m["status"]),
            ]
            for m in file["milestones"]
        ],
    )
    table(
        "需求",
        ["编号", "标题", "类别", "状态", "提交日期"],
        [[n["id"], n["title"], "、".join(n["tags"]), n["status"], _day(n["created_at"])] for n in file["needs"]],
    )
    rows = []
    for e in file["engagements"]:
        o = e["outcome"] or {}
        rows.append(
            [
                e["need_id"],
                e.get("need_title") or "",
                TYPE_LABELS.get(e["target_type"], e["target_type"]),
                e.get("target_name") or e["target_id"],
                ENGAGEMENT_LABELS.get(e["status"], e["status"]),
                _day(e["opened_at"]),
                _day(e["closed_at"]),
                GOAL_LABELS.get(o.get("goal_met"), "") if o else ("待回访" if e["status"] == "completed" else ""),
                o.get("rating"),
                o.get("hours"),
                o.get("changed", ""),
                o.get("follow_up_on") or "",
            ]
        )
    table(
        "合作与成效",
        [
            "需求编号",
            "需求",
            "对象类型",
            "对象",
            "状态",
            "开始",
            "结束",
            "目标达成",
            "评分",
            "专家工时",
            "变化",
            "回访日期",
        ],
        rows,
    )
    table(
        "活动",
        ["活动编号", "活动", "类型", "日期", "活动状态", "出席", "评分", "需求编号"],
        [
            [
                v["event_id"],
                v["title"],
                EVENT_LABELS.get(v["kind"], v["kind"]),
                _day(v["starts_at"]),
                EVENT_STATUS_LABELS.get(v["event_status"], v["event_status"]),
                ATTENDANCE_LABELS.get(v["attendance"], v["attendance"]),
                v["rating"],
                v["need_id"] or "",
            ]
            for v in file["events"]
        ],
    )
    table(
        "资源",
        ["资源编号", "名称", "类型", "提供方", "金额（元）", "途径", "需求/活动", "日期"],
        [
            [
                r["resource_id"],
                r["name"],
                RESOURCE_LABELS.get(r["type"], r["type"]),
                r["provider"],
                r["amount_yuan"],
                r["via"],
                r["reference"] or "",
                _day(r["at"]),
            ]
            for r in file["resources"]
        ],
    )
    return save_workbook(book)
