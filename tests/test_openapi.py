"""The OpenAPI contract: the document, schemathesis against it through the WSGI app, and the limits."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.access_support import bearer, copy_database, make_keys

PROBLEM = "application/problem+json"
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
ADMIN_PATHS = ("/v1/admin/", "/v1/models")
EXAMPLES = 12


@pytest.fixture(scope="module")
def contract_app(trained, tmp_path_factory):
    """An app over a private copy of the database and models, with one key per role."""
    import shutil

    from matcher.web import create_app

    root = tmp_path_factory.mktemp("contract")
    url = copy_database(trained["database"], root / "contract.sqlite3")
    tokens = make_keys(url)
    shutil.copytree(trained["models"], root / "models")
    app = create_app(
        {
            "TESTING": True,
            "MODELS_DIR": str(root / "models"),
            "DATA_DIR": str(trained["data"]),
            "DATABASE_URL": url,
        }
    )
    return app, tokens


def _runner(strategy, headers: dict[str, str]):
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    return run


def test_schemathesis_finds_no_server_error_and_no_broken_response(contract_app) -> None:
    """Every operation, with paths, queries and bodies generated from /openapi.json (bounded examples).

    Requests go through the WSGI app, not the network. Admin routes are called with the admin's key,
    the others with the coordinator's. (schemathesis' own pytest plugin does not run on pytest 9 yet,
    hence the loop.)
    """
    app, tokens = contract_app
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        headers = bearer(tokens["admin" if operation.path.startswith(ADMIN_PATHS) else "coordinator"])
        run = _runner(operation.as_strategy(schemathesis.GenerationMode.POSITIVE), headers)

        try:
            run()
        except Exception as error:  # one operation's failure must not hide the others'
            failures.append(f"{operation.method.upper()} {operation.path}: {str(error)[:1500]}")
    assert operations >= 30
    assert failures == [], "\n\n".join(failures)


def test_the_document(client) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    match = doc["paths"]["/v1/match"]["post"]
    assert match["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MatchRequest"
    }
    assert match["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("MatchResponse")
    assert match["responses"]["default"]["content"][PROBLEM]["schema"]["$ref"].endswith("Problem")
    assert match["x-roles"] == ["coordinator", "analyst"]
    request = doc["components"]["schemas"]["MatchRequest"]
    assert request["properties"]["k"]["maximum"] == 50 and request["additionalProperties"] is False
    expert = doc["components"]["schemas"]["ExpertItem"]
    assert {"phone", "email", "open_engagements", "updated_at"} <= set(expert["properties"])
    params = {p["name"]: p for p in doc["paths"]["/v1/experts"]["get"]["parameters"]}
    assert params["per_page"]["schema"]["maximum"] == 100 and not params["q"]["required"]
    assert doc["paths"]["/health"]["get"]["security"] == []


def test_documented_routes_are_the_routes(client) -> None:
    doc = client.get("/openapi.json").get_json()
    app = client.application
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<record_id>", "{record_id}").replace("<need_id>", "{need_id}")
        path = path.replace("<key_id>", "{key_id}").replace(
            "<any(organisations, needs, experts, resources, projects, events, attendees, stages, milestones):kind>",
            "experts",
        )
        path = path.replace("<event_id>", "{event_id}").replace("<org_id>", "{org_id}")
        path = path.replace("<int:engagement_id>", "{engagement_id}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"][path], (method, path)


# ---------------------------------------------------------------- limits: 413 / 400, never a crash


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "field"),
    [
        ("post", "/v1/match", {"data": b'{"text": "' + b"a" * 70000 + b'"}'}, 413, None),
        ("post", "/v1/experts", {"data": b'{"id": "' + b"a" * 70000 + b'"}'}, 413, None),
        ("post", "/v1/match", {"data": b"[" * 30000 + b"]" * 30000}, 400, None),
        ("post", "/v1/match", {"data": b'{"text": ' + b'{"a": ' * 40 + b"1" + b"}" * 41}, 400, "text"),
        ("post", "/v1/match", {"json": {"text": "个案\x00管理"}}, 400, "text"),
        ("post", "/v1/match", {"data": b'{"text": "\\ud800"}'}, 400, "text"),
        ("post", "/v1/match", {"json": {"text": "个案管理", "k": 10**30}}, 400, "k"),
        ("post", "/v1/match", {"json": {"text": "个案管理", "tags": ["个案管理"] * 21}}, 400, "tags"),
        (
            "post",
            "/v1/experts",
            {"json": {"id": "E1", "name": "x", "specialties": [f"类别{i}" for i in range(11)]}},
            400,
            "specialties",
        ),
        ("get", "/v1/needs?page=100000000000000000000", {}, 400, "page"),
        ("get", "/v1/engagements?page=99999999999", {}, 400, "page"),
        ("get", "/v1/needs?q=" + "个" * 501, {}, 400, "q"),
        ("get", "/v1/needs/N0001/matches?k=51", {}, 400, "k"),
        ("get", "/v1/needs/N%00/matches", {}, 400, "need_id"),
        ("get", "/v1/experts/E%00", {}, 400, "record_id"),
        ("get", "/v1/needs?tag=%00", {}, 400, "tag"),
        (
            "post",
            "/v1/needs",
            {
                "json": {
                    "id": "N9",
                    "org_id": "O001",
                    "title": "t",
                    "description": "d",
                    "created_at": "0001-01-01T00:00:00+05:00",
                }
            },
            400,
            "created_at",
        ),
    ],
)
def test_oversized_and_hostile_input_is_a_problem_not_a_crash(client, method, path, kwargs, status, field) -> None:
    if "data" in kwargs:
        kwargs = {**kwargs, "content_type": "application/json"}
    response = client.open(path, method=method.upper(), **kwargs)
    assert response.status_code == status and response.mimetype == PROBLEM, response.get_data(as_text=True)[:300]
    if field:
        assert response.get_json()["detail"].startswith(field), response.get_json()["detail"]
