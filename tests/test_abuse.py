"""The probe of issue 15, kept as regression tests: each numbered finding (f01-f11) as it was reproduced.

Everything is real: the Flask app over a private copy of the trained SQLite database, the ``matcher``
command line as a subprocess, a gunicorn server for what only a real server shows (chunked bodies,
long request lines), openpyxl reading the XLSX files back, PostgreSQL where it is reachable.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import openpyxl
import pytest

from tests.access_support import bearer, copy_database, make_keys
from tests.conftest import ROOT
from tests.test_server import start_server, stop_server

FORMULA = '=HYPERLINK("http://x","y")'
NEED_TITLE = "=1+1"
# full-width digits, a full-width at sign and a dotted number: what the weaker redaction let through
FULL_WIDTH_PHONE = "１３８１２３４５６７８"
FULL_WIDTH_MAIL = "zhang＠example.com"
DOTTED_PHONE = "138.1234.5678"
PERSONAL = (FULL_WIDTH_PHONE, FULL_WIDTH_MAIL, DOTTED_PHONE, "13812345678", "zhang@example.com")


def run(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "matcher.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def db(trained, tmp_path) -> str:
    """A private, writable copy of the trained database."""
    return copy_database(trained["database"], tmp_path / "abuse.sqlite3")


@pytest.fixture
def local(make_app, db):
    """The app over ``db`` with no key configured: keyless loopback requests are the local coordinator."""
    return make_app(DATABASE_URL=db, AUTH_CACHE_SECONDS=0).test_client()


@pytest.fixture
def env(cli_env, db) -> dict[str, str]:
    return {**cli_env, "DATABASE_URL": db}


def _expert(expert_id: str, **fields) -> dict:
    return {
        "id": expert_id,
        "name": "赵六",
        "specialties": ["个案管理"],
        "bio": "长期从事个案管理与转介实务督导，熟悉个案会议。",
        "counties": ["雄县"],
        "capacity": 3,
        **fields,
    }


def _need(local, need_id: str, **fields) -> dict:
    org = local.get("/v1/organisations?per_page=1").get_json()["items"][0]["id"]
    body = {
        "id": need_id,
        "org_id": org,
        "title": "个案管理督导",
        "description": "希望专家指导社工开展个案管理和个案会议。",
        "tags": ["个案管理"],
        **fields,
    }
    response = local.post("/v1/needs", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _cells(data: bytes) -> list[openpyxl.cell.cell.Cell]:
    book = openpyxl.load_workbook(io.BytesIO(data))  # formulas as written, not their cached values
    return [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row]


# ---------------------------------------------------------------- 1. formula injection


def test_f01_xlsx_exports_hold_text_never_formulas(local) -> None:
    assert local.post("/v1/experts", json=_expert("E9501", name=FORMULA)).status_code == 201
    _need(local, "N9501", title=NEED_TITLE)
    stored = local.get("/v1/needs/N9501/matches.xlsx?k=50&targets=expert")
    free = local.post("/v1/match/export", json={"text": "=SUM(1,2) 个案管理与个案会议督导", "k": 50})
    for response in (stored, free):
        assert response.status_code == 200
        cells = _cells(response.data)
        assert not [c.coordinate for c in cells if c.data_type == "f"]
        assert all(c.data_type in ("s", "n", "b") for c in cells if c.value is not None)
    values = {c.value for c in _cells(stored.data)}
    assert NEED_TITLE in values and FORMULA in values  # as typed: no prefix added
    assert 3 in values or any(isinstance(v, int | float) for v in values)  # numbers stay numbers
    free_values = {c.value for c in _cells(free.data)}
    assert any(isinstance(v, str) and v.startswith("=sum(1,2)") for v in free_values)  # the normalised need


def test_f01_cli_exports_quote_formulas_in_csv_and_type_them_in_xlsx(local, env, tmp_path) -> None:
    assert local.post("/v1/experts", json=_expert("E9502", name=FORMULA, bio="@SUM(A1) 个案")).status_code == 201
    for suffix in (".csv", ".xlsx"):
        out = tmp_path / f"experts{suffix}"
        result = run(["export", "experts", str(out)], env)
        assert result.returncode == 0, result.stderr
    with (tmp_path / "experts.csv").open(encoding="utf-8-sig", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["id"] == "E9502")
    assert row["name"] == "'" + FORMULA and row["bio"] == "'@SUM(A1) 个案"
    cells = _cells((tmp_path / "experts.xlsx").read_bytes())
    assert not [c for c in cells if c.data_type == "f"]
    assert FORMULA in {c.value for c in cells}


def test_f01_export_import_round_trip_in_both_directions(local, env, tmp_path) -> None:
    bio = "- 擅长个案管理\n- 督导"
    assert local.post("/v1/experts", json=_expert("E9503", bio=bio, phone="+8613812345678")).status_code == 201
    for suffix in (".csv", ".xlsx"):
        out = tmp_path / f"experts{suffix}"
        assert run(["export", "experts", str(out)], env).returncode == 0
        again = run(["import", "experts", str(out)], env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("created 0, updated 0, unchanged")
    with (tmp_path / "experts.csv").open(encoding="utf-8-sig", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["id"] == "E9503")
    assert row["bio"] == "'" + bio and row["phone"] == "'+8613812345678"
    # the other way: a file written with the quotes imports without them, and exports byte for byte
    quoted = tmp_path / "quoted.csv"
    quoted.write_text(
        "id,name,bio,phone,specialties\n"
        "E9504,'=钱七,'- 第一行,'+8613912345678,个案管理\n"
        "E9505,''=孙八,'abc,13912345678,个案管理\n",
        encoding="utf-8",
    )
    assert run(["import", "experts", str(quoted)], env).returncode == 0
    expert = local.get("/v1/experts/E9504").get_json()
    assert (expert["name"], expert["bio"], expert["phone"]) == ("=钱七", "- 第一行", "+8613912345678")
    other = local.get("/v1/experts/E9505").get_json()
    assert (other["name"], other["bio"]) == ("'=孙八", "'abc")  # exactly one quote stripped, only before a trigger
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    assert run(["export", "experts", str(first)], env).returncode == 0
    assert run(["import", "experts", str(first)], env).stdout.startswith("created 0, updated 0")
    assert run(["export", "experts", str(second)], env).returncode == 0
    assert first.read_bytes() == second.read_bytes()


def test_f01_batch_rejects_and_outputs_are_quoted(cli_env, tmp_path) -> None:
    needs = tmp_path / "needs.csv"
    needs.write_text(
        "id,title,description,name\nN1,个案管理督导,希望专家指导个案管理,\nN2,,,=cmd|' /C calc'!A0\n",
        encoding="utf-8",
    )
    experts = tmp_path / "experts.csv"
    experts.write_text("id,name,text\nE1,甲,个案管理督导\nE2,乙,养老服务\n@E3,丙,儿童保护\n", encoding="utf-8")
    out, rejects = tmp_path / "scores.csv", tmp_path / "rejects.csv"
    result = run(
        ["batch", "--needs", str(needs), "--experts", str(experts), "--out", str(out), "--skip-invalid", str(rejects)],
        cli_env,
    )
    assert result.returncode == 0, result.stderr
    with rejects.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["row"] for r in rows} == {"2", "3"}
    assert any(r["name"] == "'=cmd|' /C calc'!A0" for r in rows)
    assert any(r["id"] == "'@E3" and "must not begin with" in r["reason"] for r in rows)  # ids refused at input
    assert not any(line.startswith(("=", "+", "-", "@")) for line in out.read_text(encoding="utf-8-sig").splitlines())


def test_f01_ids_may_not_begin_with_a_formula_character(local) -> None:
    for bad in ("=E1", "+E1", "-E1", "@E1"):
        response = local.post("/v1/experts", json=_expert(bad))
        assert response.status_code == 400
        assert response.get_json()["errors"][0]["field"] == "id"


# ---------------------------------------------------------------- 2. redaction


@pytest.fixture
def keyed(make_app, db):
    tokens = make_keys(db)
    return make_app(DATABASE_URL=db, AUTH_CACHE_SECONDS=0).test_client(), tokens


def _personal_need(client, tokens) -> None:
    org = client.get("/v1/organisations?per_page=1", headers=bearer(tokens["coordinator"])).get_json()["items"][0]
    body = {
        "id": "N9510",
        "org_id": org["id"],
        "title": f"个案管理督导 联系{FULL_WIDTH_PHONE}",
        "description": f"希望专家指导个案管理。邮箱{FULL_WIDTH_MAIL}，电话{DOTTED_PHONE}。",
        "tags": ["个案管理"],
    }
    response = client.post("/v1/needs", json=body, headers=bearer(tokens["coordinator"]))
    assert response.status_code == 201, response.get_json()


def test_f02_record_views_redact_full_width_and_dotted_numbers(keyed) -> None:
    client, tokens = keyed
    _personal_need(client, tokens)
    body = client.get("/v1/needs/N9510", headers=bearer(tokens["analyst"])).get_json()
    shown = json.dumps(body, ensure_ascii=False)
    assert not [p for p in PERSONAL if p in shown]
    assert "[电话]" in body["title"] and "[邮箱]" in body["description"] and "[电话]" in body["description"]
    listed = json.dumps(client.get("/v1/needs?q=个案管理督导", headers=bearer(tokens["analyst"])).get_json())
    assert FULL_WIDTH_PHONE not in listed
    own = client.get("/v1/needs/N9510", headers=bearer(tokens["coordinator"])).get_json()
    assert FULL_WIDTH_PHONE in own["title"]  # the record itself keeps what was written


def test_f02_match_responses_redact_full_width_and_dotted_numbers(local) -> None:
    need = f"想请个案管理督导，联系{FULL_WIDTH_PHONE}或{DOTTED_PHONE}，邮箱{FULL_WIDTH_MAIL}"
    body = local.post("/v1/match", json={"text": need, "k": 3}).get_json()
    shown = json.dumps(body, ensure_ascii=False)
    assert not [p for p in PERSONAL if p in shown]
    assert body["need"]["text"].count("[电话]") == 2 and "[邮箱]" in body["need"]["text"]


def test_f02_xlsx_redacts_the_title_row_too(keyed) -> None:
    client, tokens = keyed
    _personal_need(client, tokens)
    for role in ("analyst", "coordinator"):
        response = client.get("/v1/needs/N9510/matches.xlsx", headers=bearer(tokens[role]))
        assert response.status_code == 200
        values = " ".join(str(c.value) for c in _cells(response.data) if c.value is not None)
        assert not [p for p in PERSONAL if p in values]
        assert "个案管理督导 联系[电话]" in values


def test_f02_log_lines_redact_full_width_numbers() -> None:
    from matcher.web.monitoring import JsonFormatter

    record = logging.LogRecord(
        "matcher", logging.WARNING, __file__, 1, f"need {FULL_WIDTH_PHONE} {DOTTED_PHONE}", (), None
    )
    line = JsonFormatter().format(record)
    assert FULL_WIDTH_PHONE not in line and DOTTED_PHONE not in line and line.count("[电话]") == 2


def test_f02_batch_rejects_redact_full_width_numbers(cli_env, tmp_path) -> None:
    needs = tmp_path / "needs.csv"
    needs.write_text(
        f"id,title,description,capacity\nN1,个案管理,督导个案管理,\nN2,电话{FULL_WIDTH_PHONE},{FULL_WIDTH_MAIL},x\n",
        encoding="utf-8",
    )
    experts = tmp_path / "experts.csv"
    experts.write_text("id,name,text\nE1,甲,个案管理督导\n", encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    result = run(
        [
            "batch",
            "--needs",
            str(needs),
            "--experts",
            str(experts),
            "--out",
            str(tmp_path / "o.csv"),
            "--skip-invalid",
            str(rejects),
        ],
        cli_env,
    )
    assert result.returncode == 0, result.stderr
    written = rejects.read_text(encoding="utf-8-sig")
    assert FULL_WIDTH_PHONE not in written and FULL_WIDTH_MAIL not in written
    assert "[电话]" in written and "[邮箱]" in written


def test_f02_assignment_outputs_use_the_one_redaction() -> None:
    from matcher.jobs.assign import job as assignment
    from matcher.text import privacy

    assert assignment.redact is privacy.redact
    assert assignment.redact(f"conflict {FULL_WIDTH_PHONE} {DOTTED_PHONE}") == "conflict [电话] [电话]"


def test_f02_exports_with_contacts_are_audited_as_contact_views(env, db, tmp_path) -> None:
    from matcher.store import audit
    from matcher.store.transactions import transaction

    assert run(["export", "experts", str(tmp_path / "x.csv")], env).returncode == 0
    with transaction(db) as session:
        entries, total = audit.list_audit(session, action="view_contacts")
    assert total >= 1 and entries[0]["detail"]["export"] == "x.csv" and entries[0]["detail"]["ids"]


# ---------------------------------------------------------------- 3. control characters


def test_f03_control_characters_are_refused_by_the_api_and_crlf_is_normalised(local, env, tmp_path) -> None:
    response = local.post("/v1/experts", json=_expert("E9520", name="李\u0001四"))
    assert response.status_code == 400
    assert response.get_json()["detail"].startswith("name: must not contain control characters")
    assert local.post("/v1/experts", json=_expert("E9521", bio="第一行\r\n第二行\r第三行")).status_code == 201
    assert local.get("/v1/experts/E9521").get_json()["bio"] == "第一行\n第二行\n第三行"
    assert run(["export", "experts", str(tmp_path / "x.xlsx")], env).returncode == 0


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b"])
def test_f03_control_characters_are_refused_by_import_naming_row_and_field(env, tmp_path, character) -> None:
    path = tmp_path / "experts.csv"
    path.write_text(
        f"id,name,phone,email\nE9522,王五,13812345678,w@x.org\nE9523,李{character}四,13912345678,l@x.org\n",
        encoding="utf-8",
    )
    result = run(["import", "experts", str(path)], env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "row 2, column 'name'" in lines[0] and "control characters" in lines[0]
    assert "13912345678" not in result.stderr and "l@x.org" not in result.stderr


def test_f03_postgres_import_of_a_nul_is_one_line_without_personal_values(
    cli_env, postgres_schema_url, tmp_path
) -> None:
    url = postgres_schema_url()
    env = {**cli_env, "DATABASE_URL": url}
    path = tmp_path / "experts.csv"
    path.write_text("id,name,phone,email\nE9524,李\x00四,13912345678,l@x.org\n", encoding="utf-8")
    result = run(["import", "experts", str(path)], env)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "column 'name'" in result.stderr
    assert (
        "13912345678" not in result.stderr and "INSERT" not in result.stderr and "internal error" not in result.stderr
    )


def test_f03_a_value_the_database_refuses_is_one_line_naming_row_and_field(env, db, tmp_path) -> None:
    connection = sqlite3.connect(db.removeprefix("sqlite:///"))
    with connection:
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON experts WHEN NEW.bio LIKE '%拒收%' "
            "BEGIN SELECT RAISE(ABORT, 'refused 13912345678'); END"
        )
    connection.close()
    path = tmp_path / "experts.csv"
    path.write_text("id,name,bio,phone\nE9525,王五,正常,\nE9526,李四,拒收,13912345678\n", encoding="utf-8")
    result = run(["import", "experts", str(path)], env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"matcher: {path}: row 2, column 'bio': the database refused this value (IntegrityError); nothing was imported"
    ]


def test_f03_the_migration_cleans_control_characters_already_stored(db_url) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from matcher.store.db import engine_for, upgrade
    from matcher.store.schema import Expert

    upgrade(db_url, "0002")
    with engine_for(db_url).begin() as connection:
        connection.execute(
            insert(Expert.__table__),
            [
                {
                    "id": "E1",
                    "name": "李\x01四",
                    "specialties": ["个案\x02管理"],
                    "bio": "a\r\nb\x7f",
                    "counties": [],
                    "courses": [],
                    "updated_at": datetime.now(UTC),
                }
            ],
        )
    upgrade(db_url)
    with engine_for(db_url).connect() as connection:
        row = connection.execute(select(Expert.name, Expert.specialties, Expert.bio).where(Expert.id == "E1")).one()
    assert tuple(row) == ("李四", ["个案管理"], "a\nb")


# ---------------------------------------------------------------- 4. imports audited


def test_f04_imports_are_audited_with_counts_and_ids(env, db, tmp_path) -> None:
    from matcher.store import audit
    from matcher.store.transactions import transaction

    path = tmp_path / "experts.csv"
    path.write_text("id,name,specialties\nE9530,王五,个案管理\nE0001,程琪,政策解读\n", encoding="utf-8")
    result = run(["import", "experts", str(path)], env)
    assert result.returncode == 0, result.stderr
    with transaction(db) as session:
        entries, total = audit.list_audit(session, action="import")
    assert total == 1
    entry = entries[0]
    assert entry["kind"] == "experts" and entry["actor"].startswith("cli")
    assert entry["detail"]["created_ids"] == ["E9530"] and entry["detail"]["updated_ids"] == ["E0001"]
    assert (entry["detail"]["created"], entry["detail"]["updated"]) == (1, 1)


# ---------------------------------------------------------------- 5. keyless mode behind a proxy

PROXY_HEADERS = [
    ("X-Forwarded-Host", "example.org"),
    ("X-Forwarded-Proto", "https"),
    ("Via", "1.1 proxy"),
    ("X-Client-IP", "192.0.2.7"),
    ("CF-Connecting-IP", "192.0.2.7"),
    ("True-Client-IP", "192.0.2.7"),
    ("X-Forwarded-Port", "443"),
    ("X-Original-Forwarded-For", "192.0.2.7"),
]


@pytest.mark.parametrize(("name", "value"), PROXY_HEADERS)
def test_f05_keyless_mode_is_refused_whenever_a_forwarding_header_is_present(local, name, value) -> None:
    assert local.post("/v1/match", json={"text": "个案管理"}).status_code == 200
    response = local.post("/v1/match", json={"text": "个案管理"}, headers={name: value})
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert local.get("/session", headers={name: value}).get_json()["local"] is False


# ---------------------------------------------------------------- 6, 9. a real server: chunked bodies, long queries


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    url = copy_database(trained["database"], folder / "served.sqlite3")
    env = {
        **os.environ,
        "MATCHER_MODELS_DIR": str(trained["models"]),
        "MATCHER_DATA_DIR": str(trained["data"]),
        "DATABASE_URL": url,
    }
    process, base = start_server(env, folder / "server.log", workers=1)
    yield base.removeprefix("http://")
    stop_server(process)


def _chunked(address: str, body: bytes) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection(address, timeout=60)
    try:
        connection.putrequest("POST", "/v1/match")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for start in range(0, len(body), 8192):
            piece = body[start : start + 8192]
            connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def test_f06_chunked_bodies_over_the_limit_are_refused_with_413(served) -> None:
    small = json.dumps({"text": "个案管理督导", "k": 2}).encode()
    status, _, body = _chunked(served, small)
    assert status == 200 and json.loads(body)["results"]["expert"]
    # a valid JSON prefix within the first 64 KiB: cutting the body there would have matched it
    big = json.dumps({"text": "个案管理督导", "k": 2, "padding": "x" * 70_000}).encode()
    status, kind, body = _chunked(served, big)
    assert status == 413 and kind == "application/problem+json" and json.loads(body)["status"] == 413


def _get(address: str, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(address, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_f09_the_documented_500_character_q_works_and_longer_queries_are_problem_json(served) -> None:
    q = ("个案管理督导社区养老服务" * 50)[:500]
    status, headers, body = _get(served, f"/v1/experts?q={quote(q)}")
    assert status == 200 and headers["content-type"].startswith("application/json"), body[:200]
    longer = quote(q + q[:200])  # 700 characters: 6,300 bytes as sent, within gunicorn's 8,190-byte line
    status, headers, body = _get(served, f"/v1/experts?q={longer}")
    assert status == 414 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 414


def test_f09_html_responses_carry_the_security_headers(served) -> None:
    status, headers, body = _get(served, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert b"<script>" not in body and b" onclick=" not in body and b"<style>" not in body  # nothing inline


# ---------------------------------------------------------------- 7. values validated


def test_f07_tags_counties_numbers_and_versions_are_validated(local) -> None:
    free = local.post("/v1/match", json={"text": "个案管理", "tags": ["个案管理", "随便写的标签"]})
    assert free.status_code == 400 and free.get_json()["errors"][0]["field"] == "tags.1"
    expert = local.post("/v1/experts", json=_expert("E9540", counties=["雄县", "火星"]))
    assert expert.status_code == 400 and "火星" in expert.get_json()["detail"]
    org = {"id": "O9540", "name": "测试机构", "stage": "初创期", "county": "雄县", "township": "容城镇"}
    assert local.post("/v1/organisations", json=org).status_code == 400  # 容城镇 is in 容城县
    assert local.post("/v1/organisations", json={**org, "township": "昝岗镇"}).status_code == 201
    resource = {"id": "R9540", "type": "venue", "name": "场地", "county": "火星"}
    assert local.post("/v1/resources", json=resource).status_code == 400
    need = local.get("/v1/needs?status=open&per_page=1").get_json()["items"][0]["id"]
    expert_id = local.get("/v1/experts?per_page=1").get_json()["items"][0]["id"]
    decision = {"need_id": need, "target_type": "expert", "target_id": expert_id, "decision": "rejected"}
    for bad in ({"score": 1e308}, {"model_version": "../../x"}, {"model_version": "latest"}):
        response = local.post("/v1/feedback", json={**decision, **bad})
        assert response.status_code == 400, bad
    assert (
        local.post("/v1/feedback", json={**decision, "model_version": "20261201T000000Z", "score": 0.5}).status_code
        == 201
    )


def test_f07_decisions_on_a_closed_need_are_409(local) -> None:
    assert local.post("/v1/experts", json=_expert("E9541")).status_code == 201
    _need(local, "N9541", status="closed")
    decision = {"need_id": "N9541", "target_type": "expert", "target_id": "E9541", "decision": "accepted"}
    response = local.post("/v1/feedback", json=decision)
    assert response.status_code == 409 and "closed" in response.get_json()["detail"]
    assert local.get("/v1/engagements?need_id=N9541").get_json()["total"] == 0


# ---------------------------------------------------------------- 8. bad import files in one line


def test_f08_bad_import_files_are_one_line(env, tmp_path) -> None:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 40)
    big5 = tmp_path / "big5.csv"
    big5.write_bytes("id,name,bio\nE9550,張三,社會工作督導與個案管理專家\n".encode("big5"))
    formula = tmp_path / "formula.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["id", "name"])
    book.active.append(["E9551", '=A2&"x"'])
    book.save(formula)
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b,c,d,e,f\n1,2,3,4,5,6\n", encoding="utf-8")
    for path, words in (
        (binary, "binary"),
        (big5, "Big5"),
        (formula, "formula with no saved value"),
        (foreign, "no column of this file"),
    ):
        result = run(["import", "experts", str(path)], env)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and len(lines[0]) < 400, result.stderr


# ---------------------------------------------------------------- 10. the keyword filter


def test_f10_q_needs_every_word_and_single_characters_never_match(local) -> None:
    _need(local, "N9560", title="老师培训", description="请老师讲授课程设计。", tags=["能力建设"])
    _need(local, "N9561", title="个案管理流程", description="希望专家指导个案管理。", tags=["个案管理"])
    ids = lambda q: {i["id"] for i in local.get(f"/v1/needs?q={q}&per_page=100").get_json()["items"]}  # noqa: E731
    assert "N9560" not in ids("养老")
    assert "N9561" in ids("个案")
    assert "N9560" in ids("老师")
    assert ids("老") == set()
    assert "N9561" not in ids("个案 养老")  # every word must occur


# ---------------------------------------------------------------- 11. outside the project folder


def test_f11_outside_the_project_folder_is_a_clear_error_that_creates_nothing(trained, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MATCHER_DATA_DIR")}
    env["MATCHER_MODELS_DIR"] = str(trained["models"])
    result = run(["match", "养老服务"], env, cwd=tmp_path)
    assert result.returncode == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert str(tmp_path / "data") in message and "MATCHER_DATA_DIR" in message
    assert list(tmp_path.iterdir()) == []  # no stray instance/matcher.sqlite3
