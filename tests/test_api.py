"""The HTTP API through Flask's test client: results, reasons, and problem+json errors."""

from __future__ import annotations

import shutil

import pytest

from matcher.matching import persist

PROBLEM = "application/problem+json"


def test_health(client, trained) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["model_version"] == trained["version"]


def test_match_free_text(client, trained) -> None:
    response = client.post(
        "/v1/match", json={"text": "我们社工站想做征迁安置社区的居民融入，老人多，邻里不熟悉", "k": 3}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_version"] == trained["version"]
    assert set(body["results"]) == {"expert", "resource", "project"}
    for results in body["results"].values():
        assert len(results) in (1, 2, 3)
        scores = [r["score"] for r in results]
        assert scores == sorted(scores, reverse=True)
        for result in results:
            assert set(result) >= {"id", "name", "score", "reasons"}
            assert set(result["reasons"]) >= {"terms", "tags", "region"}
    text = body["need"]["text"]
    for term in body["results"]["expert"][0]["reasons"]["terms"]:
        for start, end in term["spans"]:
            assert text[start:end] == term["term"]


def test_match_stored_need_uses_its_tags_county_and_organisation(client) -> None:
    body = client.post("/v1/match", json={"need_id": "N0001", "targets": ["expert"], "k": 10}).get_json()
    assert body["need"]["id"] == "N0001" and body["need"]["tags"] and body["need"]["counties"]
    assert set(body["results"]) == {"expert"}
    org = body["need"]["org_id"]
    libs = client.application.extensions["matcher"].libraries()
    affiliated = set(libs.experts.loc[libs.experts["org_id"] == org, "id"])
    assert not affiliated & {r["id"] for r in body["results"]["expert"]}


def test_county_filter(client) -> None:
    body = client.post(
        "/v1/match", json={"text": "个案管理培训", "targets": ["expert"], "k": 20, "filters": {"county": "安新县"}}
    ).get_json()
    libs = client.application.extensions["matcher"].libraries()
    counties = libs.experts.set_index("id")["counties"]
    assert body["results"]["expert"]
    for result in body["results"]["expert"]:
        assert "安新县" in counties[result["id"]] or not counties[result["id"]]
        # the free-text need is taken to be in the county it is filtered to
        assert result["reasons"]["region"] == {"match": bool(counties[result["id"]]), "counties": ["安新县"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"text": "个案管理", "need_id": "N0001"}, "body"),
        ({"text": "个案管理", "colour": "red"}, "colour"),
        ({"text": 42}, "text"),
        ({"text": ""}, "text"),
        ({"text": "x" * 5001}, "text"),
        ({"text": "个案管理", "k": 0}, "k"),
        ({"text": "个案管理", "k": 51}, "k"),
        ({"text": "个案管理", "k": "5"}, "k"),
        ({"text": "个案管理", "k": True}, "k"),
        ({"text": "个案管理", "targets": ["expert", "venue"]}, "targets.1"),
        ({"text": "个案管理", "targets": []}, "targets"),
        ({"text": "个案管理", "filters": {"county": 3}}, "filters.county"),
        ({"text": "个案管理", "filters": {"town": "雄县"}}, "filters.town"),
    ],
)
def test_invalid_requests_are_400_naming_the_field(client, body, field) -> None:
    response = client.post("/v1/match", json=body)
    assert response.status_code == 400
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["status"] == 400 and problem["title"] and problem["type"]
    assert problem["detail"].startswith(f"{field}:")


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_malformed_json_is_400(client, data) -> None:
    response = client.post("/v1/match", data=data, content_type="application/json")
    assert response.status_code == 400 and response.mimetype == PROBLEM


def test_not_json_content_type_is_415(client) -> None:
    response = client.post("/v1/match", data="text=个案管理", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and response.mimetype == PROBLEM


def test_unknown_need_is_404(client) -> None:
    response = client.post("/v1/match", json={"need_id": "N9999999"})
    assert response.status_code == 404 and response.mimetype == PROBLEM
    assert "N9999999" in response.get_json()["detail"]


def test_unknown_route_and_method_are_problems(client) -> None:
    assert client.get("/v1/nothing").mimetype == PROBLEM
    response = client.get("/v1/match")
    assert response.status_code == 405 and response.mimetype == PROBLEM


def test_oversized_body_is_413(client) -> None:
    response = client.post("/v1/match", data=b'{"text": "' + b"a" * 70000 + b'"}', content_type="application/json")
    assert response.status_code == 413 and response.mimetype == PROBLEM


def test_page_is_served(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "需求匹配" in page.get_data(as_text=True)
    assert client.get("/static/match.js").status_code == 200


def test_server_keeps_its_model_when_the_new_active_one_is_corrupt(make_app, models_copy, trained, toy_matcher) -> None:
    client = make_app(MODELS_DIR=models_copy).test_client()
    assert client.post("/v1/match", json={"text": "个案管理"}).get_json()["model_version"] == trained["version"]
    bad = persist.save(toy_matcher, root=models_copy)  # activated
    (models_copy / bad / "model.joblib").write_bytes(b"tampered")
    response = client.post("/v1/match", json={"text": "个案管理"})
    assert response.status_code == 200 and response.get_json()["model_version"] == trained["version"]
    assert client.get("/health").get_json()["failed_version"] == bad
    good = persist.save(toy_matcher, root=models_copy)  # a good version is picked up without restart
    assert client.post("/v1/match", json={"text": "个案管理"}).get_json()["model_version"] == good


def test_no_model_is_503_not_500(make_app, tmp_path) -> None:
    app = make_app(MODELS_DIR=tmp_path)
    response = app.test_client().post("/v1/match", json={"text": "个案管理"})
    assert response.status_code == 503 and "matcher train" in response.get_json()["detail"]
    assert app.test_client().get("/health").status_code == 503


def test_an_empty_database_with_a_broken_library_is_503(make_app, trained, tmp_path) -> None:
    data = tmp_path / "data"
    shutil.copytree(trained["data"], data)
    (data / "needs.csv").unlink()
    app = make_app(DATA_DIR=data, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    response = app.test_client().post("/v1/match", json={"need_id": "N0001"})
    assert response.status_code == 503 and "needs.csv" in response.get_json()["detail"]
