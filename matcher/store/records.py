"""Validation of library records: the one definition used by ``matcher import`` and the HTTP API.

One pydantic model per kind (:data:`MODELS`): organisations, needs, experts, resources, projects and
decisions, plus :class:`FeedbackIn` for ``POST /v1/feedback``. Every model forbids unknown fields and
accepts what people type into spreadsheets:

* text is stripped; lengths are bounded (names 200, descriptions 5,000, comments 2,000 characters);
* list fields (``tags``, ``specialties``, ``counties``, ``courses``) take a list or a string split on
  ``;``, ``；`` or ``、`` (blanks and repeats dropped; :mod:`matcher.inputs.cells`);
* booleans take true/false, 1/0, yes/no, y/n, t/f, 是/否, 可用/不可用 (:func:`matcher.inputs.cells.yes_no`);
* whole numbers take ``3``, ``"3"``, ``"3.0"`` or full-width ``"３"``;
* timestamps are ISO 8601; a time without a zone is Asia/Shanghai local time, ``Z`` and offsets are
  honoured; values are kept timezone-aware and stored in UTC (:func:`to_local_iso` shows them in
  +08:00);
* enumerations accept their Chinese names too (``高`` → ``high``, ``场地`` → ``venue``, ``专家`` →
  ``expert``…) and are stored as the canonical English value;
* a blank value (``""`` or ``null``) of a field that has a default means the default (a blank
  ``created_at`` means now, a blank ``available`` means true).

Taxonomy tags and foreign keys need the database and are checked by :mod:`matcher.store.checks`.

Import headers (:func:`header_map`) are matched after Unicode NFKC, trimming and case folding; the
canonical field names always work, and so do the aliases of each kind (编号 → ``id``, 姓名 → ``name``…)
listed in :data:`matcher.inputs.cells.HEADER_ALIASES`, where every cell rule lives.

Organisation-file fields are dates (``YYYY-MM-DD``, also ``2026/7/1``); an organisation's
``left_on`` is set only once it has graduated (出壳) or left, and never before ``admitted_on``;
its licensed social workers are never more than its staff.
"""

from __future__ import annotations

import math
import numbers
import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from matcher.inputs.cells import HEADER_ALIASES, TARGET_TYPE_WORDS, split_items, yes_no
from matcher.matching.persist import VERSION_PATTERN

__all__ = [
    "ATTENDEE_STATUSES",
    "CONTROL_CHARACTERS",
    "DECISIONS",
    "EVENT_KINDS",
    "EVENT_STATUSES",
    "EVENT_TYPES",
    "FILE_KINDS",
    "GOAL_MET",
    "KINDS",
    "MILESTONE_STATUSES",
    "MODELS",
    "NEED_STATUSES",
    "ORG_KINDS",
    "ORG_STATUSES",
    "RESOURCE_TYPES",
    "STAGES",
    "TARGET_TYPES",
    "URGENCIES",
    "AttendeeIn",
    "DecisionIn",
    "EventIn",
    "ExpertIn",
    "FeedbackIn",
    "MilestoneIn",
    "NeedIn",
    "NewNeedIn",
    "OrganisationIn",
    "OutcomeIn",
    "ProjectIn",
    "ResourceIn",
    "StageIn",
    "canonical_value",
    "clean_text",
    "field_errors",
    "header_map",
    "parse_day",
    "parse_timestamp",
    "to_local_iso",
    "to_utc_iso",
]

try:
    from zoneinfo import ZoneInfo

    LOCAL_TZ: timezone | Any = ZoneInfo("Asia/Shanghai")
except Exception:  # no tz database: China has kept +08:00 without DST since 1991
    LOCAL_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

