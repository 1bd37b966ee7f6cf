"""The report for the public-services bureau (公共服务局): the base's figures for a period, beside the previous one.

:func:`parse_period` reads ``2026Q3`` (a quarter), ``2026-07`` (a month) or ``2026`` (a year);
:func:`bureau_report` computes every table from the database; :func:`report_workbook` writes them,
one sheet per table with Chinese headers and numbers as numbers, after a cover sheet (period,
previous period, county, when produced, how each figure is counted). Dates are days in
Asia/Shanghai time; a period runs from its first day to its last, both included.

Each table is long: one row per (县区, 类别, 项目) with 本期, 上期 and 变化, and a 合计 county that
counts each record once (a need with two categories counts once in 合计 and once in each category).
How each figure is counted is in :data:`DEFINITIONS` (printed on the cover sheet and in the README).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.documents.writer import append_row, save_workbook, workbook
from matcher.store.records import LOCAL_TZ, STAGES
from matcher.store.schema import (
    Attendee,
    Decision,
    Engagement,
    Event,
    Need,
    Organisation,
    Outcome,
    Resource,
    StageStep,
    utcnow,
)

__all__ = ["DEFINITIONS", "TABLES", "Period", "bureau_report", "parse_period", "report_workbook"]

TOTAL = "合计"
STATUS_LABELS = {"applicant": "申请中", "resident": "在孵", "graduated": "已出壳", "left": "已离开"}
KIND_LABELS = {"agency": "社工机构", "station": "乡镇社工站", "centre": "县级指导中心"}
EVENT_LABELS = {"training": "主题培训", "workshop": "实务工作坊", "supervision": "督导巡回"}
RESOURCE_LABELS = {
    "venue": "场地",
    "training_course": "培训课程",
    "funding": "资金",
    "manual": "手册",
    "volunteer_team": "志愿者团队",
    "supervision_service": "督导服务",
    "simulation_lab": "仿真实验室",
    "media_channel": "媒体渠道",
}
GOAL_LABELS = {"yes": "目标达成", "partly": "部分达成", "no": "未达成"}
#: Sheet name and title of each table, in order.
TABLES = {
    "organisations": "机构",
    "social_workers": "持证社工",
    "needs": "需求",
    "engagements": "合作与成效",
    "events": "培训活动",
    "resources": "资源链接",
    "funds": "资金来源",
}
HEADERS = ("县区", "类别", "项目", "本期", "上期", "变化")
DEFINITIONS = (
    "机构：期末（本期最后一天）的状态、阶段和类型；入驻日期晚于期末或成立年份晚于期末的机构不计。阶段取期末前最近一次阶段记录，没有记录时取当前阶段。",
    "本期入驻／出壳／离开：入驻日期或离开日期在本期内的机构。",
    "持证社工、工作人员：期末在孵机构的当前人数（人数没有历史记录）。",
    "新增需求：本期提交的需求；已满足：第一次完成合作在本期的需求；首次接受中位天数：第一次接受推荐在本期的需求，从提交到接受的天数中位数。",
    "完成合作：本期完成的合作；回访与成效：这些合作中已记录回访的，按目标达成情况；专家工时：回访记录的专家工时之和。",
    "培训活动：本期举办（已举办）的活动场次，以及出席的机构数；按参加机构所在县区计，合计中每场只计一次。",
    "资源链接：本期接受的资源推荐（按资源类型）；资金：本期链接的资金类资源的金额，按提供方（来源）计，同一资金在一期内只计一次。",
    "类别：需求和合作按需求的类别计，一条需求有几个类别就在几个类别中各计一次，“全部”中只计一次。",
)
_PERIOD = re.compile(r"^\s*(\d{4})(?:\s*[Qq]\s*([1-4])|-(\d{1,2}))?\s*$")


class PeriodError(ValueError):
    """A period or county the report cannot be made for; the message names the option."""


@dataclass(frozen=True)
class Period:
    """A reporting period: ``start`` and ``end`` are its first and last day."""

    label: str
    start: date
    end: date

    def __contains__(self, day: date | None) -> bool:
        return day is not None and self.start <= day <= self.end

    def previous(self) -> Period:
        """The period of the same kind just before (2026Q2 before 2026Q3, 2026-06 before 2026-07, 2025 before 2026)."""
        return parse_period(_shift(self.label))

    def describe(self) -> str:
        return f"{self.label}（{self.start.isoformat()} 至 {self.end.isoformat()}）"


def _shift(label: str) -> str:
    year, quarter, month = _PERIOD.match(label).groups()
    year = int(year)
    if quarter:
        q = int(quarter) - 1
        return f"{year - 1}Q4" if q == 0 else f"{year}Q{q}"
    if month:
        m = int(month) - 1
        return f"{year - 1}-12" if m == 0 else f"{year}-{m:02d}"
    return str(year - 1)


def parse_period(text: str) -> Period:
    """``2026Q3``, ``2026-07`` or ``2026`` as a :class:`Period`; :class:`PeriodError` otherwise."""
    found = _PERIOD.match(str(text or ""))
    year = int(found.group(1)) if found else 0
    if not found or not 2000 <= year <= 2100 or (found.group(3) and not 1 <= int(found.group(3)) <= 12):
        raise PeriodError(
            f"period: {text!r} is not a period; use a quarter (2026Q3), a month (2026-07) or a year (2026)"
        )
    _, quarter, month = found.groups()
    if quarter:
        first = date(year, 3 * int(quarter) - 2, 1)
        months, label = 3, f"{year}Q{quarter}"
    elif month:
        first = date(year, int(month), 1)
        months, label = 1, f"{year}-{int(month):02d}"
    else:
        first, months, label = date(year, 1, 1), 12, str(year)
    after = first.month - 1 + months
    last = date(first.year + after // 12, after % 12 + 1, 1) - timedelta(days=1)
    return Period(label, first, last)


def _day(moment: datetime | None) -> date | None:
    return moment.astimezone(LOCAL_TZ).date() if moment is not None else None


# --------------------------------------------------------------------------- the data, read once


@dataclass
class _Data:
    orgs: dict[str, Organisation]
    stages: dict[str, list[StageStep]]
    needs: dict[str, Need]
    decisions: list[Decision]
    engagements: list[Engagement]
    outcomes: dict[int, Outcome]
    events: dict[str, Event]
    attendees: list[Attendee]
    resources: dict[str, Resource]


def _read(session: Session, county: str | None) -> _Data:
    live = lambda table: select(table).where(table.deleted_at.is_(None))  # noqa: E731
    orgs = {o.id: o for o in session.scalars(live(Organisation))}
    if county:
        orgs = {k: o for k, o in orgs.items() if o.county == county}
    stages: dict[str, list[StageStep]] = defaultdict(list)
    for step in session.scalars(live(StageStep).order_by(StageStep.since, StageStep.id)):
        stages[step.org_id].append(step)
    needs = {n.id: n for n in session.scalars(live(Need)) if n.org_id in orgs}
    decisions = [
        d for d in session.scalars(select(Decision).order_by(Decision.decided_at, Decision.id)) if d.need_id in needs
    ]
    engagements = [e for e in session.scalars(select(Engagement).order_by(Engagement.id)) if e.need_id in needs]
    outcomes = {o.engagement_id: o for o in session.scalars(select(Outcome)) if o.engagement_id is not None}
    events = {e.id: e for e in session.scalars(live(Event))}
    attendees = [a for a in session.scalars(live(Attendee).order_by(Attendee.id)) if a.org_id in orgs]
    resources = {r.id: r for r in session.scalars(select(Resource))}
    return _Data(orgs, stages, needs, decisions, engagements, outcomes, events, attendees, resources)


# --------------------------------------------------------------------------- the figures of one period


class _Counter:
    """Figures keyed by (county, group, item); every record counted in its county and in 合计."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], float] = defaultdict(float)

    def add(self, county: str, group: str, item: str, value: float = 1) -> None:
        self.values[(county, group, item)] += value
        self.values[(TOTAL, group, item)] += value


