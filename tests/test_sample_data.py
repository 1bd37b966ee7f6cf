"""The sample libraries of data/ tell the seed article's story (2023-10-24) and grow plausibly to now.

The article: licensed social workers in the whole New Area 30 → 550, agencies 1 → 24, 16 projects, 1 county
guidance centre, 35 township stations; organisations admitted once a year by an expert panel, incubated by
stage and leaving when mature; 容善 (May 2020) one of the earliest agencies; 雄泽 just founded; 护苗行动 in
2023. The New Area itself was founded in April 2017. These tests read the files as shipped.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import opencc
import pandas as pd
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
ARTICLE = "2023-10-24"
NOW = "2026-11-01"
STAGES = ["初创期", "成长期", "成熟期"]
SHARE_LIMIT = 3  # "no template sentence shared by more than a few experts"


def read(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{name}.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def files() -> dict[str, pd.DataFrame]:
    names = ("organisations", "stages", "milestones", "needs", "experts", "resources", "projects", "decisions")
    return {name: read(name) for name in (*names, "outcomes", "events", "attendees")}


@pytest.fixture(scope="module")
def history(files) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in files["stages"].itertuples():
        out[row.org_id].append((row.stage, row.since))
    return out


def stage_on(history: dict, org_id: str, date: str) -> str | None:
    """The stage an organisation was in on a date (None before its founding)."""
    stages = [stage for stage, since in history[org_id] if since <= date]
    return stages[-1] if stages else None


def founded(history: dict, org_id: str) -> str:
    return history[org_id][0][1]


def test_the_generator_rewrites_the_shipped_files_byte_for_byte(tmp_path) -> None:
    shutil.copy(DATA / "generate.py", tmp_path / "generate.py")
    shutil.copy(DATA / "places.csv", tmp_path / "places.csv")
    subprocess.run([sys.executable, str(tmp_path / "generate.py")], check=True, capture_output=True, cwd=tmp_path)
    written = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert written == sorted(p.name for p in DATA.glob("*.csv"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


def test_organisations_carry_the_grown_columns(files) -> None:
    orgs = files["organisations"]
    assert list(orgs.columns) == [
        "id", "name", "stage", "county", "township", "founded_year", "staff_count",
        "kind", "status", "admitted_on", "left_on", "licensed_social_workers",
    ]  # fmt: skip
    assert set(orgs["kind"]) == {"agency", "station", "centre"}
    assert set(orgs["status"]) <= {"applicant", "resident", "graduated", "left"}
    assert orgs.set_index("id").loc[["O001", "O002", "O003"], "name"].str[3:5].tolist() == ["雄泽", "容善", "筑爱"]


def test_founding_dates_agree_with_the_new_area_and_rongshan(files, history) -> None:
    orgs = files["organisations"]
    agencies = orgs.loc[orgs["kind"] == "agency", "id"]
    assert all(founded(history, o) >= "2017-04-01" for o in orgs["id"])  # the New Area: April 2017
    rongshan = founded(history, "O002")
    assert rongshan.startswith("2020-05")
    assert sum(founded(history, o) < rongshan for o in agencies) <= 3  # "one of the earliest"
    stations = orgs.loc[orgs["kind"] == "station", "id"]
    assert all(founded(history, o) >= "2020-04-01" for o in stations)  # the first station: April 2020
    assert stage_on(history, "O001", ARTICLE) == "初创期"  # 雄泽: "a newly founded agency"
    for row in orgs.itertuples():
        assert founded(history, row.id)[:4] == row.founded_year


def test_counts_at_the_articles_date(files, history) -> None:
    orgs = files["organisations"]
    by_kind = {kind: [o for o in ids if founded(history, o) <= ARTICLE] for kind, ids in orgs.groupby("kind")["id"]}
    assert len(by_kind["agency"]) <= 24
    assert len(by_kind["station"]) <= 35
    assert len(by_kind["centre"]) == 1 and (orgs["kind"] == "centre").sum() == 1
    residents = orgs.loc[(orgs["admitted_on"] != "") & (orgs["admitted_on"] <= ARTICLE)]
    residents = residents.loc[(residents["left_on"] == "") | (residents["left_on"] > ARTICLE)]
    starters = [o for o, k in zip(residents["id"], residents["kind"], strict=True)
                if k == "agency" and stage_on(history, o, ARTICLE) == "初创期"]  # fmt: skip
    assert "O001" in starters and len(starters) >= 7  # 雄泽 "and six more agencies with the same needs"


def test_one_guidance_centre_in_every_file(files) -> None:
    centre = files["organisations"].loc[lambda o: o["kind"] == "centre", "name"].item()
    named = set()
    for frame, columns in ((files["experts"], ["affiliation", "bio"]), (files["resources"], ["name", "provider"])):
        for column in columns:
            named |= {m for text in frame[column] for m in re.findall(r"\w{2,3}县社会工作指导中心", text)}
    assert named <= {centre}


def test_licensed_social_workers_fit_the_staff_and_the_new_area(files) -> None:
    orgs = files["organisations"]
    licensed, staff = orgs["licensed_social_workers"].astype(int), orgs["staff_count"].astype(int)
    assert (licensed >= 1).all() and (licensed <= staff).all()
    assert licensed.sum() <= 550  # the whole New Area had 550 at the article's date
    lent = files["experts"].loc[lambda e: e["org_id"] != ""].groupby("org_id").size()
    assert (lent <= staff.set_axis(orgs["id"]).reindex(lent.index)).all()


def test_stage_history_is_consistent(files, history) -> None:
    orgs = files["organisations"]
    assert set(history) == set(orgs["id"])
    for row in orgs.itertuples():
        stages = [stage for stage, _ in history[row.id]]
        dates = [since for _, since in history[row.id]]
        assert stages == STAGES[: len(stages)] and dates == sorted(dates), row.id
        assert stages[-1] == row.stage and dates[-1] <= NOW
        assert row.kind == "agency" or "成熟期" not in stages
        assert row.status != "graduated" or row.stage == "成熟期"  # 出壳 when mature
        assert row.left_on == "" or dates[-1] < row.left_on


def test_admission_once_a_year_and_leaving(files) -> None:
    orgs = files["organisations"]
    assert ((orgs["status"] == "applicant") == (orgs["admitted_on"] == "")).all()
    assert (orgs["status"].isin(["graduated", "left"]) == (orgs["left_on"] != "")).all()
    admitted = orgs.loc[orgs["admitted_on"] != "", "admitted_on"]
    assert admitted.groupby(admitted.str[:4]).nunique().max() == 1  # one panel a year
    assert admitted.min() >= "2022-01-01"  # the base was built in 2022
    left = orgs.loc[orgs["left_on"] != ""]
    assert (left["admitted_on"] < left["left_on"]).all() and (left["left_on"] <= NOW).all()


def test_needs_and_attendances_fall_within_residency(files) -> None:
    """Needs come from admitted organisations (a graduate still asks, one that withdrew does not); events
    invite the residents of the day."""
    orgs = files["organisations"].set_index("id")
    for row in files["needs"].itertuples():
        org = orgs.loc[row.org_id]
        assert org["kind"] != "centre" and org["admitted_on"] and org["admitted_on"] <= row.created_at[:10], row.id
        assert org["status"] != "left" or row.created_at[:10] < org["left_on"], row.id  # graduates go on asking
    starts = files["events"].set_index("id")["starts_at"].str[:10]
    for row in files["attendees"].itertuples():
        org = orgs.loc[row.org_id]
        assert org["admitted_on"] and org["admitted_on"] <= starts[row.event_id], row.id
        assert not org["left_on"] or starts[row.event_id] < org["left_on"], row.id


def _generator():
    spec = importlib.util.spec_from_file_location("sample_generate", DATA / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_a_village_belongs_to_one_county(files) -> None:
    villages = _generator().VILLAGE_NAMES
    county = files["needs"]["org_id"].map(files["organisations"].set_index("id")["county"])
    t2s = opencc.OpenCC("t2s")
    text = (files["needs"]["title"] + files["needs"]["description"]).map(t2s.convert)
    seen = {v: set(county[text.str.contains(v)]) for v in villages}
    assert sum(bool(c) for c in seen.values()) >= 5  # villages are named, and each in one county only
    assert all(len(c) <= 1 for c in seen.values()), {v: c for v, c in seen.items() if len(c) > 1}


def test_stations_do_not_file_for_annual_inspection(files) -> None:
    kind = files["needs"]["org_id"].map(files["organisations"].set_index("id")["kind"])
    t2s = opencc.OpenCC("t2s")
    station_text = files["needs"].loc[kind == "station", "description"].map(t2s.convert)
    assert not station_text.str.contains("年检|理事会|等级评估|登记证书").any()


def test_deadlines_come_after_the_filing_month(files) -> None:
    t2s = opencc.OpenCC("t2s")
    for row in files["needs"].itertuples():
        text = unicodedata.normalize("NFKC", t2s.convert(row.description))
        for next_year, month in re.findall(r"(明年)?(\d{1,2})月前", text):
            assert next_year or int(month) > int(row.created_at[5:7]), (row.id, row.created_at, text)


def test_project_claims_follow_the_stage(files, history) -> None:
    """Never "还没独立承接过像样的项目" after having said "承接过几个政府购买项目" (雄泽's contradiction)."""
    t2s = opencc.OpenCC("t2s")
    for org_id, needs in files["needs"].groupby("org_id"):
        text = needs["description"].map(t2s.convert)
        never = needs.loc[text.str.contains("还没独立承接过像样的项目"), "created_at"]
        done = needs.loc[text.str.contains("承接过几个政府购买项目"), "created_at"]
        assert never.empty or done.empty or never.max() < done.min(), org_id
        for t in never:
            assert stage_on(history, org_id, t[:10]) == "初创期"
        for t in done:
            assert stage_on(history, org_id, t[:10]) != "初创期"


def _bio_sentences(bio: str) -> set[str]:
    text = opencc.OpenCC("t2s").convert(unicodedata.normalize("NFKC", bio))
    return {re.sub(r"\d+", "#", s) for s in re.findall(r"[^。！？]+[。！？]?", text) if s.strip()}


def test_no_bio_sentence_is_shared_by_more_than_a_few_experts(files) -> None:
    shared = Counter(s for bio in files["experts"]["bio"] for s in _bio_sentences(bio))
    assert shared.most_common(1)[0][1] <= SHARE_LIMIT, shared.most_common(5)


def test_specialists_do_not_claim_social_work_field_experience(files) -> None:
    experts = files["experts"]
    specialists = experts.loc[
        experts["title"].isin(["律师", "注册会计师", "心理咨询师", "精神科主治医师", "品牌传播顾问", "党建指导员", "康复治疗师"])
    ]
    bios = specialists["bio"].map(opencc.OpenCC("t2s").convert)
    assert not bios.str.contains("入户需求调研|优秀社会工作者|扶贫社工站|社工站驻点|转行做社工").any()


def test_projects_started_when_the_article_says(files, history) -> None:
    projects = files["projects"]
    year = projects["description"].str.extract(r"(\d{4})年(?:起|启动|承接|开始)")[0].astype(int)
    assert year.min() == 2020  # the first project: 2020-03
    assert 10 <= (year <= 2023).sum() <= 16  # "十余个" … "16个" by the article's date
    assert (year[projects["name"].str.contains("护苗行动")] == 2023).all()
    assert (year[projects["name"].str.contains("心语小屋")] >= 2023).all()
    orgs = files["organisations"].set_index("id")
    for row, start in zip(projects.itertuples(), year, strict=True):
        assert orgs.loc[row.org_id, "status"] not in ("applicant", "left")
        if "心桥" not in row.name:  # the New Area's first project excepted, runners have grown first
            assert stage_on(history, row.org_id, f"{start}-12-31") != "初创期", row.id
        award = re.search(r"获评(\d{4})年度", row.outcomes)
        if award:
            assert start < int(award.group(1)) <= 2025 and int(award.group(1)) - int(orgs.loc[row.org_id, "founded_year"]) >= 3
            assert int(orgs.loc[row.org_id, "staff_count"]) >= 6


def test_outcomes_follow_completed_engagements(files) -> None:
    outcomes, decisions = files["outcomes"], files["decisions"].set_index("id")
    assert list(outcomes.columns) == ["decision_id", "goal_met", "rating", "hours", "changed", "follow_up_on"]
    assert outcomes["decision_id"].is_unique
    completed = decisions.loc[outcomes["decision_id"]]
    assert (completed["decision"] == "completed").all()
    assert (outcomes["rating"].to_numpy() == completed["rating"].to_numpy()).all()
    assert outcomes["goal_met"].isin(["yes", "partly", "no"]).all() and (outcomes["changed"] != "").all()
    hours = outcomes["hours"] != ""
    assert (completed.loc[hours.to_numpy(), "target_type"] == "expert").all()
    assert (outcomes.loc[hours, "hours"].astype(float) > 0).all()
    follow = outcomes["follow_up_on"] != ""
    assert (outcomes.loc[follow, "follow_up_on"].to_numpy() > completed.loc[follow.to_numpy(), "decided_at"].str[:10].to_numpy()).all()
    waiting = decisions.loc[(decisions["decision"] == "completed") & ~decisions.index.isin(outcomes["decision_id"])]
    assert len(waiting) < 0.1 * len(outcomes)  # a few recent engagements still wait for their follow-up


def test_milestones_fit_the_plan_and_the_dates(files, history) -> None:
    milestones = files["milestones"]
    orgs = files["organisations"].set_index("id")
    assert list(milestones.columns) == ["id", "org_id", "stage", "goal", "milestone", "due_on", "status"]
    assert milestones["id"].str.fullmatch(r"M\d{4}").all() and milestones["id"].is_unique
    assert ((milestones["status"] == "planned") == (milestones["due_on"] > NOW)).all()
    assert milestones["status"].isin(["planned", "done", "missed"]).all()
    for row in milestones.itertuples():
        org = orgs.loc[row.org_id]
        assert row.stage in [stage for stage, _ in history[row.org_id]]
        assert org["admitted_on"] and row.due_on >= org["admitted_on"]
        assert not org["left_on"] or row.due_on <= org["left_on"]
        assert row.status != "planned" or org["status"] == "resident"
    graduated = orgs.index[orgs["status"] == "graduated"]
    leaving = milestones.loc[milestones["org_id"].isin(graduated) & (milestones["goal"] == "出壳准备")]
    assert set(leaving["org_id"]) == set(graduated) and (leaving["status"] == "done").all()


def test_funding_amounts_are_plausible_against_the_article(files) -> None:
    resources = files["resources"]
    funding = resources["type"] == "funding"
    assert (resources.loc[~funding, "amount_yuan"] == "").all()
    amounts = resources.loc[funding, "amount_yuan"].astype(int)
    assert (amounts > 0).all() and 1_000_000 <= amounts.sum() <= 7_000_000  # a year against 近700万元 in all
    venture = resources.loc[resources["name"] == "孵化基地公益创投资金"].iloc[0]  # 3万至10万元 a project
    assert 30_000 * int(venture["quantity"]) <= int(venture["amount_yuan"]) <= 100_000 * int(venture["quantity"])
