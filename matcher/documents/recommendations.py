"""A need's recommendations with their reasons as an XLSX workbook, to hand to the organisation.

The workbook has two sheets: 需求 (the need as it was matched, the model version and when) and
推荐 (one row per recommended expert, resource or project: rank, score, matched terms, tags, county
and, for experts, load against capacity). It is built from a match response body (with
``profiles``), so it shows exactly what the page and the API showed. Cells are written by
:mod:`matcher.documents.writer` (typed text, never a formula).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from matcher.documents.writer import XLSX_MEDIA_TYPE, append_row, save_workbook, workbook

__all__ = ["TYPE_LABELS", "XLSX_MEDIA_TYPE", "recommendations_workbook"]

TYPE_LABELS = {"expert": "专家", "resource": "资源", "project": "示范项目"}
FEATURE_LABELS = {
    "text": "文本相似",
    "text_share": "相对文本相似",
    "char": "字符相似",
    "word": "词语相似",
    "semantic": "语义相似",
    "tags": "标签匹配",
    "jaccard": "标签重合",
    "region": "地区一致",
    "load_fraction": "当前负荷",
    "acceptance_rate": "过往采纳率",
    "log_shown": "推荐次数",
    "familiarity": "过往评价",
    "kind": "类型",
}
COLUMNS = (
    ("类型", 8),
    ("排名", 6),
    ("编号", 10),
    ("名称", 24),
    ("得分", 8),
    ("匹配词", 36),
    ("匹配标签", 24),
    ("服务地区", 16),
    ("地区一致", 8),
    ("负荷/容量", 10),
    ("学习排序主要因素", 30),
)
_TIMEZONE = ZoneInfo("Asia/Shanghai")


def _factors(reasons: dict[str, Any]) -> str:
    rerank = reasons.get("rerank")
    if not rerank:
        return ""
    return "、".join(
        f"{FEATURE_LABELS.get(f['feature'].split(':')[0], f['feature'])}{'↑' if f['effect'] >= 0 else '↓'}"
        for f in rerank["features"]
    )


def _row(target_type: str, rank: int, match: dict[str, Any]) -> list[Any]:
    reasons, profile = match["reasons"], match.get("profile") or {}
    load = ""
    if profile.get("capacity") is not None:
        load = f"{profile['load']}/{profile['capacity']}"
    return [
        TYPE_LABELS.get(target_type, target_type),
        rank,
        match["id"],
        match["name"],
        round(match["score"], 4),
        "、".join(t["term"] for t in reasons["terms"]),
        "、".join(reasons["tags"]),
        "、".join(profile.get("counties") or []),
        "是" if reasons["region"]["match"] else "否",
        load,
        _factors(reasons),
    ]


def recommendations_workbook(body: dict[str, Any], *, title: str | None = None, org_name: str | None = None) -> bytes:
    """The XLSX bytes of a match response ``body`` (see :class:`matcher.service.match.MatchResponse`).

    ``title`` and ``org_name`` describe a stored need; a free-text need shows its text only.
    """
    book = workbook()
    need = body["need"]
    sheet = book.active
    sheet.title = "需求"
    made = datetime.now(_TIMEZONE).strftime("%Y-%m-%d %H:%M")
    rows = [
        ("需求编号", need["id"] or "（自由填写的需求）"),
        ("标题", title or ""),
        ("机构", org_name or need.get("org_id") or ""),
        ("县区", "、".join(need["counties"])),
        ("标签", "、".join(need["tags"])),
        ("需求内容（规范化后）", need["text"]),
        ("模型版本", body["model_version"]),
        ("生成时间", made),
    ]
    for label, value in rows:
        append_row(sheet, [label, value])
        sheet.cell(sheet.max_row, 1).font = Font(bold=True)
    sheet.column_dimensions["A"].width = 20
    sheet.column_dimensions["B"].width = 90
    for cell in sheet["B"]:
        cell.alignment = Alignment(wrap_text=True, vertical="top")

    table = book.create_sheet("推荐")
    append_row(table, [name for name, _ in COLUMNS])
    for cell in table[1]:
        cell.font = Font(bold=True)
    for index, (_, width) in enumerate(COLUMNS, start=1):
        table.column_dimensions[get_column_letter(index)].width = width
    for target_type, matches in body["results"].items():
        for rank, match in enumerate(matches or [], start=1):
            append_row(table, _row(target_type, rank, match))
    table.freeze_panes = "A2"
    return save_workbook(book)