def _state(org: Organisation, stages: list[StageStep], day: date) -> tuple[str, str] | None:
    """(status, stage) of an organisation on ``day``; None when it was not yet in the records."""
    if org.founded_year and org.founded_year > day.year:
        return None
    if org.admitted_on is not None:
        if org.admitted_on > day:
            return None
        status = org.status if org.left_on is not None and org.left_on <= day else "resident"
    elif org.status in ("graduated", "left") and org.left_on is not None and org.left_on > day:
        status = "resident"
    else:
        status = org.status
    earlier = [s for s in stages if s.since <= day]
    stage = earlier[-1].stage if earlier else stages[0].stage if stages else org.stage
    return status, stage


def _organisations(data: _Data, period: Period) -> tuple[_Counter, _Counter]:
    orgs, workers = _Counter(), _Counter()
    for org in data.orgs.values():
        county = org.county
        state = _state(org, data.stages.get(org.id, []), period.end)
        if state is not None:
            status, stage = state
            orgs.add(county, "状态", STATUS_LABELS.get(status, status))
            if status == "resident":
                orgs.add(county, "在孵机构阶段", stage)
                kind = KIND_LABELS.get(org.kind, org.kind)
                orgs.add(county, "在孵机构类型", kind)
                workers.add(county, kind, "在孵机构数")
                workers.add(county, kind, "工作人员", org.staff_count or 0)
                workers.add(county, kind, "持证社工", org.licensed_social_workers or 0)
        if org.admitted_on in period:
            orgs.add(county, "本期变动", "入驻")
        if org.left_on in period:
            orgs.add(county, "本期变动", "出壳" if org.status == "graduated" else "离开")
    return orgs, workers


