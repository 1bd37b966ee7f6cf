"""The bureau report from hand-counted fixtures (``tests/data/bureau``): every figure of every table,
the period parser, the county filter, the workbook, ``matcher report`` and ``GET /v1/report``.

The fixture (2026Q3 against 2026Q2): O1 resident since 2025 (初创期 → 成长期 on 2026-07-20), O2 a
township station admitted 2026-08-15, O3 a county centre that graduated (出壳) on 2026-09-01, O4 an
applicant; four needs, eleven decisions, three outcomes (D02 yes, D04 partly, D08 no), two held
events and one planned, one fund of 50,000 yuan linked twice in 2026Q3.
"""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import date

import pytest
from openpyxl import load_workbook

from matcher.documents.bureau import PeriodError, bureau_report, parse_period, report_workbook
from matcher.store import kinds, libraries, seed, transactions
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "data" / "bureau"

EXPECTED: dict[str, dict[tuple[str, str, str], tuple]] = {
    "organisations": {
        ("合计", "状态", "申请中"): (1, 1),
        ("合计", "状态", "在孵"): (2, 2),
        ("合计", "状态", "已出壳"): (1, 0),
        ("合计", "在孵机构阶段", "初创期"): (1, 1),
        ("合计", "在孵机构阶段", "成长期"): (1, 0),
        ("合计", "在孵机构阶段", "成熟期"): (0, 1),
        ("合计", "在孵机构类型", "社工机构"): (1, 1),
        ("合计", "在孵机构类型", "乡镇社工站"): (1, 0),
        ("合计", "在孵机构类型", "县级指导中心"): (0, 1),
        ("合计", "本期变动", "入驻"): (1, 0),
        ("合计", "本期变动", "出壳"): (1, 0),
        ("容城县", "状态", "申请中"): (1, 1),
        ("容城县", "状态", "在孵"): (0, 1),
        ("容城县", "状态", "已出壳"): (1, 0),
        ("容城县", "在孵机构阶段", "成熟期"): (0, 1),
        ("容城县", "在孵机构类型", "县级指导中心"): (0, 1),
        ("容城县", "本期变动", "出壳"): (1, 0),
        ("雄县", "状态", "在孵"): (2, 1),
        ("雄县", "在孵机构阶段", "初创期"): (1, 1),
        ("雄县", "在孵机构阶段", "成长期"): (1, 0),
        ("雄县", "在孵机构类型", "社工机构"): (1, 1),
        ("雄县", "在孵机构类型", "乡镇社工站"): (1, 0),
        ("雄县", "本期变动", "入驻"): (1, 0),
    },
    "social_workers": {
        (where, kind, item): value
        for (county, kind, item), value in {
            ("雄县", "社工机构", "在孵机构数"): (1, 1),
            ("雄县", "社工机构", "工作人员"): (10, 10),
            ("雄县", "社工机构", "持证社工"): (4, 4),
            ("雄县", "乡镇社工站", "在孵机构数"): (1, 0),
            ("雄县", "乡镇社工站", "工作人员"): (3, 0),
            ("雄县", "乡镇社工站", "持证社工"): (1, 0),
            ("容城县", "县级指导中心", "在孵机构数"): (0, 1),
            ("容城县", "县级指导中心", "工作人员"): (0, 20),
            ("容城县", "县级指导中心", "持证社工"): (0, 12),
        }.items()
        for where in (county, "合计")
    },
    "needs": {
        ("合计", "全部", "新增需求"): (2, 2),
        ("合计", "全部", "已满足"): (3, 1),
        ("合计", "全部", "首次接受中位天数"): (2.5, 2),
        ("合计", "个案管理", "新增需求"): (1, 1),
        ("合计", "个案管理", "已满足"): (2, 0),
        ("合计", "个案管理", "首次接受中位天数"): (4, 2),
        ("合计", "小组工作", "新增需求"): (1, 1),
        ("合计", "小组工作", "已满足"): (2, 0),
        ("合计", "小组工作", "首次接受中位天数"): (1, 2),
        ("合计", "政策解读", "新增需求"): (0, 1),
        ("合计", "政策解读", "已满足"): (0, 1),
        ("合计", "政策解读", "首次接受中位天数"): (None, 2),
        ("容城县", "全部", "新增需求"): (0, 1),
        ("容城县", "全部", "已满足"): (0, 1),
        ("容城县", "全部", "首次接受中位天数"): (None, 2),
        ("容城县", "政策解读", "新增需求"): (0, 1),
        ("容城县", "政策解读", "已满足"): (0, 1),
        ("容城县", "政策解读", "首次接受中位天数"): (None, 2),
        ("雄县", "全部", "新增需求"): (2, 1),
        ("雄县", "全部", "已满足"): (3, 0),
        ("雄县", "全部", "首次接受中位天数"): (2.5, 2),
        ("雄县", "个案管理", "新增需求"): (1, 1),
        ("雄县", "个案管理", "已满足"): (2, 0),
        ("雄县", "个案管理", "首次接受中位天数"): (4, 2),
        ("雄县", "小组工作", "新增需求"): (1, 1),
        ("雄县", "小组工作", "已满足"): (2, 0),
        ("雄县", "小组工作", "首次接受中位天数"): (1, 2),
    },
    "engagements": {
        (county, category, item): value
        for county, category, figures in (
            (
                "合计",
                "全部",
                {
                    "完成合作": (3, 1),
                    "已回访": (2, 1),
                    "待回访": (1, 0),
                    "目标达成": (1, 0),
                    "部分达成": (1, 0),
                    "未达成": (0, 1),
                    "平均评分": (4.5, 2),
                    "专家工时": (9.5, 2),
                },
            ),
            (
                "合计",
                "个案管理",
                {
                    "完成合作": (2, 0),
                    "已回访": (2, 0),
                    "目标达成": (1, 0),
                    "部分达成": (1, 0),
                    "平均评分": (4.5, None),
                    "专家工时": (9.5, 0),
                },
            ),
            (
                "合计",
                "小组工作",
                {
                    "完成合作": (2, 0),
                    "已回访": (1, 0),
                    "待回访": (1, 0),
                    "目标达成": (1, 0),
                    "平均评分": (4, None),
                    "专家工时": (6, 0),
                },
            ),
            (
                "合计",
                "政策解读",
                {"完成合作": (0, 1), "已回访": (0, 1), "未达成": (0, 1), "平均评分": (None, 2), "专家工时": (0, 2)},
            ),
            (
                "容城县",
                "全部",
                {"完成合作": (0, 1), "已回访": (0, 1), "未达成": (0, 1), "平均评分": (None, 2), "专家工时": (0, 2)},
            ),
            (
                "容城县",
                "政策解读",
                {"完成合作": (0, 1), "已回访": (0, 1), "未达成": (0, 1), "平均评分": (None, 2), "专家工时": (0, 2)},
            ),
            (
                "雄县",
                "全部",
                {
                    "完成合作": (3, 0),
                    "已回访": (2, 0),
                    "待回访": (1, 0),
                    "目标达成": (1, 0),
                    "部分达成": (1, 0),
                    "平均评分": (4.5, None),
                    "专家工时": (9.5, 0),
                },
            ),
            (
                "雄县",
                "个案管理",
                {
                    "完成合作": (2, 0),
                    "已回访": (2, 0),
                    "目标达成": (1, 0),
                    "部分达成": (1, 0),
                    "平均评分": (4.5, None),
                    "专家工时": (9.5, 0),
                },
            ),
            (
                "雄县",
                "小组工作",
                {
                    "完成合作": (2, 0),
                    "已回访": (1, 0),
                    "待回访": (1, 0),
                    "目标达成": (1, 0),
                    "平均评分": (4, None),
                    "专家工时": (6, 0),
                },
            ),
        )
        for item, value in figures.items()
    },
    "events": {
        ("合计", "主题培训", "举办场次"): (1, 0),
        ("合计", "主题培训", "出席机构"): (2, 0),
        ("合计", "实务工作坊", "举办场次"): (0, 1),
        ("合计", "实务工作坊", "出席机构"): (0, 1),
        ("容城县", "主题培训", "举办场次"): (1, 0),
        ("容城县", "主题培训", "出席机构"): (1, 0),
        ("雄县", "主题培训", "举办场次"): (1, 0),
        ("雄县", "主题培训", "出席机构"): (1, 0),
        ("雄县", "实务工作坊", "举办场次"): (0, 1),
        ("雄县", "实务工作坊", "出席机构"): (0, 1),
    },
    "resources": {("合计", "资金", "链接次数"): (2, 0), ("雄县", "资金", "链接次数"): (2, 0)},
    "funds": {
        ("合计", "雄安新区公共服务局", "链接次数"): (2, 0),
        ("合计", "雄安新区公共服务局", "金额（元）"): (50000, 0),
        ("雄县", "雄安新区公共服务局", "链接次数"): (2, 0),
        ("雄县", "雄安新区公共服务局", "金额（元）"): (50000, 0),
    },
}


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('bureau') / 'matcher.sqlite3'}"
    assert seed.ensure_database(url, FIXTURE)
    return url


