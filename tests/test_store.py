"""Tests of matcher.store: migrations, seeding, CRUD, search, import/export and feedback, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from matcher.errors import ConflictError, DatabaseUnavailableError, NotFoundError
from matcher.inputs.library import load_libraries
from matcher.store import checks, crud, engagements, kinds, libraries, search, seed, transactions
from matcher.store import io as store_io
from matcher.store.db import _alembic_config, current_revision, engine_for, session_scope, upgrade
from matcher.store.records import FeedbackIn
from matcher.store.schema import Base, Engagement, Expert, Need

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
KINDS = ("organisations", "needs", "experts", "resources", "projects", "decisions")


@pytest.fixture(scope="module")
def files():
    return load_libraries(DATA)


@pytest.fixture
def url(db_url) -> str:
    """A database of each kind, filled with the sample libraries."""
    assert seed.ensure_database(db_url, DATA) is True
    return db_url


def dump(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order: equal dumps = the same database."""
    result = {}
    with engine_for(url).connect() as connection:
        for table in [*Base.metadata.sorted_tables]:
            rows = connection.execute(select(table).order_by(*table.primary_key.columns)).all()
            result[table.name] = [tuple(r) for r in rows]
        result["alembic_version"] = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        connection.rollback()
    return result


def new_expert(id_: str = "E9001", **extra) -> dict:
    record = {
        "id": id_,
        "name": f"测试专家{id_}",
        "affiliation": "河北大学",
        "title": "讲师",
        "specialties": "个案管理；小组工作",
        "bio": "长期从事个案管理研究。",
        "counties": ["雄县"],
        "capacity": 2,
        "available": "是",
        "phone": "13800000000",
        "email": f"{id_.lower()}@example.org",
        "courses": [],
    }
    record.update(extra)
    return record


def new_need(id_: str, org_id: str = "O001", **extra) -> dict:
    record = {
        "id": id_,
        "org_id": org_id,
        "title": "需要个案管理督导",
        "description": "机构新入职社工较多，希望有老师指导个案管理流程和转介。",
        "tags": "个案管理",
        "urgency": "高",
    }
    record.update(extra)
    return record