def _categories(need: Need) -> list[str]:
    return ["全部", *dict.fromkeys(need.tags or [])]


def _needs(data: _Data, period: Period) -> _Counter:
    result = _Counter()
    days: dict[tuple[str, str], list[float]] = defaultdict(list)
    first_accept: dict[str, Decision] = {}
    for decision in data.decisions:
        if decision.decision == "accepted" and decision.need_id not in first_accept:
            first_accept[decision.need_id] = decision
    first_done: dict[str, date] = {}
    for engagement in data.engagements:
        if engagement.status == "completed" and engagement.closed_at is not None:
            day = _day(engagement.closed_at)
            if engagement.need_id not in first_done or day < first_done[engagement.need_id]:
                first_done[engagement.need_id] = day
    for need in data.needs.values():
        county = data.orgs[need.org_id].county
        for category in _categories(need):
            if _day(need.created_at) in period:
                result.add(county, category, "新增需求")
            if first_done.get(need.id) in period:
                result.add(county, category, "已满足")
            accepted = first_accept.get(need.id)
            if accepted is not None and _day(accepted.decided_at) in period:
                waited = max(0.0, (accepted.decided_at - need.created_at).total_seconds() / 86400)
                days[(county, category)].append(waited)
                days[(TOTAL, category)].append(waited)
    for (county, category), values in days.items():
        result.values[(county, category, "首次接受中位天数")] = round(statistics.median(values), 1)
    return result


def _engagements(data: _Data, period: Period) -> _Counter:
    result = _Counter()
    ratings: dict[tuple[str, str], list[int]] = defaultdict(list)
    for engagement in data.engagements:
        if engagement.status != "completed" or _day(engagement.closed_at) not in period:
            continue
        need = data.needs[engagement.need_id]
        county = data.orgs[need.org_id].county
        outcome = data.outcomes.get(engagement.id)
        for category in _categories(need):
            result.add(county, category, "完成合作")
            if outcome is None:
                result.add(county, category, "待回访")
                continue
            result.add(county, category, "已回访")
            result.add(county, category, GOAL_LABELS[outcome.goal_met])
            if outcome.hours is not None and engagement.target_type == "expert":
                result.add(county, category, "专家工时", outcome.hours)
            ratings[(county, category)].append(outcome.rating)
            ratings[(TOTAL, category)].append(outcome.rating)
    for (county, category), values in ratings.items():
        result.values[(county, category, "平均评分")] = round(statistics.fmean(values), 2)
    return result


def _events(data: _Data, period: Period) -> _Counter:
    result = _Counter()
    counted: set[tuple[str, str]] = set()
    for attendee in data.attendees:
        event = data.events.get(attendee.event_id)
        if event is None or event.status != "held" or _day(event.starts_at) not in period:
            continue
        county = data.orgs[attendee.org_id].county
        kind = EVENT_LABELS.get(event.kind, event.kind)
        for where in (county, TOTAL):
            if (where, event.id) not in counted:
                counted.add((where, event.id))
                result.values[(where, kind, "举办场次")] += 1
        if attendee.status == "attended":
            result.add(county, kind, "出席机构")
    return result


def _resources(data: _Data, period: Period) -> tuple[_Counter, _Counter]:
    links, funds = _Counter(), _Counter()
    seen: set[tuple[str, str]] = set()
    for engagement in data.engagements:
        if engagement.target_type != "resource" or _day(engagement.opened_at) not in period:
            continue
        resource = data.resources.get(engagement.target_id)
        if resource is None:
            continue
        county = data.orgs[data.needs[engagement.need_id].org_id].county
        links.add(county, RESOURCE_LABELS.get(resource.type, resource.type), "链接次数")
        if resource.type == "funding":
            source = resource.provider or "（未注明）"
            funds.add(county, source, "链接次数")
            for where in (county, TOTAL):
                if resource.amount_yuan is not None and (where, resource.id) not in seen:
                    seen.add((where, resource.id))
                    funds.values[(where, source, "金额（元）")] += resource.amount_yuan
    return links, funds


def _figures(data: _Data, period: Period) -> dict[str, _Counter]:
    orgs, workers = _organisations(data, period)
    links, funds = _resources(data, period)
    return {
        "organisations": orgs,
        "social_workers": workers,
        "needs": _needs(data, period),
        "engagements": _engagements(data, period),
        "events": _events(data, period),
        "resources": links,
        "funds": funds,
    }