def figures(table: dict) -> dict[tuple[str, str, str], tuple]:
    return {(r["county"], r["group"], r["item"]): (r["current"], r["previous"]) for r in table["rows"]}


def test_every_figure_of_every_table_is_the_hand_count(url) -> None:
    with transactions.transaction(url) as session:
        report = bureau_report(session, "2026Q3")
    assert report["period"] == {"label": "2026Q3", "start": "2026-07-01", "end": "2026-09-30"}
    assert report["previous"] == {"label": "2026Q2", "start": "2026-04-01", "end": "2026-06-30"}
    tables = {t["name"]: t for t in report["tables"]}
    assert list(tables) == list(EXPECTED)
    for name, expected in EXPECTED.items():
        assert figures(tables[name]) == expected, name
    for table in report["tables"]:
        for row in table["rows"]:
            if row["current"] is None or row["previous"] is None:
                assert row["change"] is None
            else:
                assert row["change"] == pytest.approx(row["current"] - row["previous"])


def test_a_county_keeps_its_organisations_only(url) -> None:
    with transactions.transaction(url) as session:
        report = bureau_report(session, "2026Q3", "容城县")
    assert report["county"] == "容城县"
    for table in report["tables"]:
        counties = {r["county"] for r in table["rows"]}
        assert counties <= {"合计", "容城县"}
        shown = figures(table)
        for (county, group, item), value in shown.items():
            if county == "容城县":
                assert shown[("合计", group, item)] == value
    assert figures(next(t for t in report["tables"] if t["name"] == "funds")) == {}