KINDS: tuple[str, ...] = ("organisations", "needs", "experts", "resources", "projects", "decisions")
STAGES = ("初创期", "成长期", "成熟期")
URGENCIES = ("low", "medium", "high")
NEED_STATUSES = ("open", "matched", "closed")
RESOURCE_TYPES = (
    "venue",
    "training_course",
    "funding",
    "manual",
    "volunteer_team",
    "supervision_service",
    "simulation_lab",
    "media_channel",
)
DECISIONS = ("accepted", "rejected", "completed", "cancelled")
TARGET_TYPES = ("expert", "resource", "project")
#: Events and their attendees: records of their own, outside the matching libraries (:data:`KINDS`).
EVENT_KINDS: tuple[str, ...] = ("events", "attendees")
EVENT_TYPES = ("training", "workshop", "supervision")
EVENT_STATUSES = ("planned", "confirmed", "held", "cancelled")
ATTENDEE_STATUSES = ("invited", "confirmed", "attended", "absent")
#: The organisation file (机构档案): stage history and the incubation plan, records of their own.
FILE_KINDS: tuple[str, ...] = ("stages", "milestones")
ORG_KINDS = ("agency", "station", "centre")
ORG_STATUSES = ("applicant", "resident", "graduated", "left")
MILESTONE_STATUSES = ("planned", "done", "missed")
GOAL_MET = ("yes", "partly", "no")

_VALUE_ALIASES: dict[str, dict[str, str]] = {
    "stage": {
        "初创": "初创期",
        "成长": "成长期",
        "成熟": "成熟期",
        "startup": "初创期",
        "growing": "成长期",
        "mature": "成熟期",
    },
    "urgency": {"低": "low", "一般": "medium", "中": "medium", "高": "high", "紧急": "high"},
    "status": {
        "待匹配": "open",
        "未匹配": "open",
        "已匹配": "matched",
        "匹配中": "matched",
        "已关闭": "closed",
        "关闭": "closed",
    },
    "type": {
        "场地": "venue",
        "培训课程": "training_course",
        "课程": "training_course",
        "资金": "funding",
        "手册": "manual",
        "志愿者团队": "volunteer_team",
        "志愿服务队": "volunteer_team",
        "督导服务": "supervision_service",
        "督导": "supervision_service",
        "仿真实验室": "simulation_lab",
        "实验室": "simulation_lab",
        "媒体渠道": "media_channel",
        "媒体": "media_channel",
    },
    "decision": {
        "接受": "accepted",
        "拒绝": "rejected",
        "完成": "completed",
        "已完成": "completed",
        "取消": "cancelled",
    },
    "target_type": TARGET_TYPE_WORDS,
    "kind": {"培训": "training", "工作坊": "workshop", "督导": "supervision"},
    "event_status": {
        "计划": "planned",
        "已确认": "confirmed",
        "确认": "confirmed",
        "已举办": "held",
        "已取消": "cancelled",
    },
    "org_kind": {
        "社工机构": "agency",
        "机构": "agency",
        "乡镇社工站": "station",
        "社工站": "station",
        "县级指导中心": "centre",
        "指导中心": "centre",
        "center": "centre",
    },
    "org_status": {
        "申请中": "applicant",
        "申请": "applicant",
        "在孵": "resident",
        "入驻": "resident",
        "已入驻": "resident",
        "出壳": "graduated",
        "已出壳": "graduated",
        "离开": "left",
        "已离开": "left",
    },
    "milestone_status": {
        "计划": "planned",
        "计划中": "planned",
        "完成": "done",
        "已完成": "done",
        "未完成": "missed",
        "逾期": "missed",
    },
    "goal_met": {"是": "yes", "达成": "yes", "部分": "partly", "部分达成": "partly", "否": "no", "未达成": "no"},
    "attendee_status": {
        "已邀请": "invited",
        "邀请": "invited",
        "已确认": "confirmed",
        "出席": "attended",
        "缺席": "absent",
    },
}

_WHOLE = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
#: Largest score a decision may record (match scores are at most a few units).
MAX_SCORE = 1000.0
_ID_PATTERN = r"^[^\s/?#%\\=+\-@][^\s/?#%\\]*$"
#: Characters no stored text may hold: C0 controls other than tab, LF and CR, and DEL.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# --------------------------------------------------------------------------- cell coercion


