"""Cell rules: how a spreadsheet cell reads as a list or a yes/no, and which header names which field.

Every reader of people's files and requests takes its cells through here, so that the same cell means
the same everywhere: the user library files of ``matcher batch`` and ``matcher assign``
(:mod:`matcher.inputs.files`), the embedded libraries (:mod:`matcher.inputs.library`), the records of
``matcher import`` and the HTTP API (:mod:`matcher.store.records`), the judgments file
(:mod:`matcher.matching.judgments`) and the conflict and forced-pair files of ``matcher assign``
(:mod:`matcher.jobs.assign.job`).

* A cell reads as text as the user sees it (:func:`cell_text`: XLSX ``12.0`` is ``12``).
* Headers and words compare after Unicode NFKC, trimming and case folding (:func:`cell_key`).
* A list cell is a list, or a text split on ``;``, ``；`` or ``、`` (:data:`LIST_SEPARATORS`); items are
  trimmed and blank ones dropped (:func:`split_items`, :func:`split_list`).
* A yes/no cell is one of :data:`YES_WORDS` or :data:`NO_WORDS` (:func:`yes_no`); every reader refuses
  any other word, with its own message.
* Header aliases (mostly Chinese) per kind of file: :data:`HEADER_ALIASES`; the canonical field names
  always work too.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

__all__ = [
    "HEADER_ALIASES",
    "LIST_SEPARATORS",
    "NO_WORDS",
    "TARGET_TYPE_WORDS",
    "YES_WORDS",
    "aliases_of",
    "cell_at",
    "cell_key",
    "cell_text",
    "split_items",
    "split_list",
    "yes_no",
]

#: What separates the items of a list cell: ``a;b``, ``a；b``, ``a、b``.
LIST_SEPARATORS = re.compile(r"[;；、]")
#: Words of a yes/no cell (after :func:`cell_key`) that mean yes, and that mean no.
YES_WORDS = frozenset({"true", "1", "yes", "y", "t", "是", "可用"})
NO_WORDS = frozenset({"false", "0", "no", "n", "f", "否", "不可用"})
#: Chinese names of the target types.
TARGET_TYPE_WORDS = {"专家": "expert", "资源": "resource", "项目": "project"}


def cell_key(text: Any) -> str:
    """How headers and words compare: ``text`` after NFKC (full-width to half-width), trimmed, case-folded."""
    return unicodedata.normalize("NFKC", str(text)).strip().casefold()


def split_items(text: str) -> list[str]:
    """The items of a list cell's text: split on :data:`LIST_SEPARATORS`, trimmed, blanks dropped."""
    return [item.strip() for item in LIST_SEPARATORS.split(text) if item.strip()]


def split_list(value: object) -> list[str]:
    """Split a list cell (``a;b``, ``a；b``, ``a、b``) or take a list as is; blanks dropped.

    None, ``""`` and ``nan`` (a blank pandas cell) are the empty list.
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [item.strip() for item in map(str, value) if item and item.strip()]
    text = str(value)
    if not text or text.lower() == "nan":
        return []
    return split_items(text)


def yes_no(value: Any) -> bool | None:
    """What a yes/no cell says: True, False, or None when it is not a yes/no word (a blank cell neither).

    Booleans are themselves, the numbers 0 and 1 are no and yes, texts are looked up (after
    :func:`cell_key`) in :data:`YES_WORDS` and :data:`NO_WORDS`.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = cell_key(value)
        if word in YES_WORDS:
            return True
        if word in NO_WORDS:
            return False
    return None


# --------------------------------------------------------------------------- header aliases
# Keys are compared as :func:`cell_key` gives them (so ``机构id`` matches ``机构ID``).