# --------------------------------------------------------------------------- the report


_ITEM_ORDER = {
    name: i
    for i, name in enumerate(
        (
            *STATUS_LABELS.values(),
            *STAGES,
            *KIND_LABELS.values(),
            "入驻",
            "出壳",
            "离开",
            "在孵机构数",
            "工作人员",
            "持证社工",
            "新增需求",
            "已满足",
            "首次接受中位天数",
            "完成合作",
            "已回访",
            "待回访",
            *GOAL_LABELS.values(),
            "平均评分",
            "专家工时",
            "举办场次",
            "出席机构",
            "链接次数",
            "金额（元）",
        )
    )
}


_GROUP_ORDER = {name: i for i, name in enumerate(("全部", "状态", "在孵机构阶段", "在孵机构类型", "本期变动"))}


def _number(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(float(value), 2)


def _rows(current: _Counter, previous: _Counter, counties: list[str]) -> list[dict[str, Any]]:
    keys = set(current.values) | set(previous.values)
    county_order = {c: i for i, c in enumerate([TOTAL, *counties])}

    def order(key: tuple[str, str, str]) -> tuple:
        county, group, item = key
        return (
            county_order.get(county, len(county_order)),
            county,
            group != "全部",
            group,
            _ITEM_ORDER.get(item, 99),
            item,
        )

    rows = []
    for key in sorted(keys, key=order):
        now, before = current.values.get(key), previous.values.get(key)
        averaged = key[2] in ("首次接受中位天数", "平均评分")
        if not averaged:
            now, before = now or 0, before or 0
        change = None if now is None or before is None else now - before
        county, group, item = key
        rows.append(
            {
                "county": county,
                "group": group,
                "item": item,
                "current": _number(now),
                "previous": _number(before),
                "change": _number(round(change, 2) if change is not None else None),
            }
        )
    return rows


def bureau_report(session: Session, period: str | Period, county: str | None = None) -> dict[str, Any]:
    """Every table of the report for ``period`` (and the previous period beside it), JSON-ready.

    ``county`` keeps that county's organisations (and their needs, engagements, attendances and
    links); :class:`PeriodError` for a bad period or an unknown county.
    """
    period = period if isinstance(period, Period) else parse_period(period)
    before = period.previous()
    counties = sorted(
        {c for c in session.scalars(select(Organisation.county).where(Organisation.deleted_at.is_(None)))}
    )
    if county is not None and county.strip():
        county = county.strip()
        if county not in counties:
            raise PeriodError(f"county: {county!r} has no organisation; counties: {'、'.join(counties)}")
    else:
        county = None
    data = _read(session, county)
    current, previous = _figures(data, period), _figures(data, before)
    shown = [county] if county else counties
    tables = [
        {"name": name, "title": title, "rows": _rows(current[name], previous[name], shown)}
        for name, title in TABLES.items()
    ]
    return {
        "period": {"label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat()},
        "previous": {"label": before.label, "start": before.start.isoformat(), "end": before.end.isoformat()},
        "county": county,
        "produced_at": utcnow().astimezone(LOCAL_TZ).isoformat(timespec="seconds"),
        "headers": list(HEADERS),
        "definitions": list(DEFINITIONS),
        "tables": tables,
    }


def report_workbook(report: dict[str, Any]) -> bytes:
    """The report as XLSX bytes: a cover sheet (封面), then one sheet per table, through :mod:`matcher.documents.writer`."""
    book = workbook()
    cover = book.active
    cover.title = "封面"
    period, previous = report["period"], report["previous"]
    lines: Iterable[list[Any]] = [
        ["雄安新区社会工作孵化培育基地 工作报表"],
        [],
        ["报告期", f"{period['label']}（{period['start']} 至 {period['end']}）"],
        ["对比期（上期）", f"{previous['label']}（{previous['start']} 至 {previous['end']}）"],
        ["县区", report["county"] or "全部县区"],
        ["生成时间", report["produced_at"]],
        [],
        ["统计口径"],
        *[[definition] for definition in report["definitions"]],
    ]
    for line in lines:
        append_row(cover, line)
    cover["A1"].font = Font(bold=True, size=14)
    cover.column_dimensions["A"].width = 18
    cover.column_dimensions["B"].width = 40
    for table in report["tables"]:
        sheet = book.create_sheet(table["title"])
        append_row(sheet, report["headers"])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in table["rows"]:
            append_row(
                sheet, [row["county"], row["group"], row["item"], row["current"], row["previous"], row["change"]]
            )
        for letter, width in zip("ABCDEF", (10, 18, 18, 10, 10, 10), strict=True):
            sheet.column_dimensions[letter].width = width
    return save_workbook(book)