def write_csv(path: Path, header: list[str], rows: list[list], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------- schema and seeding


def test_migrations_create_the_schema_and_concurrent_seeding_fills_once(db_url, files) -> None:
    upgrade(db_url)
    assert current_revision(db_url) == ScriptDirectory.from_config(_alembic_config(db_url)).get_current_head()
    assert current_revision(db_url) == "0005"  # the migrations of this checkout, the organisation file the newest
    with engine_for(db_url).connect() as connection:
        tables = set(inspect(connection).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    # two "workers" starting at once on the empty database: exactly one fills it
    code = "import sys; from matcher.store.seed import ensure_database; print(ensure_database(sys.argv[1], sys.argv[2]))"
    workers = [
        subprocess.Popen([sys.executable, "-c", code, db_url, str(DATA)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = sorted(w.communicate(timeout=60)[0].strip() for w in workers)
    assert all(w.returncode == 0 for w in workers)
    assert results == ["False", "True"]
    with transactions.transaction(db_url) as session:
        sizes = kinds.counts(session)
    assert {k: sizes[k] for k in KINDS} == {k: len(getattr(files, k)) for k in KINDS}
    assert sizes["tags"] == len(files.taxonomy)
    assert seed.ensure_database(db_url, DATA) is False


def test_seeded_frames_equal_the_files_and_capacity_holds(url, files) -> None:
    started = time.perf_counter()
    with transactions.transaction(url) as session:
        libs = libraries.load_libraries_db(session)
        first_hash = libs.content_hash
        capacities = dict(session.execute(select(Expert.id, Expert.capacity)).all())
        available = dict(session.execute(select(Expert.id, Expert.available)).all())
        engagements = session.scalars(select(Engagement)).all()
    assert time.perf_counter() - started < 3
    for kind in KINDS:
        pd.testing.assert_frame_equal(getattr(libs, kind), getattr(files, kind), obj=kind)
    pd.testing.assert_frame_equal(libs.taxonomy, files.taxonomy.sort_values("code").reset_index(drop=True))
    assert list(libs.engagements.columns) == [
        "id",
        "need_id",
        "target_type",
        "target_id",
        "status",
        "opened_at",
        "closed_at",
    ]
    # the engagements derived from the history give the same loads as the history itself
    pd.testing.assert_series_equal(libs.load().sort_index(), files.load().sort_index())
    open_ = pd.Series([e.target_id for e in engagements if e.target_type == "expert" and e.status == "open"])
    for expert_id, load in open_.value_counts().items():
        assert load <= capacities[expert_id]
        assert available[expert_id]
    closed = [e for e in engagements if e.status != "open"]
    assert closed and all(e.closed_at is not None and e.closed_at >= e.opened_at for e in closed)
    # the content hash follows the revision
    with transactions.transaction(url) as session:
        crud.create_record(session, "experts", new_expert())
    with transactions.transaction(url) as session:
        assert libraries.load_libraries_db(session).content_hash != first_hash


# ---------------------------------------------------------------- CRUD


def test_crud_conflicts_not_found_and_soft_delete(url) -> None:
    with transactions.transaction(url) as session:
        start = transactions.revision(session)
        created = crud.create_record(session, "experts", new_expert())
    assert created["specialties"] == ["个案管理", "小组工作"]
    assert created["available"] is True and created["open_engagements"] == 0
    assert created["updated_at"].endswith("+08:00")
    with transactions.transaction(url) as session:
        assert transactions.revision(session) == start + 1
        assert crud.get_record(session, "experts", "E9001")["name"] == "测试专家E9001"
        with pytest.raises(ConflictError, match="E9001 already exists"):
            crud.create_record(session, "experts", new_expert())
        with pytest.raises(NotFoundError):
            crud.get_record(session, "experts", "E0000")
        with pytest.raises(NotFoundError):
            crud.replace_record(session, "experts", "E0000", new_expert("E0000"))

    # validation: pydantic, taxonomy and foreign keys, every problem named by its field
    with transactions.transaction(url) as session, pytest.raises(checks.RecordError) as caught:
        crud.create_record(
            session, "experts", new_expert("E9002", specialties="个案管理;占星术", capacity=-1, org_id="O999")
        )
    assert {e["field"] for e in caught.value.errors} == {"capacity", "specialties", "org_id"}
    assert all(e["message"].startswith(e["field"]) for e in caught.value.errors)
    with transactions.transaction(url) as session, pytest.raises(checks.RecordError, match="stage"):
        crud.create_record(session, "organisations", {"id": "O900", "name": "x", "stage": "壮年期", "county": "雄县"})
    with transactions.transaction(url) as session, pytest.raises(checks.RecordError, match="nickname"):
        crud.create_record(session, "experts", new_expert("E9003", nickname="x"))
    # a traditional-character tag is stored as its taxonomy label
    with transactions.transaction(url) as session:
        assert crud.create_record(session, "needs", new_need("N9001", tags="個案管理"))["tags"] == ["个案管理"]

    # PUT: full replace; nothing changes (not even updated_at or the revision) when the values are equal
    with transactions.transaction(url) as session:
        before = crud.get_record(session, "experts", "E9001")
        revision = transactions.revision(session)
        same = crud.replace_record(session, "experts", "E9001", {**before})  # read-only fields are ignored
        assert same == before and transactions.revision(session) == revision
        changed = crud.replace_record(session, "experts", "E9001", {"id": "E9001", "name": "新名字"})
    assert changed["name"] == "新名字" and changed["affiliation"] == "" and changed["capacity"] == 1
    assert changed["updated_at"] >= before["updated_at"]
    with transactions.transaction(url) as session, pytest.raises(checks.RecordError, match="differs"):
        crud.replace_record(session, "experts", "E9001", {"id": "E9999", "name": "x"})

    # delete: refused while live records refer to it, and says which
    with transactions.transaction(url) as session:
        busy = session.scalars(
            select(Engagement.target_id).where(Engagement.target_type == "expert", Engagement.status == "open")
        ).first()
        with pytest.raises(ConflictError, match=rf"expert {busy} has \d+ open engagement"):
            crud.delete_record(session, "experts", busy)
        with pytest.raises(ConflictError, match=r"organisation O001 is still referred to by \d+ live needs \(N"):
            crud.delete_record(session, "organisations", "O001")
        crud.delete_record(session, "experts", "E9001")
    with transactions.transaction(url) as session:
        with pytest.raises(NotFoundError):
            crud.get_record(session, "experts", "E9001")
        with pytest.raises(NotFoundError):
            crud.delete_record(session, "experts", "E9001")
        with pytest.raises(ConflictError, match="deleted"):
            crud.create_record(session, "experts", new_expert())
        items, _ = search.list_records(session, "experts", per_page=1000)
        assert "E9001" not in {i["id"] for i in items}
        assert "E9001" not in set(libraries.load_libraries_db(session).experts["id"])
        assert session.get(Expert, "E9001").deleted_at is not None  # kept for the audit trail


# ---------------------------------------------------------------- listing and search


def test_list_filters_pagination_and_free_text(url, files) -> None:
    county = files.needs["org_id"].map(files.organisations.set_index("id")["county"])
    stage = files.needs["org_id"].map(files.organisations.set_index("id")["stage"])
    with transactions.transaction(url) as session:
        items, total = search.list_records(session, "needs", county="雄县", status="open", per_page=1000)
        expected = files.needs.loc[(county == "雄县") & (files.needs["status"] == "open"), "id"]
        assert total == len(expected) and [i["id"] for i in items] == list(expected)
        _, total = search.list_records(session, "needs", stage="初创期", urgency="高")
        assert total == int(((stage == "初创期") & (files.needs["urgency"] == "high")).sum())
        _, total = search.list_records(session, "experts", tag="個案管理")  # normal form: traditional works
        assert total == sum("个案管理" in s for s in files.experts["specialties"])
        _, total = search.list_records(session, "projects", org_id="O031")
        assert total == int((files.projects["org_id"] == "O031").sum())
        _, total = search.list_records(session, "resources", county="安新县")
        assert total == int(files.resources["county"].isin(["安新县", ""]).sum())  # district-wide serve all

        page2, total = search.list_records(session, "experts", page=2, per_page=25)
        assert total == len(files.experts)
        assert [i["id"] for i in page2] == list(files.experts["id"][25:50])
        assert search.list_records(session, "experts", page=99, per_page=25) == ([], total)
        need = search.list_records(session, "needs", per_page=1)[0][0]
        assert need["created_at"].endswith("+08:00") and isinstance(need["tags"], list)

        with pytest.raises(checks.RecordError, match="urgency: not a filter of experts"):
            search.list_records(session, "experts", urgency="high")
        with pytest.raises(checks.RecordError, match="status: must be one of"):
            search.list_records(session, "needs", status="done")

        # free text, with the project's pipeline: a traditional-character query finds simplified text
        hits, total = search.list_records(session, "needs", q="個案管理與轉介", per_page=10)
        assert 0 < total < len(files.needs)
        scores = [h["relevance"] for h in hits]
        assert scores == sorted(scores, reverse=True) and scores[-1] > 0
        assert "个案管理" in hits[0]["title"] + hits[0]["description"] + "".join(hits[0]["tags"])
        hits, _ = search.list_records(session, "experts", q="兒童保護", tag="儿童保护", county="容城县")
        assert hits and all("儿童保护" in h["specialties"] for h in hits)
        assert search.list_records(session, "organisations", q="ZZZQQQ") == ([], 0)


# ---------------------------------------------------------------- import and export


def test_import_created_updated_unchanged_with_chinese_headers(url, tmp_path) -> None:
    header = ["编号", "姓名", "单位", "职称", "专长", "简介", "县区", "容量", "是否可用", "电话", "邮箱"]
    rows = [
        [
            "E9101",
            "林晓",
            "河北大学",
            "副教授",
            "个案管理；专业督导",
            "研究个案管理。",
            "雄县、容城县",
            "3",
            "是",
            "1",
            "a@x.org",
        ],
        ["E9102", "高原", "", "督导", "小组工作", "", "安新县", "2.0", "否", "2", "b@x.org"],
        ["E0001", "程琪", "河北农业大学", "教授", "政策解读", "新简介。", "容城县", "2", "true", "16726681943", ""],
    ]
    path = write_csv(tmp_path / "专家.csv", header, rows, encoding="gb18030")
    with transactions.transaction(url) as session:
        before = crud.get_record(session, "experts", "E0001")
        revision = transactions.revision(session)
    assert str(store_io.import_file("experts", path, url=url)) == "created 2, updated 1, unchanged 0"
    with transactions.transaction(url) as session:
        assert transactions.revision(session) == revision + 1
        new = crud.get_record(session, "experts", "E9102")
        updated = crud.get_record(session, "experts", "E0001")
    assert new["capacity"] == 2 and new["available"] is False and new["counties"] == ["安新县"]
    assert updated["title"] == "教授" and updated["bio"] == "新简介。"
    assert updated["courses"] == before["courses"]  # a column the file does not have keeps its value
    assert updated["updated_at"] > before["updated_at"]
    snapshot = dump(url)
    assert str(store_io.import_file("experts", path, url=url)) == "created 0, updated 0, unchanged 3"
    assert dump(url) == snapshot  # not even updated_at or the revision moved


def test_a_bad_row_at_the_end_imports_nothing(url, tmp_path) -> None:
    header = ["id", "org_id", "title", "description", "tags", "urgency", "created_at"]
    rows = [
        [f"N9{i:03d}", "O001", f"需求{i}", "希望得到个案管理方面的指导。", "个案管理", "low", ""] for i in range(200)
    ]
    rows.append(["N9999", "O999", "最后一行", "描述", "个案管理;占星术", "urgent", "昨天"])
    path = write_csv(tmp_path / "needs.csv", header, rows)
    before = dump(url)
    with pytest.raises(store_io.ImportRejectedError) as caught:
        store_io.import_file("needs", path, url=url)
    problems = {(p.row, p.column): p.message for p in caught.value.problems}
    assert set(problems) == {(201, "urgency"), (201, "created_at"), (201, "org_id"), (201, "tags")}
    assert all(str(p).startswith(f"{path}: row 201, column") for p in caught.value.problems)
    assert "'占星术' is not a tag of the taxonomy" in problems[(201, "tags")]
    assert "there is no organisation with id 'O999'" in problems[(201, "org_id")]
    assert dump(url) == before


def test_an_import_killed_inside_its_transaction_leaves_the_database_as_before(url, tmp_path) -> None:
    header = ["id", "name", "specialties", "counties", "capacity"]
    rows = [[f"E8{i:04d}", f"专家{i}", "个案管理", "雄县", "2"] for i in range(3000)]
    rows += [["E0001", "改名", "政策解读", "雄县", "5"]]  # an update too
    path = write_csv(tmp_path / "experts.csv", header, rows)
    before = dump(url)
    env = {**os.environ, "DATABASE_URL": url, "MATCHER_DATA_DIR": str(DATA)}
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "pausing.py"), "import", "60", "import", "experts", str(path)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "pausing" not in line and time.monotonic() < deadline and process.poll() is None:
            line = process.stderr.readline()
        assert "inside the import transaction" in line, line
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert dump(url) == before
    # the database is not left locked: the same import runs to the end
    assert str(store_io.import_file("experts", path, url=url)) == "created 3000, updated 1, unchanged 0"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".xlsx"])
def test_export_then_import_changes_nothing(url, tmp_path, suffix) -> None:
    with transactions.transaction(url) as session:
        crud.create_record(session, "experts", new_expert("E9201", courses=["社区融入", "小组工作实务"]))
        feedback = FeedbackIn(
            need_id="N0001",
            target_type="resource",
            target_id="R001",
            decision="rejected",
            comment="暂不需要",
            score=0.1234567891,
        )
        engagements.record_feedback(session, feedback)
    kinds = KINDS if suffix == ".csv" else ("experts", "decisions")
    before = dump(url)
    for kind in kinds:
        path = tmp_path / f"{kind}{suffix}"
        written = store_io.export_file(kind, path, url=url)
        report = store_io.import_file(kind, path, url=url)
        assert (report.created, report.updated, report.unchanged) == (0, 0, written), kind
    after = dump(url)
    # nothing changed but the audit log: the experts file carries contacts, so its export is a view of them
    audited = [(row[4], row[5]) for row in after.pop("audit_log")[len(before["audit_log"]) :]]
    assert audited == [("view_contacts", "experts")]
    before.pop("audit_log")
    assert after == before
    if suffix == ".csv":
        raw = (tmp_path / "experts.csv").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        header = raw.decode("utf-8-sig").splitlines()[0]
        assert header == (DATA / "experts.csv").read_text(encoding="utf-8").splitlines()[0]
        # the exported files are a library folder load_libraries reads
        for name in ("taxonomy",):
            (tmp_path / f"{name}.csv").write_bytes((DATA / f"{name}.csv").read_bytes())
        assert len(load_libraries(tmp_path).experts) == len(load_libraries(DATA).experts) + 1
    if suffix == ".jsonl":
        first = json.loads((tmp_path / "experts.jsonl").read_text(encoding="utf-8").splitlines()[0])
        assert isinstance(first["specialties"], list) and isinstance(first["capacity"], int)


# ---------------------------------------------------------------- feedback


def _free_expert(session, *, capacity_at_least: int = 1) -> Expert:
    loads = dict(
        session.execute(
            select(Engagement.target_id, text("count(*)"))
            .where(Engagement.target_type == "expert", Engagement.status == "open")
            .group_by(Engagement.target_id)
        ).all()
    )
    experts = session.scalars(
        select(Expert).where(Expert.available.is_(True), Expert.org_id.is_(None)).order_by(Expert.id)
    )
    return next(e for e in experts if loads.get(e.id, 0) == 0 and e.capacity >= capacity_at_least)


def test_feedback_accept_complete_cancel_reject(url) -> None:
    def feedback(**fields) -> dict:
        with transactions.transaction(url) as session:
            return engagements.record_feedback(session, FeedbackIn.model_validate(fields))

    with transactions.transaction(url) as session:
        expert = _free_expert(session, capacity_at_least=2)
        expert_id, capacity = expert.id, expert.capacity
        needs = session.scalars(
            select(Need.id).where(Need.status == "open").order_by(Need.id).limit(capacity + 2)
        ).all()
        unavailable = session.scalars(select(Expert.id).where(Expert.available.is_(False))).first()
    need = needs[0]
    accepted = feedback(
        need_id=need,
        target_type="expert",
        target_id=expert_id,
        decision="accepted",
        rating=4,
        rank=1,
        score=0.8,
        model_version="20261201T000000Z",  # a version name as `matcher models` writes them
    )
    decision, engagement = accepted["decision"], accepted["engagement"]
    assert decision["id"].startswith("D2") and decision["decided_at"].endswith("+08:00")
    assert engagement["status"] == "open" and engagement["closed_at"] is None
    with transactions.transaction(url) as session:
        assert crud.get_record(session, "needs", need)["status"] == "matched"
        stored = session.execute(
            text("SELECT decided_at FROM decisions WHERE id = :id"), {"id": decision["id"]}
        ).scalar()
        items, total = engagements.list_engagements(session, need_id=need)
        assert total == 1 and items[0]["target_name"] and items[0]["need_title"]
        assert engagements.list_engagements(session, expert_id=expert_id, status="open")[1] == 1
    # stored in UTC: the raw value (naive on SQLite, aware on PostgreSQL) is the UTC time
    stored = stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)
    assert abs(stored.replace(tzinfo=None) - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=1)
    shown = datetime.fromisoformat(decision["decided_at"])
    assert shown.utcoffset() == timedelta(hours=8) and abs(shown - datetime.now(UTC)) < timedelta(minutes=1)

    with pytest.raises(ConflictError, match=f"already engaged on need {need}"):
        feedback(need_id=need, target_type="expert", target_id=expert_id, decision="accepted")
    done = feedback(need_id=need, target_type="expert", target_id=expert_id, decision="completed", rating=5)
    assert done["engagement"]["status"] == "completed" and done["engagement"]["closed_at"].endswith("+08:00")
    with pytest.raises(ConflictError, match="no open engagement"):
        feedback(need_id=need, target_type="expert", target_id=expert_id, decision="completed")
    with transactions.transaction(url) as session:
        assert crud.get_record(session, "needs", need)["status"] == "closed"

    # cancel: the need goes back to open when nothing else was engaged
    feedback(need_id=needs[1], target_type="project", target_id="P001", decision="accepted")
    cancelled = feedback(need_id=needs[1], target_type="project", target_id="P001", decision="cancelled")
    assert cancelled["engagement"]["status"] == "cancelled"
    with transactions.transaction(url) as session:
        assert crud.get_record(session, "needs", needs[1])["status"] == "open"
        revision = transactions.revision(session)
    rejected = feedback(need_id=needs[1], target_type="resource", target_id="R001", decision="rejected")
    assert rejected["engagement"] is None
    with transactions.transaction(url) as session:
        assert transactions.revision(session) == revision + 1
        assert crud.get_record(session, "decisions", rejected["decision"]["id"])["decision"] == "rejected"

    # capacity: fill the expert, then one more is refused with the numbers
    for other in needs[1 : capacity + 1]:
        feedback(need_id=other, target_type="expert", target_id=expert_id, decision="accepted")
    with pytest.raises(ConflictError, match=rf"expert {expert_id} is fully booked \({capacity} of {capacity}\)"):
        feedback(need_id=needs[capacity + 1], target_type="expert", target_id=expert_id, decision="accepted")
    with pytest.raises(ConflictError, match="not available"):
        feedback(need_id=needs[0], target_type="expert", target_id=unavailable, decision="accepted")
    with pytest.raises(NotFoundError):
        feedback(need_id="N0000", target_type="expert", target_id=expert_id, decision="accepted")
    with pytest.raises(NotFoundError):
        feedback(need_id=needs[0], target_type="resource", target_id="R999", decision="accepted")
    with transactions.transaction(url) as session:
        crud.create_record(session, "resources", {"id": "R900", "type": "场地", "name": "临时场地"})
        crud.delete_record(session, "resources", "R900")
    with pytest.raises(ConflictError, match="resource R900 was deleted"):
        feedback(need_id=needs[0], target_type="resource", target_id="R900", decision="accepted")
    # closing through the engagement
    with transactions.transaction(url) as session:
        open_id = engagements.list_engagements(session, expert_id=expert_id, status="open")[0][0]["id"]
        assert engagements.update_engagement_status(session, open_id, "completed", rating=3)["status"] == "completed"


def test_eight_concurrent_accepts_of_an_expert_of_capacity_three(url) -> None:
    with transactions.transaction(url) as session:
        crud.create_record(session, "experts", new_expert("E9301", capacity=3))
        for i in range(8):
            crud.create_record(session, "needs", new_need(f"N93{i:02d}", org_id=f"O{i + 10:03d}"))
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def accept(i: int) -> None:
        barrier.wait()
        try:
            with transactions.transaction(url) as session:
                engagements.record_feedback(
                    session,
                    FeedbackIn(need_id=f"N93{i:02d}", target_type="expert", target_id="E9301", decision="accepted"),
                )
            outcomes.append("accepted")
        except ConflictError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=accept, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count("accepted") == 3
    assert sorted(set(outcomes) - {"accepted"}) == ["expert E9301 is fully booked (3 of 3)"]
    with transactions.transaction(url) as session:
        assert engagements.list_engagements(session, expert_id="E9301", status="open")[1] == 3
        assert crud.get_record(session, "experts", "E9301")["open_engagements"] == 3


def test_timestamps_are_stored_in_utc_and_shown_in_beijing_time(url) -> None:
    with transactions.transaction(url) as session:
        naive = crud.create_record(session, "needs", new_need("N9401", created_at="2024-03-05 10:00"))
        zulu = crud.create_record(session, "needs", new_need("N9402", created_at="2024-03-05T10:00:00Z"))
        raw = dict(session.execute(text("SELECT id, created_at FROM needs WHERE id IN ('N9401', 'N9402')")).all())
    assert naive["created_at"] == "2024-03-05T10:00:00+08:00"
    assert zulu["created_at"] == "2024-03-05T18:00:00+08:00"
    values = {k: v if isinstance(v, datetime) else datetime.fromisoformat(v) for k, v in raw.items()}
    assert values["N9401"].replace(tzinfo=None) == datetime(2024, 3, 5, 2, 0)
    assert values["N9402"].replace(tzinfo=None) == datetime(2024, 3, 5, 10, 0)


# ---------------------------------------------------------------- command line and errors


def test_cli_db_import_export(db_url, tmp_path) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "MATCHER_DATA_DIR": str(DATA)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "matcher.cli", *args], env=env, capture_output=True, text=True, timeout=120
        )

    first = run("db", "init")
    assert first.returncode == 0, first.stderr
    assert "filled from" in first.stdout and "320 experts" in first.stdout
    assert "already holds data" in run("db", "init").stdout
    assert "nothing to do" in run("db", "upgrade").stdout
    out = tmp_path / "experts.xlsx"
    assert run("export", "experts", str(out)).stdout.strip() == f"exported 320 experts to {out}"
    assert run("import", "experts", str(out)).stdout.strip() == "created 0, updated 0, unchanged 320"
    bad = write_csv(tmp_path / "bad.csv", ["id", "name", "capacity"], [["E9501", "甲", "2"], ["E9502", "", "many"]])
    result = run("import", "experts", str(bad))
    assert result.returncode == 2 and result.stdout == ""
    assert "nothing was imported" in result.stderr
    assert f"{bad}: row 2, column 'name': must not be empty" in result.stderr
    assert f"{bad}: row 2, column 'capacity':" in result.stderr
    with session_scope(db_url) as session:
        assert session.get(Expert, "E9501") is None


def test_an_unreachable_database_is_a_clear_error() -> None:
    url = "postgresql+psycopg://matcher:s3cret@127.0.0.1:1/matcher?connect_timeout=2"
    with pytest.raises(DatabaseUnavailableError) as caught:
        seed.ensure_database(url, DATA)
    assert "127.0.0.1:1" in str(caught.value) and "s3cret" not in str(caught.value)
    with pytest.raises(DatabaseUnavailableError), transactions.transaction(url) as session:
        transactions.revision(session)