@pytest.mark.parametrize(
    ("text", "label", "start", "end", "previous"),
    [
        ("2026Q3", "2026Q3", date(2026, 7, 1), date(2026, 9, 30), "2026Q2"),
        ("2026q1", "2026Q1", date(2026, 1, 1), date(2026, 3, 31), "2025Q4"),
        ("2026-07", "2026-07", date(2026, 7, 1), date(2026, 7, 31), "2026-06"),
        ("2026-1", "2026-01", date(2026, 1, 1), date(2026, 1, 31), "2025-12"),
        ("2024-02", "2024-02", date(2024, 2, 1), date(2024, 2, 29), "2024-01"),
        ("2026", "2026", date(2026, 1, 1), date(2026, 12, 31), "2025"),
    ],
)
def test_periods(text, label, start, end, previous) -> None:
    period = parse_period(text)
    assert (period.label, period.start, period.end, period.previous().label) == (label, start, end, previous)


@pytest.mark.parametrize("text", ["2026Q5", "2026-13", "26Q3", "Q3", "2026Q3x", "", "1999"])
def test_bad_periods_name_the_option(text) -> None:
    with pytest.raises(PeriodError, match=r"^period: .* use a quarter \(2026Q3\)"):
        parse_period(text)


def test_unknown_county_is_refused(url) -> None:
    with transactions.transaction(url) as session, pytest.raises(PeriodError, match=r"^county: '北京市'"):
        bureau_report(session, "2026Q3", "北京市")


def test_workbook_has_a_cover_and_one_sheet_per_table_with_numbers_as_numbers(url) -> None:
    with transactions.transaction(url) as session:
        report = bureau_report(session, "2026Q3")
    book = load_workbook(io.BytesIO(report_workbook(report)))
    assert book.sheetnames == ["封面", "机构", "持证社工", "需求", "合作与成效", "培训活动", "资源链接", "资金来源"]
    cover = [[c for c in row if c is not None] for row in book["封面"].iter_rows(values_only=True)]
    assert ["报告期", "2026Q3（2026-07-01 至 2026-09-30）"] in cover
    assert ["对比期（上期）", "2026Q2（2026-04-01 至 2026-06-30）"] in cover
    assert any(row and row[0] == "生成时间" for row in cover)
    rows = list(book["资金来源"].iter_rows(values_only=True))
    assert rows[0] == ("县区", "类别", "项目", "本期", "上期", "变化")
    assert ("合计", "雄安新区公共服务局", "金额（元）", 50000, 0, 50000) in rows
    assert all(isinstance(r[3], int | float) for r in rows[1:])


