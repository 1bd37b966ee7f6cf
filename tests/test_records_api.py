"""The records, feedback and engagements API over both databases, and matching that follows edits."""

from __future__ import annotations

import contextlib
import csv
import socket
import threading

import pytest

from tests.conftest import ROOT

PROBLEM = "application/problem+json"
EXPERT = {
    "id": "E9001",
    "name": "孙悦",
    "affiliation": "河北大学政法学院",
    "title": "副教授",
    "specialties": ["个案管理"],
    "bio": "专注于跨部门转介与多重困境家庭的个案管理，指导过十余家社工机构建立转介台账。",
    "counties": ["雄县"],
    "capacity": 3,
    "available": True,
}


@pytest.fixture
def client(make_app, db_url):
    """A client of an app over a fresh database of each kind (filled from data/ on first use)."""
    return make_app(DATABASE_URL=db_url).test_client()


def ids(body: dict, target_type: str = "expert") -> list[str]:
    return [r["id"] for r in body["results"][target_type]]


def test_list_with_pagination_and_filters(client) -> None:
    page = client.get("/v1/needs?page=2&per_page=7").get_json()
    assert set(page) == {"items", "total", "page", "per_page"}
    assert page["page"] == 2 and page["per_page"] == 7 and len(page["items"]) == 7 and page["total"] >= 300
    tagged = client.get("/v1/needs?tag=个案管理&county=容城县&per_page=100").get_json()
    assert tagged["total"] > 0
    assert all("个案管理" in item["tags"] for item in tagged["items"])
    stage = client.get("/v1/organisations?stage=初创期&per_page=100").get_json()
    assert stage["total"] > 0 and all(o["stage"] == "初创期" for o in stage["items"])
    urgent = client.get("/v1/needs?status=open&urgency=high").get_json()
    assert all(n["status"] == "open" and n["urgency"] == "high" for n in urgent["items"])


def test_free_text_query_uses_the_chinese_pipeline(client) -> None:
    simplified = client.get("/v1/experts?q=个案管理&per_page=5").get_json()
    traditional = client.get("/v1/experts?q=個案管理&per_page=5").get_json()
    assert simplified["total"] > 0
    assert [e["id"] for e in traditional["items"]] == [e["id"] for e in simplified["items"]]


@pytest.mark.parametrize(
    ("query", "field"), [("page=0", "page"), ("per_page=101", "per_page"), ("colour=red", "colour")]
)
def test_bad_list_queries_are_400(client, query, field) -> None:
    response = client.get(f"/v1/needs?{query}")
    assert response.status_code == 400 and response.mimetype == PROBLEM
    assert response.get_json()["detail"].startswith(field)


def test_create_read_replace_delete(client) -> None:
    created = client.post("/v1/experts", json=EXPERT)
    assert created.status_code == 201, created.get_json()
    assert client.post("/v1/experts", json=EXPERT).status_code == 409
    record = client.get("/v1/experts/E9001").get_json()
    assert record["name"] == "孙悦" and record["capacity"] == 3
    replaced = client.put("/v1/experts/E9001", json={**EXPERT, "capacity": 4})
    assert replaced.status_code == 200 and replaced.get_json()["capacity"] == 4
    mismatch = client.put("/v1/experts/E9001", json={**EXPERT, "id": "E9002"})
    assert mismatch.status_code == 400
    assert client.delete("/v1/experts/E9001").status_code == 204
    assert client.get("/v1/experts/E9001").status_code == 404
    assert client.delete("/v1/experts/E9001").status_code == 404