def clean_text(value: str) -> str:
    """``value`` with CRLF and lone CR as LF; :class:`ValueError` when it holds a control character.

    The one rule for texts typed into the API and imported from files: tab and newline are text,
    other control characters (U+0000-U+001F, U+007F) are refused, naming the first one.
    """
    found = CONTROL_CHARACTERS.search(value)
    if found:
        raise ValueError(
            f"must not contain control characters (U+{ord(found.group()):04X} at character {found.start() + 1})"
        )
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _cell_text(value: Any) -> Any:
    """Strings checked (:func:`clean_text`) and stripped; spreadsheet numbers (``12.0``) rendered as people read them."""
    if isinstance(value, str):
        return clean_text(value).strip()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


def _optional_text(value: Any) -> Any:
    value = _cell_text(value)
    return None if _blank(value) else value


def _whole_number(value: Any) -> Any:
    if _blank(value):
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        normal = unicodedata.normalize("NFKC", value).strip()
        if _WHOLE.fullmatch(normal):
            return int(normal.split(".")[0])
    return value


def _number(value: Any) -> Any:
    if _blank(value):
        return None
    if isinstance(value, str):
        value = unicodedata.normalize("NFKC", value).strip()
    return value


def _model_version(value: Any) -> Any:
    """A model version as ``matcher models`` names them (``20261129T080000Z``: :data:`matcher.matching.persist.VERSION_PATTERN`)."""
    value = _optional_text(value)
    if isinstance(value, str) and not VERSION_PATTERN.match(value):
        raise ValueError(
            f"must be a model version such as 20261129T080000Z (as `matcher models list` shows), got {value[:40]!r}"
        )
    return value


def _boolean(value: Any) -> Any:
    """A yes/no cell (:func:`matcher.inputs.cells.yes_no`); any other value is refused."""
    answer = yes_no(value)
    if answer is not None:
        return answer
    raise ValueError(f"expected true or false (1/0, yes/no, 是/否), got {value!r}")


def _items(value: Any) -> Any:
    if _blank(value):
        return []
    if isinstance(value, str):
        return list(dict.fromkeys(split_items(clean_text(value))))
    if isinstance(value, list | tuple):
        parts = [_cell_text(v) for v in value]
        if not all(isinstance(p, str) for p in parts):
            raise ValueError("expected a list of texts")
        return list(dict.fromkeys(p.strip() for p in parts if p.strip()))
    raise ValueError(f"expected a list or a text separated by ';', got {type(value).__name__}")


def _enumeration(field: str):
    aliases = _VALUE_ALIASES.get(field, {})

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            normal = unicodedata.normalize("NFKC", value).strip()
            return aliases.get(
                normal, aliases.get(normal.casefold(), normal.casefold() if normal.isascii() else normal)
            )
        return value

    return convert


def canonical_value(field: str, value: Any) -> Any:
    """An enumerated value in canonical form (``高`` → ``high``); other values as given."""
    return _enumeration(field)(value)


def parse_timestamp(value: Any) -> datetime:
    """An ISO 8601 time (or a datetime/date) as an aware datetime in UTC; naive = Asia/Shanghai."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    elif isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"expected an ISO 8601 time such as 2026-03-05T10:30:00+08:00, got {value!r}") from None
    else:
        raise ValueError(f"expected an ISO 8601 time, got {type(value).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=LOCAL_TZ)
    try:
        moment = moment.astimezone(UTC)
        moment.astimezone(LOCAL_TZ)  # it must be showable in +08:00 too (9999-12-31T20:00Z is not)
    except OverflowError:  # a ValueError, so that the caller reports the field
        raise ValueError(f"time out of range: {value!r}") from None
    return moment


def parse_day(value: Any) -> date:
    """A calendar date from ``2026-07-01``, ``2026/7/1``, a date or a datetime (its local day)."""
    if isinstance(value, datetime):
        return value.astimezone(LOCAL_TZ).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().replace("/", "-").replace(".", "-")
        parts = text.split("-")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            try:
                return date(int(parts[0]), int(parts[1]), int(parts[2]))
            except ValueError:
                pass
        raise ValueError(f"expected a date such as 2026-07-01, got {value!r}")
    raise ValueError(f"expected a date such as 2026-07-01, got {type(value).__name__}")


def _day(value: Any) -> Any:
    if _blank(value):
        return None
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    return parse_day(value)


def _timestamp(value: Any) -> Any:
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    return parse_timestamp(value)


def to_local_iso(value: datetime | None) -> str | None:
    """ISO 8601 in Asia/Shanghai time (``2026-03-05T10:30:00+08:00``); None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(LOCAL_TZ).isoformat()