def test_cli_report_writes_the_workbook_and_refuses_bad_options(tmp_path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}", "MATCHER_DATA_DIR": str(FIXTURE), "PATH": ""}
    command = [sys.executable, "-m", "matcher.cli", "report"]
    out = tmp_path / "report.xlsx"
    done = subprocess.run(
        [*command, "--period", "2026Q3", "--county", "雄县", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "report 2026Q3 (2026-07-01 to 2026-09-30, 雄县), previous 2026Q2" in done.stdout
    book = load_workbook(out)
    assert ("雄县", "全部", "完成合作", 3, 0, 3) in list(book["合作与成效"].iter_rows(values_only=True))
    for args, message in (
        (["--period", "2026Q5", "--out", str(tmp_path / "x.xlsx")], "matcher: period: '2026Q5' is not a period"),
        (["--period", "2026Q3", "--county", "北京市", "--out", str(tmp_path / "x.xlsx")], "matcher: county: '北京市'"),
        (["--period", "2026Q3", "--out", str(tmp_path / "x.csv")], "use a .xlsx file name"),
    ):
        bad = subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.xlsx").exists() and not (tmp_path / "x.csv").exists()


def test_http_report_roles_and_errors(make_app, url) -> None:
    client = make_app(DATABASE_URL=url).test_client()
    body = client.get("/v1/report?period=2026Q3").get_json()
    assert figures(next(t for t in body["tables"] if t["name"] == "needs")) == EXPECTED["needs"]
    bad = client.get("/v1/report?period=2026Q9")
    assert bad.status_code == 400 and bad.content_type == "application/problem+json"
    assert bad.get_json()["detail"].startswith("period:")
    assert client.get("/v1/report").status_code == 400
    xlsx = client.get("/v1/report.xlsx?period=2026-08&county=雄县")
    assert xlsx.status_code == 200 and "report-2026-08" in xlsx.headers["Content-Disposition"]
    assert load_workbook(io.BytesIO(xlsx.data)).sheetnames[0] == "封面"


def test_seeded_frames_equal_the_files_with_the_file_columns(url) -> None:
    import pandas as pd

    from matcher.inputs.library import load_libraries

    files = load_libraries(FIXTURE)
    with transactions.transaction(url) as session:
        stored = libraries.load_libraries_db(session)
        sizes = kinds.counts(session)
    for kind in ("organisations", "resources", "needs", "decisions"):
        expected = getattr(files, kind).sort_values("id").reset_index(drop=True)
        pd.testing.assert_frame_equal(getattr(stored, kind), expected, obj=kind)
    assert list(stored.organisations.columns[-5:]) == [
        "kind",
        "status",
        "admitted_on",
        "left_on",
        "licensed_social_workers",
    ]
    assert (sizes["stages"], sizes["milestones"]) == (5, 2)


def test_cli_labels_write_a_judgments_file_of_outcomes_and_attendance(tmp_path) -> None:
    from matcher.matching.judgments import read_judgments

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'labels.sqlite3'}", "MATCHER_DATA_DIR": str(FIXTURE), "PATH": ""}
    command = [sys.executable, "-m", "matcher.cli", "labels"]
    out = tmp_path / "judgments.csv"
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    judged = read_judgments(out, needs=["N1", "N2", "N3", "N4"], targets={"expert": ["E1", "E2"]})
    pairs = {(r.need_id, r.target_id): r.grade for r in judged.itertuples(index=False)}
    # D02 goal met (4) beats N2's attendance at V2 rated 4 (3); D04 partly (3); D08 not met (1)
    assert pairs == {("N1", "E2"): 3.0, ("N2", "E1"): 4.0, ("N4", "E2"): 1.0}
    only = tmp_path / "attendance.csv"
    done = subprocess.run(
        [*command, "--out", str(only), "--sources", "attendance"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert only.read_text(encoding="utf-8-sig").splitlines()[1].startswith("N2,expert,E1,3.0,attendance,")
    bad = subprocess.run([*command, "--out", str(out), "--sources", "gossip"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "--sources" in bad.stderr