def test_a_need_created_without_an_id_gets_the_next_number(client) -> None:
    with (ROOT / "data" / "needs.csv").open(encoding="utf-8") as file:  # what the database was filled from
        numbers = [int(row["id"][1:]) for row in csv.DictReader(file)]
    need = {"org_id": "O004", "title": "个案管理转介流程", "description": "想请老师指导个案管理和转介流程", "tags": []}
    first = client.post("/v1/needs", json=need)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["id"] == f"N{max(numbers) + 1:04d}"
    assert client.delete(f"/v1/needs/{first.get_json()['id']}").status_code == 204
    second = client.post("/v1/needs", json={**need, "id": None}).get_json()  # a deleted need's number is not reused
    assert second["id"] == f"N{max(numbers) + 2:04d}" and second["org_id"] == "O004" and second["tags"] == []
    chosen = client.post("/v1/needs", json={**need, "id": "N-given"})
    assert chosen.status_code == 201 and chosen.get_json()["id"] == "N-given"
    assert client.post("/v1/needs", json={**need, "id": "N-given"}).status_code == 409
    missing = client.post("/v1/needs", json={"title": "没有机构"})
    assert missing.status_code == 400
    assert {e["field"] for e in missing.get_json()["errors"]} == {"org_id", "description"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"capacity": -1}, "capacity"),
        ({"specialties": ["不存在的类别"]}, "specialties"),
        ({"org_id": "O999"}, "org_id"),
        ({"name": ""}, "name"),
        ({"shoe_size": 42}, "shoe_size"),
    ],
)
def test_invalid_records_are_400_naming_the_field(client, change, field) -> None:
    response = client.post("/v1/experts", json={**EXPERT, **change})
    assert response.status_code == 400 and response.mimetype == PROBLEM
    body = response.get_json()
    assert field in body["detail"] and any(e["field"] == field for e in body["errors"])


def test_not_json_bodies_are_400(client) -> None:
    response = client.post("/v1/experts", data="x", content_type="text/plain")
    assert response.status_code == 400 and response.mimetype == PROBLEM


def test_a_new_expert_is_matchable_at_once_and_a_deleted_one_never(client) -> None:
    text = "我们想建立跨部门转介机制，处理多重困境家庭的个案管理"
    before = client.post("/v1/match", json={"text": text, "targets": ["expert"], "k": 5}).get_json()
    assert "E9001" not in ids(before)
    assert client.post("/v1/experts", json=EXPERT).status_code == 201
    after = client.post("/v1/match", json={"text": text, "targets": ["expert"], "k": 5}).get_json()
    assert ids(after)[0] == "E9001"
    assert after["model_version"] == before["model_version"]  # no retraining
    client.put("/v1/experts/E9001", json={**EXPERT, "available": False})
    assert "E9001" not in ids(client.post("/v1/match", json={"text": text, "targets": ["expert"], "k": 5}).get_json())
    client.put("/v1/experts/E9001", json=EXPERT)
    client.delete("/v1/experts/E9001")
    assert "E9001" not in ids(client.post("/v1/match", json={"text": text, "targets": ["expert"], "k": 5}).get_json())


def test_feedback_opens_engagements_and_a_fully_booked_expert_is_not_recommended(client) -> None:
    assert client.post("/v1/experts", json={**EXPERT, "capacity": 2}).status_code == 201
    listed = [n["id"] for n in client.get("/v1/needs?tag=个案管理&status=open&per_page=50").get_json()["items"]]
    # open case-management needs for which the new expert is recommended while free
    needs = [n for n in listed if "E9001" in ids(client.get(f"/v1/needs/{n}/matches?k=50&targets=expert").get_json())]
    own = {client.get(f"/v1/needs/{n}").get_json()["org_id"] for n in needs}
    assert len(needs) >= 3 and None not in own
    for need_id in needs[:2]:
        response = client.post(
            "/v1/feedback",
            json={
                "need_id": need_id,
                "target_type": "expert",
                "target_id": "E9001",
                "decision": "accepted",
                "model_version": "20261201T000000Z",  # a version name as `matcher models` writes them
                "rank": 1,
                "score": 0.5,
            },
        )
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["engagement"]["status"] == "open"
    third = client.post(
        "/v1/feedback",
        json={"need_id": needs[2], "target_type": "expert", "target_id": "E9001", "decision": "accepted"},
    )
    assert third.status_code == 409 and "fully booked" in third.get_json()["detail"]
    matches = client.get(f"/v1/needs/{needs[2]}/matches?k=50&targets=expert").get_json()
    assert "E9001" not in ids(matches)
    engagements = client.get("/v1/engagements?expert_id=E9001").get_json()
    assert engagements["total"] == 2 and {e["need_id"] for e in engagements["items"]} == set(needs[:2])
    by_need = client.get(f"/v1/engagements?need_id={needs[0]}").get_json()
    assert any(e["target_id"] == "E9001" for e in by_need["items"])
    done = client.post(
        "/v1/feedback",
        json={"need_id": needs[0], "target_type": "expert", "target_id": "E9001", "decision": "completed", "rating": 5},
    )
    assert done.status_code == 201 and done.get_json()["engagement"]["status"] == "completed"
    assert "E9001" in ids(client.get(f"/v1/needs/{needs[2]}/matches?k=50&targets=expert").get_json())


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"need_id": "N0001", "target_type": "expert", "target_id": "E0001", "decision": "maybe"}, 400),
        ({"need_id": "N0001", "target_type": "expert", "target_id": "E0001", "decision": "rejected", "rating": 6}, 400),
        ({"need_id": "N0001", "target_type": "venue", "target_id": "E0001", "decision": "rejected"}, 400),
        ({"need_id": "N9999", "target_type": "expert", "target_id": "E0001", "decision": "rejected"}, 404),
        ({"need_id": "N0001", "target_type": "expert", "target_id": "E0001", "decision": "completed"}, 409),
    ],
)
def test_feedback_errors(client, body, status) -> None:
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == status and response.mimetype == PROBLEM, response.get_json()