def to_utc_iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z``, as the files of ``data/`` write times; None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- field types

Id = Annotated[str, BeforeValidator(_cell_text), Field(min_length=1, max_length=64, pattern=_ID_PATTERN)]
OptionalId = Annotated[
    Annotated[str, Field(min_length=1, max_length=64, pattern=_ID_PATTERN)] | None, BeforeValidator(_optional_text)
]


def _text(max_length: int, *, required: bool = False) -> Any:
    return Annotated[str, BeforeValidator(_cell_text), Field(min_length=1 if required else 0, max_length=max_length)]


def _list(max_items: int, item_length: int) -> Any:
    return Annotated[
        list[Annotated[str, Field(max_length=item_length)]], BeforeValidator(_items), Field(max_length=max_items)
    ]


def _whole(minimum: int, maximum: int) -> Any:
    return Annotated[int, BeforeValidator(_whole_number), Field(ge=minimum, le=maximum, strict=True)]


def _optional_whole(minimum: int, maximum: int) -> Any:
    return Annotated[Annotated[int, Field(ge=minimum, le=maximum, strict=True)] | None, BeforeValidator(_whole_number)]


def _choice(field: str, values: tuple[str, ...]) -> Any:
    return Annotated[Literal[values], BeforeValidator(_enumeration(field))]  # type: ignore[valid-type]


