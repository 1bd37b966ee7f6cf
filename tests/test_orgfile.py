"""The organisation file and outcomes over HTTP, on both databases (``db_url``): the file's records
(status and admission, staff, stage history, milestones), outcomes on completion and later, the
list of engagements waiting for one, the whole file (JSON and XLSX), roles, audit, import/export and
the grades of outcomes. The sample libraries fill each database on first use.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from matcher.matching import grades
from matcher.roles import hash_token
from matcher.store import crud, search, transactions
from matcher.store import io as store_io
from matcher.store import labels as stored_labels
from matcher.store.schema import AuditEntry, Decision, Outcome

PROBLEM = "application/problem+json"
COORDINATOR, ANALYST = "mk_" + "c" * 40, "mk_" + "a" * 40
KEYS = f"c:coordinator:{hash_token(COORDINATOR)},a:analyst:{hash_token(ANALYST)}"
AS_COORDINATOR = {"Authorization": f"Bearer {COORDINATOR}"}
AS_ANALYST = {"Authorization": f"Bearer {ANALYST}"}
ORG = {
    "id": "O9001",
    "name": "雄县测试社会工作服务中心",
    "stage": "初创期",
    "county": "雄县",
    "township": "雄州镇",
    "founded_year": 2025,
    "staff_count": 8,
    "kind": "社工机构",
    "status": "在孵",
    "admitted_on": "2026/3/1",
    "licensed_social_workers": 3,
}
MILESTONE = {
    "id": "M9001",
    "org_id": "O9001",
    "stage": "初创期",
    "goal": "规范内部管理",
    "milestone": "建立财务和档案制度",
    "due_on": "2026-06-30",
}
OUTCOME = {"goal_met": "yes", "rating": 5, "hours": 6.5, "changed": "建立了转介流程", "follow_up_on": "2026-12-20"}


@pytest.fixture
def client(make_app, db_url):
    client = make_app(DATABASE_URL=db_url, API_KEYS=KEYS).test_client()
    created = client.post("/v1/organisations", json=ORG, headers=AS_COORDINATOR)
    assert created.status_code == 201, created.get_json()
    return client


def audit_actions(db_url: str, kind: str) -> list[tuple[str, str | None]]:
    with transactions.transaction(db_url) as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.kind == kind).order_by(AuditEntry.id))
        return [(e.action, e.record_id) for e in rows]


def test_file_fields_stage_history_and_milestones(client, db_url) -> None:
    org = client.get("/v1/organisations/O9001", headers=AS_COORDINATOR).get_json()
    assert (org["kind"], org["status"], org["admitted_on"], org["left_on"]) == (
        "agency",
        "resident",
        "2026-03-01",
        None,
    )
    stages = client.get("/v1/stages?org_id=O9001", headers=AS_COORDINATOR).get_json()["items"]
    assert [(s["stage"], s["since"]) for s in stages] == [("初创期", "2026-03-01")]
    grown = client.put("/v1/organisations/O9001", json={**ORG, "stage": "成长期"}, headers=AS_COORDINATOR)
    assert grown.status_code == 200
    stages = client.get("/v1/stages?org_id=O9001", headers=AS_COORDINATOR).get_json()["items"]
    assert [s["stage"] for s in sorted(stages, key=lambda s: s["since"])] == ["初创期", "成长期"]
    graduated = {**ORG, "stage": "成长期", "status": "出壳", "left_on": "2026-11-30"}
    assert (
        client.put("/v1/organisations/O9001", json=graduated, headers=AS_COORDINATOR).get_json()["status"]
        == "graduated"
    )
    assert len(client.get("/v1/stages?org_id=O9001", headers=AS_COORDINATOR).get_json()["items"]) == 2
    assert client.post("/v1/milestones", json=MILESTONE, headers=AS_COORDINATOR).status_code == 201
    done = client.put("/v1/milestones/M9001", json={**MILESTONE, "status": "已完成"}, headers=AS_COORDINATOR)
    assert done.status_code == 200 and done.get_json()["status"] == "done"
    listed = client.get("/v1/milestones?org_id=O9001&status=done", headers=AS_COORDINATOR).get_json()
    assert [m["id"] for m in listed["items"]] == ["M9001"]
    assert ("create", "M9001") in audit_actions(db_url, "milestones")
    assert ("replace", "M9001") in audit_actions(db_url, "milestones")
    assert ("replace", "O9001") in audit_actions(db_url, "organisations")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "applicant"}, "admitted_on"),  # an applicant is not admitted yet
        ({"left_on": "2026-09-01"}, "left_on"),  # a resident has not left
        ({"status": "left", "left_on": "2026-01-01"}, "left_on"),  # before admission
        ({"licensed_social_workers": 9}, "licensed_social_workers"),  # more than the staff
        ({"admitted_on": "2026-02-30"}, "admitted_on"),
        ({"kind": "company"}, "kind"),
        ({"status": "retired"}, "status"),
    ],
)
def test_invalid_file_fields_are_400_naming_the_field_and_store_nothing(client, change, field) -> None:
    response = client.put("/v1/organisations/O9001", json={**ORG, **change}, headers=AS_COORDINATOR)
    assert response.status_code == 400 and response.content_type == PROBLEM
    assert field in {e["field"] for e in response.get_json()["errors"]}
    assert client.get("/v1/organisations/O9001", headers=AS_COORDINATOR).get_json()["status"] == "resident"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"org_id": "O9999"}, "org_id"),
        ({"due_on": "soon"}, "due_on"),
        ({"status": "late"}, "status"),
        ({"goal": ""}, "goal"),
    ],
)
def test_invalid_milestones_are_400(client, change, field) -> None:
    response = client.post("/v1/milestones", json={**MILESTONE, **change}, headers=AS_COORDINATOR)
    assert response.status_code == 400 and response.content_type == PROBLEM
    assert field in {e["field"] for e in response.get_json()["errors"]}


def test_analysts_read_the_file_redacted_but_edit_nothing(client) -> None:
    assert client.get("/v1/organisations/O9001/file", headers=AS_ANALYST).status_code == 200
    assert client.get("/v1/milestones", headers=AS_ANALYST).status_code == 200
    for method, path, body in (
        ("post", "/v1/milestones", MILESTONE),
        ("put", "/v1/organisations/O9001", ORG),
        ("put", "/v1/engagements/1/outcome", OUTCOME),
    ):
        refused = getattr(client, method)(path, json=body, headers=AS_ANALYST)
        assert refused.status_code == 403 and refused.content_type == PROBLEM
    assert client.get("/v1/organisations/O9001/file").status_code == 401


def open_engagement(client) -> dict:
    """Accept an available expert of another organisation for a new need of O9001."""
    need = {
        "org_id": "O9001",
        "title": "个案管理指导",
        "description": "希望专家指导个案管理和转介。",
        "tags": ["个案管理"],
    }
    need = client.post("/v1/needs", json=need, headers=AS_COORDINATOR).get_json()
    experts = client.get("/v1/experts?per_page=100&tag=个案管理", headers=AS_COORDINATOR).get_json()["items"]
    expert = next(e for e in experts if e["available"] and e["open_engagements"] < e["capacity"])
    accepted = client.post(
        "/v1/feedback",
        json={"need_id": need["id"], "target_type": "expert", "target_id": expert["id"], "decision": "accepted"},
        headers=AS_COORDINATOR,
    )
    assert accepted.status_code == 201, accepted.get_json()
    return accepted.get_json()["engagement"]


def complete(client, engagement: dict, **extra):
    body = {
        "need_id": engagement["need_id"],
        "target_type": engagement["target_type"],
        "target_id": engagement["target_id"],
        "decision": "completed",
        **extra,
    }
    return client.post("/v1/feedback", json=body, headers=AS_COORDINATOR)


def test_completing_with_an_outcome_and_the_file_shows_it(client, db_url) -> None:
    engagement = open_engagement(client)
    for extra, field in (
        ({"outcome": {**OUTCOME, "goal_met": "maybe"}}, "outcome.goal_met"),
        ({"outcome": {**OUTCOME, "rating": 6}}, "outcome.rating"),
        ({"outcome": {**OUTCOME, "hours": -1}}, "outcome.hours"),
        ({"outcome": OUTCOME, "rating": 3}, "rating"),  # two different ratings
    ):
        refused = complete(client, engagement, **extra)
        assert refused.status_code == 400 and refused.content_type == PROBLEM, extra
        assert field in {e["field"] for e in refused.get_json()["errors"]}
    still = client.get(f"/v1/engagements?need_id={engagement['need_id']}", headers=AS_COORDINATOR).get_json()
    assert still["items"][0]["status"] == "open"  # nothing stored by the refused completions
    done = complete(client, engagement, outcome={**OUTCOME, "goal_met": "是"})
    assert done.status_code == 201, done.get_json()
    body = done.get_json()
    assert body["decision"]["rating"] == 5  # the decision takes the outcome's rating
    assert body["engagement"]["outcome"]["goal_met"] == "yes" and body["engagement"]["outcome"]["hours"] == 6.5
    with transactions.transaction(db_url) as session:
        outcome = session.get(Outcome, body["decision"]["id"])
        assert outcome.engagement_id == engagement["id"] and outcome.follow_up_on.isoformat() == "2026-12-20"
        assert session.get(Decision, body["decision"]["id"]).decision == "completed"
    file = client.get("/v1/organisations/O9001/file", headers=AS_COORDINATOR).get_json()
    shown = next(e for e in file["engagements"] if e["id"] == engagement["id"])
    assert shown["outcome"]["changed"] == "建立了转介流程"
    assert file["summary"]["completed"] == 1 and file["summary"]["goal_met"] == 1
    assert file["summary"]["expert_hours"] == 6.5 and file["summary"]["awaiting_outcome"] == 0
    redacted = client.get("/v1/organisations/O9001/file", headers=AS_ANALYST).get_json()
    assert redacted["summary"] == file["summary"]
    xlsx = client.get("/v1/organisations/O9001/file.xlsx", headers=AS_COORDINATOR)
    book = load_workbook(io.BytesIO(xlsx.data))
    assert book.sheetnames == ["机构", "阶段历史", "孵化计划", "需求", "合作与成效", "活动", "资源"]
    rows = list(book["合作与成效"].iter_rows(values_only=True))
    assert rows[1][7:11] == ("目标达成", 5, 6.5, "建立了转介流程")
    assert client.get("/v1/organisations/O9999/file", headers=AS_COORDINATOR).status_code == 404


def test_outcome_later_the_waiting_list_and_audit(client, db_url) -> None:
    engagement = open_engagement(client)
    early = client.put(f"/v1/engagements/{engagement['id']}/outcome", json=OUTCOME, headers=AS_COORDINATOR)
    assert early.status_code == 409 and "open" in early.get_json()["detail"]  # not completed yet
    assert complete(client, engagement).status_code == 201  # the existing route, no outcome
    waiting = client.get("/v1/engagements?awaiting_outcome=true&per_page=100&org_id=O9001", headers=AS_COORDINATOR)
    assert [e["id"] for e in waiting.get_json()["items"]] == [engagement["id"]]
    later = client.put(f"/v1/engagements/{engagement['id']}/outcome", json=OUTCOME, headers=AS_COORDINATOR)
    assert later.status_code == 201 and later.get_json()["outcome"]["rating"] == 5
    corrected = client.put(
        f"/v1/engagements/{engagement['id']}/outcome", json={**OUTCOME, "goal_met": "partly"}, headers=AS_COORDINATOR
    )
    assert corrected.status_code == 200 and corrected.get_json()["outcome"]["goal_met"] == "partly"
    waiting = client.get("/v1/engagements?awaiting_outcome=true&per_page=100&org_id=O9001", headers=AS_COORDINATOR)
    assert waiting.get_json()["total"] == 0
    assert [a for a, _ in audit_actions(db_url, "outcomes")] == ["create", "replace"]
    assert client.put("/v1/engagements/999999/outcome", json=OUTCOME, headers=AS_COORDINATOR).status_code == 404
    labels = None
    with transactions.transaction(db_url) as session:
        labels = stored_labels.outcome_labels_db(session)
    mine = labels.loc[labels["need_id"] == engagement["need_id"]]
    assert mine["grade"].tolist() == [3.0] and set(mine["source"]) == {"follow_up"}


def test_grades_order_outcomes_above_completion() -> None:
    assert (
        grades.grade("follow_up", "yes")
        > grades.grade("decision", "completed")
        > grades.grade("decision", "accepted")
        > grades.grade("decision", "rejected")
    )
    assert grades.grade("follow_up", "部分") == grades.grade("decision", "completed")
    assert grades.grade("follow_up", "no") == 1.0
    with pytest.raises(grades.GradeError, match="yes, partly or no"):
        grades.grade("follow_up", "maybe")
    frame = pd.DataFrame(
        [["N1", "O1", "expert", "E1", "no", pd.Timestamp("2026-07-01", tz="UTC")]],
        columns=["need_id", "org_id", "target_type", "target_id", "goal_met", "closed_at"],
    )
    assert list(grades.outcome_labels(frame).columns) == list(grades.LABEL_COLUMNS)


def test_organisations_import_and_export_with_the_file_columns(client, db_url, tmp_path) -> None:
    path = tmp_path / "organisations.csv"
    path.write_text(
        "编号,机构名称,阶段,县区,乡镇,类型,入驻状态,入驻日期,离开日期,人数,持证社工\n"
        "O9002,容城县新社工站,初创期,容城县,容城镇,乡镇社工站,申请中,,,2,0\n"
        "O9003,雄县老机构,成熟期,雄县,雄州镇,社工机构,出壳,2021-01-01,2020-12-31,9,4\n",
        encoding="utf-8-sig",
    )
    with pytest.raises(store_io.ImportRejectedError) as rejected:
        store_io.import_file("organisations", path, url=db_url)
    assert "row 2, column '离开日期': must not be before admitted_on" in str(rejected.value)
    path.write_text(path.read_text(encoding="utf-8-sig").replace("2020-12-31", "2026-06-30"), encoding="utf-8-sig")
    assert store_io.import_file("organisations", path, url=db_url).created == 2
    with transactions.transaction(db_url) as session:
        stored = crud.get_record(session, "organisations", "O9003")
        steps = search.list_records(session, "stages", org_id="O9003")[0]
    assert (stored["kind"], stored["status"], stored["left_on"]) == ("agency", "graduated", "2026-06-30")
    assert [(s["stage"], s["since"]) for s in steps] == [("成熟期", "2021-01-01")]
    for suffix in (".csv", ".xlsx", ".jsonl"):
        out = tmp_path / f"out{suffix}"
        written = store_io.export_file("organisations", out, url=db_url)
        report = store_io.import_file("organisations", out, url=db_url)
        assert (report.created, report.updated, report.unchanged) == (0, 0, written), suffix
    header = (tmp_path / "out.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert header == (
        "id,name,stage,county,township,founded_year,staff_count,kind,status,admitted_on,left_on,licensed_social_workers"
    )
    written = store_io.export_file("milestones", tmp_path / "m.csv", url=db_url)  # the seeded plan, back unchanged
    report = store_io.import_file("milestones", tmp_path / "m.csv", url=db_url)
    assert written > 0 and (report.created, report.updated, report.unchanged) == (0, 0, written)


def test_migration_0005_keeps_organisations_resident_and_links_closed_engagements(db_url) -> None:
    from sqlalchemy import text

    from matcher.store.db import engine_for, upgrade
    from matcher.store.schema import Engagement, Organisation

    upgrade(db_url, "0004")
    when = "2026-03-05 02:00:00+00:00"
    with engine_for(db_url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO organisations (id, name, stage, county, township, updated_at)"
                " VALUES ('O1', '测试机构', '初创期', '雄县', '', :t)"
            ),
            {"t": when},
        )
        connection.execute(
            text(
                "INSERT INTO needs (id, org_id, title, description, tags, urgency, status, created_at, updated_at)"
                " VALUES ('N1', 'O1', '标题', '描述', '[]', 'medium', 'closed', :t, :t)"
            ),
            {"t": when},
        )
        for id_, decision, at in (("D1", "accepted", "2026-03-01 02:00:00+00:00"), ("D2", "completed", when)):
            connection.execute(
                text(
                    "INSERT INTO decisions (id, need_id, target_type, target_id, decision, comment, decided_at)"
                    " VALUES (:id, 'N1', 'expert', 'E1', :d, '', :t)"
                ),
                {"id": id_, "d": decision, "t": at},
            )
        connection.execute(
            text(
                "INSERT INTO engagements (need_id, target_type, target_id, status, opened_at, closed_at, decision_id)"
                " VALUES ('N1', 'expert', 'E1', 'completed', '2026-03-01 02:00:00+00:00', :t, 'D1')"
            ),
            {"t": when},
        )
    upgrade(db_url)
    with transactions.transaction(db_url) as session:
        org = session.get(Organisation, "O1")
        assert (org.kind, org.status, org.admitted_on) == ("agency", "resident", None)
        assert session.scalars(select(Engagement)).one().closed_decision_id == "D2"


def test_an_outcome_goes_with_a_completion_only(client) -> None:
    engagement = open_engagement(client)
    cancel = {
        "need_id": engagement["need_id"],
        "target_type": "expert",
        "target_id": engagement["target_id"],
        "decision": "cancelled",
        "outcome": OUTCOME,
    }
    refused = client.post("/v1/feedback", json=cancel, headers=AS_COORDINATOR)
    assert refused.status_code == 400 and refused.get_json()["errors"][0]["field"] == "outcome"
    items = client.get(f"/v1/engagements?need_id={engagement['need_id']}", headers=AS_COORDINATOR).get_json()["items"]
    assert [e["status"] for e in items] == ["open"]