#: Every kind of record file (``matcher import``) also takes these for ``id``.
_ID_ALIASES = {"编号": "id", "id": "id", "代码": "id"}
_RECORD_HEADERS: dict[str, dict[str, str]] = {
    "organisations": {
        "名称": "name",
        "机构名称": "name",
        "机构": "name",
        "阶段": "stage",
        "发展阶段": "stage",
        "县区": "county",
        "区县": "county",
        "地区": "county",
        "所在县区": "county",
        "乡镇": "township",
        "街道": "township",
        "乡镇街道": "township",
        "成立年份": "founded_year",
        "成立时间": "founded_year",
        "人数": "staff_count",
        "员工人数": "staff_count",
        "工作人员数": "staff_count",
        "类型": "kind",
        "机构类型": "kind",
        "状态": "status",
        "入驻状态": "status",
        "入驻日期": "admitted_on",
        "入驻时间": "admitted_on",
        "离开日期": "left_on",
        "出壳日期": "left_on",
        "持证社工": "licensed_social_workers",
        "持证社工人数": "licensed_social_workers",
    },
    "needs": {
        "机构编号": "org_id",
        "机构id": "org_id",
        "标题": "title",
        "名称": "title",
        "需求标题": "title",
        "描述": "description",
        "内容": "description",
        "简介": "description",
        "需求描述": "description",
        "详情": "description",
        "标签": "tags",
        "类别": "tags",
        "紧急程度": "urgency",
        "紧急度": "urgency",
        "状态": "status",
        "创建时间": "created_at",
        "提交时间": "created_at",
    },
    "experts": {
        "名称": "name",
        "姓名": "name",
        "单位": "affiliation",
        "工作单位": "affiliation",
        "所在单位": "affiliation",
        "机构编号": "org_id",
        "机构id": "org_id",
        "职称": "title",
        "职务": "title",
        "专长": "specialties",
        "专业领域": "specialties",
        "标签": "specialties",
        "tags": "specialties",
        "简介": "bio",
        "个人简介": "bio",
        "描述": "bio",
        "内容": "bio",
        "地区": "counties",
        "县区": "counties",
        "区县": "counties",
        "服务地区": "counties",
        "服务县区": "counties",
        "容量": "capacity",
        "可承接数": "capacity",
        "是否可用": "available",
        "可用": "available",
        "电话": "phone",
        "手机": "phone",
        "联系电话": "phone",
        "邮箱": "email",
        "电子邮箱": "email",
        "课程": "courses",
        "授课课程": "courses",
    },
    "resources": {
        "类型": "type",
        "资源类型": "type",
        "名称": "name",
        "资源名称": "name",
        "描述": "description",
        "内容": "description",
        "简介": "description",
        "提供方": "provider",
        "提供者": "provider",
        "提供单位": "provider",
        "地区": "county",
        "县区": "county",
        "区县": "county",
        "数量": "quantity",
        "容量": "quantity",
        "标签": "tags",
        "座位": "seats",
        "座位数": "seats",
        "金额": "amount_yuan",
        "金额元": "amount_yuan",
        "资金金额": "amount_yuan",
    },
    "projects": {
        "名称": "name",
        "项目名称": "name",
        "机构编号": "org_id",
        "机构id": "org_id",
        "标签": "tags",
        "描述": "description",
        "内容": "description",
        "简介": "description",
        "成效": "outcomes",
        "成果": "outcomes",
        "项目成效": "outcomes",
    },
    "decisions": {
        "需求编号": "need_id",
        "对象类型": "target_type",
        "目标类型": "target_type",
        "对象编号": "target_id",
        "目标编号": "target_id",
        "决定": "decision",
        "结果": "decision",
        "评分": "rating",
        "备注": "comment",
        "评语": "comment",
        "模型版本": "model_version",
        "排名": "rank",
        "名次": "rank",
        "得分": "score",
        "分数": "score",
        "决定时间": "decided_at",
        "时间": "decided_at",
    },
    "events": {
        "类型": "kind",
        "活动类型": "kind",
        "标题": "title",
        "名称": "title",
        "描述": "description",
        "简介": "description",
        "标签": "tags",
        "专家编号": "expert_ids",
        "场地编号": "venue_id",
        "资源编号": "resource_ids",
        "县区": "county",
        "区县": "county",
        "地区": "county",
        "开始时间": "starts_at",
        "结束时间": "ends_at",
        "座位": "seats",
        "座位数": "seats",
        "状态": "status",
    },
    "attendees": {
        "活动编号": "event_id",
        "机构编号": "org_id",
        "需求编号": "need_id",
        "状态": "status",
        "出席": "status",
        "评分": "rating",
        "评语": "comment",
        "备注": "comment",
    },
    "stages": {
        "机构编号": "org_id",
        "机构id": "org_id",
        "阶段": "stage",
        "发展阶段": "stage",
        "起始日期": "since",
        "日期": "since",
    },
    "milestones": {
        "机构编号": "org_id",
        "机构id": "org_id",
        "阶段": "stage",
        "目标": "goal",
        "阶段目标": "goal",
        "里程碑": "milestone",
        "节点": "milestone",
        "截止日期": "due_on",
        "到期日": "due_on",
        "状态": "status",
    },
}

#: Header (after :func:`cell_key`) -> field, per kind of file: ``table`` (a user library file,
#: :func:`matcher.inputs.files.read_table`), ``judgments`` (:func:`matcher.matching.judgments.read_judgments`),
#: ``conflicts`` and ``forced`` (the pair files of ``matcher assign``) and each kind of record file of
#: ``matcher import`` (:data:`matcher.store.records.MODELS`). Where several headers of one field are
#: present, the judgments and pair files take the field name, else the first alias listed.
HEADER_ALIASES: dict[str, dict[str, str]] = {
    "table": {
        "编号": "id",
        "名称": "name",
        "姓名": "name",
        "标题": "title",
        "描述": "description",
        "内容": "description",
        "简介": "description",
        "文本": "text",
        "标签": "tags",
        "专长": "tags",
        "地区": "counties",
        "县区": "counties",
        "区县": "counties",
        "机构编号": "org_id",
        "机构名称": "org_name",
        "容量": "capacity",
        "是否可用": "available",
    },
    "judgments": {
        "需求编号": "need_id",
        "需求id": "need_id",
        "目标类型": "target_type",
        "类型": "target_type",
        "expert_id": "target_id",
        "目标编号": "target_id",
        "专家编号": "target_id",
        "relevance": "grade",
        "评分": "grade",
        "等级": "grade",
        "相关度": "grade",
    },
    "conflicts": {
        "expert": "expert_id",
        "专家编号": "expert_id",
        "专家": "expert_id",
        "organisation": "org_id",
        "organization": "org_id",
        "机构编号": "org_id",
        "机构": "org_id",
        "关系": "relation",
    },
    "forced": {
        "need": "need_id",
        "需求编号": "need_id",
        "需求": "need_id",
        "expert": "expert_id",
        "专家编号": "expert_id",
        "专家": "expert_id",
    },
    **{kind: {**_ID_ALIASES, **headers} for kind, headers in _RECORD_HEADERS.items()},
}


def aliases_of(kind: str, field: str) -> tuple[str, ...]:
    """The headers that name ``field`` in a file of ``kind``: the field name first, then its aliases in order."""
    return (field, *(alias for alias, name in HEADER_ALIASES[kind].items() if name == field and alias != field))


def cell_at(cells: Sequence[Any], index: int | None) -> Any:
    """The cell at ``index`` of a row, None where the column is absent or the row is short."""
    if index is None or index >= len(cells):
        return None
    return cells[index]


def cell_text(value: Any) -> str:
    """One cell as the user reads it: XLSX ``12.0`` is ``"12"``, a date its ISO form, a blank cell ``""``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