Flag = Annotated[bool, BeforeValidator(_boolean)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
Tags = _list(10, 64)
Counties = _list(10, 50)
Courses = _list(30, 200)
Name100 = _text(100, required=True)
Name200 = _text(200, required=True)
County = _text(50, required=True)
Text50 = _text(50)
Text100 = _text(100)
Text200 = _text(200)
Text2000 = _text(2000)
Text5000 = _text(5000)
Description = _text(5000, required=True)
Year = _optional_whole(1900, 2100)
Count = _optional_whole(0, 1_000_000)
Yuan = _optional_whole(0, 10_000_000_000)  # a fund's amount: up to ten billion yuan
Capacity = _whole(0, 1000)
Rating = _optional_whole(1, 5)
Rank = _optional_whole(1, 10_000)
Score = Annotated[
    Annotated[float, Field(allow_inf_nan=False, ge=-MAX_SCORE, le=MAX_SCORE)] | None, BeforeValidator(_number)
]
ModelVersion = Annotated[Annotated[str, Field(max_length=32)] | None, BeforeValidator(_model_version)]
Stage = _choice("stage", STAGES)
Urgency = _choice("urgency", URGENCIES)
NeedStatus = _choice("status", NEED_STATUSES)
ResourceType = _choice("type", RESOURCE_TYPES)
TargetType = _choice("target_type", TARGET_TYPES)
DecisionValue = _choice("decision", DECISIONS)
EventType = _choice("kind", EVENT_TYPES)
EventStatus = _choice("event_status", EVENT_STATUSES)
AttendeeStatus = _choice("attendee_status", ATTENDEE_STATUSES)
Ids = Annotated[list[Annotated[str, Field(max_length=64)]], BeforeValidator(_items), Field(min_length=1, max_length=10)]
OptionalIds = _list(10, 64)
Seats = _whole(1, 100_000)
Day = Annotated[date, BeforeValidator(_day)]
OptionalDay = Annotated[date | None, BeforeValidator(_day)]
OrgKind = _choice("org_kind", ORG_KINDS)
OrgStatus = _choice("org_status", ORG_STATUSES)
MilestoneStatus = _choice("milestone_status", MILESTONE_STATUSES)
GoalMet = _choice("goal_met", GOAL_MET)
Hours = Annotated[Annotated[float, Field(allow_inf_nan=False, ge=0, le=10_000)] | None, BeforeValidator(_number)]


class _Record(BaseModel):
    """Shared configuration: unknown fields are errors; blank values of defaulted fields mean the default."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, validate_default=False)

    @model_validator(mode="before")
    @classmethod
    def _blank_means_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {
            key: value
            for key, value in data.items()
            if not (key in fields and not fields[key].is_required() and _blank(value))
        }


class OrganisationIn(_Record):
    """An incubated organisation or township social-work station."""

    id: Id
    name: Name200
    stage: Stage
    county: County
    township: Text50 = ""
    founded_year: Year = None
    staff_count: Count = None
    kind: OrgKind = "agency"
    status: OrgStatus = "resident"
    admitted_on: OptionalDay = None
    left_on: OptionalDay = None
    licensed_social_workers: Count = None

    @field_validator("admitted_on")
    @classmethod
    def _admitted(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is not None and info.data.get("status") == "applicant":
            raise ValueError("an applicant has not been admitted yet (leave it empty)")
        return value

    @field_validator("left_on")
    @classmethod
    def _left(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is not None and info.data.get("status", "resident") not in ("graduated", "left"):
            raise ValueError("only an organisation that graduated or left has a leaving date")
        admitted = info.data.get("admitted_on")
        if value is not None and admitted is not None and value < admitted:
            raise ValueError(f"must not be before admitted_on ({admitted.isoformat()})")
        return value

    @field_validator("licensed_social_workers")
    @classmethod
    def _licensed(cls, value: int | None, info: ValidationInfo) -> int | None:
        staff = info.data.get("staff_count")
        if value is not None and staff is not None and value > staff:
            raise ValueError(f"{value} licensed social workers is more than the staff ({staff})")
        return value


class NeedIn(_Record):
    """A need filed by an organisation (需求库)."""

    id: Id
    org_id: Id
    title: Name200
    description: Description
    tags: Tags = []
    urgency: Urgency = "medium"
    status: NeedStatus = "open"
    created_at: Timestamp = Field(default_factory=_utcnow)


class NewNeedIn(NeedIn):
    """A need to create (``POST /v1/needs``): without an ``id`` the service assigns the next ``N`` number."""

    id: OptionalId = None  # type: ignore[assignment]


class ExpertIn(_Record):
    """An expert (专家库); ``capacity`` = engagements taken on at the same time."""

    id: Id
    name: Name100
    affiliation: Text200 = ""
    org_id: OptionalId = None
    title: Text100 = ""
    specialties: Tags = []
    bio: Text5000 = ""
    counties: Counties = []
    capacity: Capacity = 1
    available: Flag = True
    phone: Text50 = ""
    email: Text200 = ""
    courses: Courses = []


class ResourceIn(_Record):
    """A resource (资源库); an empty ``county`` means district-wide."""

    id: Id
    type: ResourceType
    name: Name200
    description: Text5000 = ""
    provider: Text200 = ""
    county: Text50 = ""
    quantity: Count = None
    tags: Tags = []
    seats: Count = None  # venues: how many people it seats (events need seats >= attendees)
    amount_yuan: Yuan = None  # funding: the amount in yuan (its funder is ``provider``)

    @field_validator("amount_yuan")
    @classmethod
    def _funding_only(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("type") not in (None, "funding"):
            raise ValueError("only a funding resource (资金) has an amount")
        return value


class ProjectIn(_Record):
    """An exemplary / brand project (项目库)."""

    id: Id
    name: Name200
    org_id: OptionalId = None
    tags: Tags = []
    description: Text5000 = ""
    outcomes: Text5000 = ""


class FeedbackIn(_Record):
    """A coordinator's decision on a recommended target (``POST /v1/feedback``)."""

    need_id: Id
    target_type: TargetType
    target_id: Id
    decision: DecisionValue
    rating: Rating = None
    comment: Text2000 = ""
    model_version: ModelVersion = None
    rank: Rank = None
    score: Score = None


class DecisionIn(FeedbackIn):
    """One stored coordinator decision (history import): a feedback with its id and time."""

    id: Id
    decided_at: Timestamp = Field(default_factory=_utcnow)


class EventIn(_Record):
    """A training, workshop or supervision round; each expert gives one unit of capacity while it is confirmed."""

    id: Id
    kind: EventType
    title: Name200
    description: Text5000 = ""
    tags: Tags = []
    expert_ids: Ids
    venue_id: OptionalId = None
    resource_ids: OptionalIds = []
    county: Text50 = ""
    starts_at: Timestamp
    ends_at: Timestamp
    seats: Seats
    status: EventStatus = "planned"

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        starts = info.data.get("starts_at")
        if starts is not None and value <= starts:
            raise ValueError("must be later than starts_at")
        return value


class AttendeeIn(_Record):
    """An organisation (or township station) attending an event, with the need it comes for if any."""

    id: Id
    event_id: Id
    org_id: Id
    need_id: OptionalId = None
    status: AttendeeStatus = "invited"
    rating: Rating = None
    comment: Text2000 = ""

    @field_validator("rating")
    @classmethod
    def _rated_when_attended(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("status", "invited") != "attended":
            raise ValueError("only an attendee who attended rates the event")
        return value


class StageIn(_Record):
    """One step of an organisation's stage history: the stage it has been in ``since`` that day."""

    id: Id
    org_id: Id
    stage: Stage
    since: Day


class MilestoneIn(_Record):
    """A milestone of an organisation's incubation plan: the stage's goal, what is due when, and its status."""

    id: Id
    org_id: Id
    stage: Stage
    goal: Name200
    milestone: Name200
    due_on: Day
    status: MilestoneStatus = "planned"


class OutcomeIn(_Record):
    """The follow-up of a completed engagement (回访): was its goal met, how it went, the expert's hours."""

    goal_met: GoalMet
    rating: _whole(1, 5)  # type: ignore[valid-type]
    hours: Hours = None
    changed: Text2000 = ""
    follow_up_on: OptionalDay = None


MODELS: dict[str, type[_Record]] = {
    "organisations": OrganisationIn,
    "needs": NeedIn,
    "experts": ExpertIn,
    "resources": ResourceIn,
    "projects": ProjectIn,
    "decisions": DecisionIn,
    "events": EventIn,
    "attendees": AttendeeIn,
    "stages": StageIn,
    "milestones": MilestoneIn,
}

# --------------------------------------------------------------------------- import headers



def header_map(kind: str) -> dict[str, str]:
    """Header key (:func:`matcher.inputs.cells.cell_key`) → field of ``kind``: the field names and their
    aliases (:data:`matcher.inputs.cells.HEADER_ALIASES`)."""
    model = MODELS[kind]
    mapping = {name: name for name in model.model_fields}
    mapping.update(HEADER_ALIASES[kind])
    return mapping


# --------------------------------------------------------------------------- errors


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this record"
    if kind in ("string_too_short", "too_short") and context.get("min_length") == 1:
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        return "must be an id without spaces or / ? # % \\, not beginning with = + - @"
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    message = error["msg"]
    given = error.get("input")
    if isinstance(given, bool | int | float) or (
        isinstance(given, str) and len(given) <= 40 and kind != "string_too_long"
    ):
        message += f", got {given!r}"
    return message


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """``[{field, message}]`` of a pydantic error; each message starts with the field name."""
    result: list[dict[str, str]] = []
    for item in error.errors(include_url=False):
        location = [str(part) for part in item["loc"]]
        field = location[0] if location else "body"
        where = ".".join(location) or "body"
        result.append({"field": field, "message": f"{where}: {_message(item)}"})
    return result