def test_need_matches_equal_post_match(client) -> None:
    get = client.get("/v1/needs/N0005/matches?k=4&targets=expert,project").get_json()
    post = client.post("/v1/match", json={"need_id": "N0005", "k": 4, "targets": ["expert", "project"]}).get_json()
    assert get == post
    assert client.get("/v1/needs/N9999/matches").status_code == 404


def test_engagements_by_organisation(client) -> None:
    body = client.get("/v1/engagements?per_page=100").get_json()
    assert body["total"] > 0
    org = client.get(f"/v1/needs/{body['items'][0]['need_id']}").get_json()["org_id"]
    mine = client.get(f"/v1/engagements?org_id={org}&per_page=100").get_json()
    assert mine["total"] > 0
    for engagement in mine["items"]:
        assert client.get(f"/v1/needs/{engagement['need_id']}").get_json()["org_id"] == org


# ---------------------------------------------------------------- the database going away and coming back
class Proxy:
    """A loopback TCP forwarder that can be switched off and on, to cut a database connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.connections.clear()

    def restore(self) -> None:
        self.open = True


def test_database_down_is_503_and_the_service_recovers(make_app, postgres_schema_url) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_schema_url())
    proxy = Proxy((url.host, url.port or 5432))
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    client = make_app(DATABASE_URL=proxied, DATA_DIR=ROOT / "data").test_client()
    assert client.get("/v1/experts?per_page=1").status_code == 200
    assert client.post("/v1/match", json={"need_id": "N0001"}).status_code == 200
    proxy.cut()
    for path in ("/v1/experts?per_page=1", "/v1/needs/N0001"):
        response = client.get(path)
        assert response.status_code == 503 and response.mimetype == PROBLEM
        assert "password" not in response.get_json()["detail"]
    assert client.post("/v1/match", json={"need_id": "N0001"}).status_code == 503
    proxy.restore()
    assert client.get("/v1/experts?per_page=1").status_code == 200
    assert client.post("/v1/match", json={"need_id": "N0001"}).status_code == 200


def test_personal_data_cannot_be_searched_for(client) -> None:
    bio = "联系方式13812345678，身份证130629198503150012，专注个案管理。"
    assert client.post("/v1/experts", json={**EXPERT, "bio": bio}).status_code == 201
    assert client.get("/v1/experts?q=个案管理 转介&per_page=100").get_json()["total"] > 0
    for probe in ("13812345678", "130629198503150012"):
        assert client.get(f"/v1/experts?q={probe}").get_json()["total"] == 0, probe
    partial = client.get("/v1/experts?q=1381234&per_page=100").get_json()["items"]  # digits match years, counts…
    assert "E9001" not in [e["id"] for e in partial]  # …but never the redacted phone number
