"""Keys, roles, the page's session and CSRF, the local coordinator, contacts and the audit log."""

from __future__ import annotations

import hashlib

import pytest
from click.testing import CliRunner

from matcher.roles import KeyRing, parse_env_keys
from tests.access_support import ROLES, bearer, copy_database, make_keys

PROBLEM = "application/problem+json"
KINDS = ("organisations", "needs", "experts", "resources", "projects", "events", "attendees", "stages", "milestones")
READERS = {"coordinator", "analyst"}
#: Who may call each route (the issue's matrix); "public" routes need no key.
MATRIX: dict[tuple[str, str], set[str] | str] = {
    ("get", "/"): "public",
    ("get", "/health"): "public",
    ("get", "/openapi.json"): "public",
    ("get", "/session"): "public",
    ("post", "/session"): "public",
    ("delete", "/session"): "public",
    ("get", "/metrics"): {"coordinator", "analyst", "admin"},
    ("post", "/v1/match"): READERS,
    ("get", "/v1/needs/{need_id}/matches"): READERS,
    ("get", "/v1/needs/{need_id}/matches.xlsx"): READERS,
    ("post", "/v1/match/export"): READERS,
    ("get", "/v1/overview"): READERS,
    ("post", "/v1/feedback"): {"coordinator"},
    ("get", "/v1/engagements"): READERS,
    ("get", "/v1/models"): {"analyst", "admin"},
    ("post", "/v1/admin/model/activate"): {"admin"},
    ("post", "/v1/admin/model/rollback"): {"admin"},
    ("get", "/v1/admin/keys"): {"admin"},
    ("post", "/v1/admin/keys"): {"admin"},
    ("delete", "/v1/admin/keys/{key_id}"): {"admin"},
    ("get", "/v1/admin/audit"): {"admin"},
    ("post", "/v1/events/plan"): {"coordinator"},
    ("get", "/v1/events/{event_id}/signin.xlsx"): READERS,
    ("get", "/v1/organisations/{org_id}/file"): READERS,
    ("get", "/v1/organisations/{org_id}/file.xlsx"): READERS,
    ("put", "/v1/engagements/{engagement_id}/outcome"): {"coordinator"},
    ("get", "/v1/report"): READERS,
    ("get", "/v1/report.xlsx"): READERS,
    **{("get", f"/v1/{kind}"): READERS for kind in KINDS},
    **{("get", f"/v1/{kind}/{{record_id}}"): READERS for kind in KINDS},
    **{("post", f"/v1/{kind}"): {"coordinator"} for kind in KINDS},
    **{("put", f"/v1/{kind}/{{record_id}}"): {"coordinator"} for kind in KINDS},
    **{("delete", f"/v1/{kind}/{{record_id}}"): {"coordinator"} for kind in KINDS},
}


@pytest.fixture
def keyed(make_app, trained, models_copy, tmp_path):
    """An app over a copy of the trained database with one key per role: ``(app, {role: token}, url)``."""
    url = copy_database(trained["database"], tmp_path / "keyed.sqlite3")
    tokens = make_keys(url)
    app = make_app(DATABASE_URL=url, MODELS_DIR=models_copy, AUTH_CACHE_SECONDS=0)
    return app, tokens, url


def _request(client, method: str, path: str, headers: dict[str, str]):
    """A request that passes authorisation and then fails harmlessly (404/400) or reads."""
    path = path.replace("{need_id}", "N0001").replace("{record_id}", "ZZ-missing").replace("{key_id}", "k_missing")
    path = (
        path.replace("{event_id}", "ZZ-missing").replace("{org_id}", "ZZ-missing").replace("{engagement_id}", "999999")
    )
    body = None
    if method in ("post", "put"):
        body = {"text": "个案管理"} if path in ("/v1/match", "/v1/match/export") else {}
    return client.open(path, method=method.upper(), json=body, headers=headers)


def test_the_documented_roles_are_the_matrix(keyed) -> None:
    app, _, _ = keyed
    doc = app.test_client().get("/openapi.json").get_json()
    documented = {
        (method, path): set(spec["x-roles"]) if "x-roles" in spec else "public"
        for path, methods in doc["paths"].items()
        for method, spec in methods.items()
    }
    assert documented == MATRIX


def test_every_route_has_an_access_rule(keyed) -> None:
    app, _, _ = keyed
    undeclared = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not hasattr(app.view_functions[rule.endpoint], "operation")
    ]
    assert undeclared == []


@pytest.mark.parametrize("who", [*ROLES, "no key", "wrong key"])
def test_role_matrix_on_every_route(keyed, who) -> None:
    app, tokens, _ = keyed
    client = app.test_client()
    headers = {}
    if who in tokens:
        headers = bearer(tokens[who])
    elif who == "wrong key":
        headers = bearer("mk_" + "x" * 43)
    wrong = []
    for (method, path), allowed in MATRIX.items():
        response = _request(client, method, path, headers)
        status = response.status_code
        if allowed == "public" or (who in ROLES and who in allowed):
            ok = status not in (401, 403) and status < 500
        elif who in ROLES:
            ok = status == 403 and response.mimetype == PROBLEM
        else:
            ok = status == 401 and response.headers.get("WWW-Authenticate", "").startswith("Bearer")
        if not ok:
            wrong.append((method, path, response.status_code, (response.get_json(silent=True) or {}).get("detail")))
    assert wrong == []


def test_keys_are_stored_as_hashes_and_revoked_keys_stop_working(keyed) -> None:
    from sqlalchemy import text

    from matcher.store.db import engine_for

    app, tokens, url = keyed
    client = app.test_client()
    created = client.post("/v1/admin/keys", json={"name": "探访员", "role": "analyst"}, headers=bearer(tokens["admin"]))
    assert created.status_code == 201
    key = created.get_json()
    assert key["token"].startswith("mk_") and len(key["token"]) >= 40
    with engine_for(url).connect() as connection:
        rows = connection.execute(text("SELECT key_hash FROM api_keys")).scalars().all()
        dump = "\n".join(str(r) for r in connection.execute(text("SELECT * FROM api_keys")).all())
    assert hashlib.sha256(key["token"].encode()).hexdigest() in rows
    assert all(token not in dump for token in [*tokens.values(), key["token"]])
    assert client.get("/v1/experts?per_page=1", headers=bearer(key["token"])).status_code == 200
    listed = client.get("/v1/admin/keys", headers=bearer(tokens["admin"])).get_json()["items"]
    assert {k["role"] for k in listed} == set(ROLES) and all("token" not in k for k in listed)
    revoked = client.delete(f"/v1/admin/keys/{key['id']}", headers=bearer(tokens["admin"]))
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    refused = client.get("/v1/experts?per_page=1", headers=bearer(key["token"]))
    assert refused.status_code == 401 and "revoked" in refused.get_json()["detail"]
    assert client.delete(f"/v1/admin/keys/{key['id']}", headers=bearer(tokens["admin"])).status_code == 409


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer short", "bearer mk_unknownunknownunknownunknown", "Token abc"]
)
def test_malformed_or_unknown_keys_are_401(keyed, header) -> None:
    app, _, _ = keyed
    response = app.test_client().post("/v1/match", json={"text": "个案管理"}, headers={"Authorization": header})
    assert response.status_code == 401 and response.mimetype == PROBLEM
    assert response.get_json()["detail"].startswith("Authorization")


# ---------------------------------------------------------------- the local coordinator


def test_keyless_loopback_is_the_local_coordinator_only_while_no_key_exists(make_app, trained, tmp_path) -> None:
    url = copy_database(trained["database"], tmp_path / "local.sqlite3")
    client = make_app(DATABASE_URL=url, AUTH_CACHE_SECONDS=0).test_client()
    assert client.post("/v1/match", json={"text": "个案管理"}).status_code == 200
    assert client.get("/session").get_json() == {
        "signed_in": False,
        "local": True,
        "role": "coordinator",
        "name": "local",
        "csrf_token": None,
    }
    assert client.get("/v1/models").status_code == 403  # a coordinator, not an admin
    remote = client.post("/v1/match", json={"text": "个案管理"}, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert remote.status_code == 401
    proxied = client.post("/v1/match", json={"text": "个案管理"}, headers={"X-Forwarded-For": "192.0.2.7"})
    assert proxied.status_code == 401
    ipv6 = client.post("/v1/match", json={"text": "个案管理"}, environ_base={"REMOTE_ADDR": "::1"})
    assert ipv6.status_code == 200
    tokens = make_keys(url)
    assert client.post("/v1/match", json={"text": "个案管理"}).status_code == 401
    assert client.post("/v1/match", json={"text": "个案管理"}, headers=bearer(tokens["coordinator"])).status_code == 200


def test_env_keys_configure_the_server(make_app, trained, tmp_path) -> None:
    token = "ops-token-0123456789abcdef"
    digest = hashlib.sha256(token.encode()).hexdigest()
    url = copy_database(trained["database"], tmp_path / "env.sqlite3")
    client = make_app(DATABASE_URL=url, API_KEYS=f"ops:admin:{digest}").test_client()
    assert client.get("/v1/models").status_code == 401  # keyless is off: a key is configured
    assert client.get("/v1/models", headers=bearer(token)).status_code == 200
    keys = client.get("/v1/admin/keys", headers=bearer(token)).get_json()["items"]
    assert keys == [
        {
            "id": "env:ops",
            "name": "ops",
            "role": "admin",
            "created_at": None,
            "created_by": "MATCHER_API_KEYS",
            "revoked_at": None,
            "source": "environment",
        }
    ]


@pytest.mark.parametrize("value", ["ops:root:" + "0" * 64, "ops:admin:xyz", "justaname"])
def test_malformed_env_keys_are_named(value) -> None:
    with pytest.raises(ValueError, match="MATCHER_API_KEYS"):
        parse_env_keys(value)


def test_key_ring_caches_and_forgets() -> None:
    calls = []

    def lookup(key_hash):
        calls.append(key_hash)

    ring = KeyRing({}, lookup, lambda: 0, ttl=60)
    assert ring.identity("a" * 64) is None and ring.identity("a" * 64) is None
    assert calls == ["a" * 64]
    ring.forget()
    ring.identity("a" * 64)
    assert len(calls) == 2


# ---------------------------------------------------------------- the page's session and CSRF


def test_page_session_cookie_and_csrf(keyed) -> None:
    app, tokens, _ = keyed
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert 'id="sign-in-form"' in page and 'id="match-form"' not in page
    assert client.post("/session", json={"key": "mk_" + "y" * 43}).status_code == 401
    signed = client.post("/session", json={"key": tokens["coordinator"]})
    assert signed.status_code == 201
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and tokens["coordinator"] not in cookie
    state = client.get("/session").get_json()
    assert state["signed_in"] and state["role"] == "coordinator" and state["csrf_token"]
    assert state["csrf_token"] in client.get("/").get_data(as_text=True)
    csrf = {"X-CSRF-Token": state["csrf_token"]}

    assert client.get("/v1/experts?per_page=1").status_code == 200  # reads need no token
    refused = client.post("/v1/match", json={"text": "个案管理"})
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.get_json()["detail"]
    wrong = client.post("/v1/match", json={"text": "个案管理"}, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    assert client.post("/v1/match", json={"text": "个案管理"}, headers=csrf).status_code == 200
    # a request with a key is not a cookie session: no token needed
    assert client.post("/v1/match", json={"text": "个案管理"}, headers=bearer(tokens["analyst"])).status_code == 200

    assert client.delete("/session").status_code == 403
    assert client.delete("/session", headers=csrf).status_code == 204
    assert client.get("/v1/experts?per_page=1").status_code == 401


def test_an_analyst_session_may_not_write(keyed) -> None:
    app, tokens, _ = keyed
    client = app.test_client()
    client.post("/session", json={"key": tokens["analyst"]})
    csrf = {"X-CSRF-Token": client.get("/session").get_json()["csrf_token"]}
    assert client.post("/v1/experts", json={}, headers=csrf).status_code == 403
    assert client.post("/v1/match", json={"text": "个案管理"}, headers=csrf).status_code == 200


# ---------------------------------------------------------------- contacts and the audit log

EXPERT = {
    "id": "E9301",
    "name": "韩梅",
    "specialties": ["个案管理"],
    "bio": "个案管理督导，联系电话13912345678，邮箱 han.mei@example.org。",
    "counties": ["雄县"],
    "phone": "13912345678",
    "email": "han.mei@example.org",
}


def test_contacts_are_hidden_from_analysts_and_each_coordinator_view_is_audited(keyed) -> None:
    app, tokens, _ = keyed
    client = app.test_client()
    coordinator, analyst, admin = (bearer(tokens[r]) for r in ROLES)
    assert client.post("/v1/experts", json=EXPERT, headers=coordinator).status_code == 201

    seen = client.get("/v1/experts/E9301", headers=coordinator).get_json()
    assert seen["phone"] == "13912345678" and "13912345678" in seen["bio"]
    hidden = client.get("/v1/experts/E9301", headers=analyst).get_json()
    assert "phone" not in hidden and "email" not in hidden
    assert "13912345678" not in hidden["bio"] and "[电话]" in hidden["bio"] and "[邮箱]" in hidden["bio"]
    listed = client.get("/v1/experts?q=个案管理督导&per_page=100", headers=analyst).get_json()["items"]
    assert listed and all("phone" not in e and "email" not in e for e in listed)

    log = client.get("/v1/admin/audit?action=view_contacts", headers=admin).get_json()
    assert log["total"] == 1
    entry = log["items"][0]
    assert entry["actor"].startswith("key:k_") and entry["role"] == "coordinator"
    assert entry["record_id"] == "E9301" and entry["detail"] == {"ids": ["E9301"]} and entry["request_id"]
    client.get("/v1/experts?per_page=3", headers=coordinator)
    viewed = client.get("/v1/admin/audit?action=view_contacts", headers=admin).get_json()["items"][0]
    assert len(viewed["detail"]["ids"]) == 3


def test_every_edit_and_decision_is_audited_without_personal_values(keyed) -> None:
    app, tokens, _ = keyed
    client = app.test_client()
    coordinator, admin = bearer(tokens["coordinator"]), bearer(tokens["admin"])
    assert client.post("/v1/experts", json=EXPERT, headers=coordinator).status_code == 201
    changed = {**EXPERT, "phone": "13800001111", "capacity": 2}
    assert client.put("/v1/experts/E9301", json=changed, headers=coordinator).status_code == 200
    need = client.get("/v1/needs?status=open&per_page=1", headers=coordinator).get_json()["items"][0]["id"]
    decision = {"need_id": need, "target_type": "expert", "target_id": "E9301", "decision": "rejected"}
    assert client.post("/v1/feedback", json=decision, headers=coordinator).status_code == 201
    assert client.delete("/v1/experts/E9301", headers=coordinator).status_code == 204

    entries = client.get("/v1/admin/audit?kind=experts&record_id=E9301", headers=admin).get_json()["items"]
    actions = [e["action"] for e in reversed(entries)]
    assert actions[0] == "create" and "replace" in actions and actions[-1] == "delete"
    replaced = next(e for e in entries if e["action"] == "replace")
    assert replaced["detail"] == {"fields": ["capacity", "phone"]}
    feedback = client.get("/v1/admin/audit?action=feedback", headers=admin).get_json()["items"][0]
    assert feedback["detail"] == decision and feedback["kind"] == "decisions"
    everything = str(client.get("/v1/admin/audit?per_page=100", headers=admin).get_json())
    assert "13800001111" not in everything and "han.mei" not in everything
    assert client.get("/v1/admin/audit?action=nonsense", headers=admin).status_code == 400


def test_purge_erases_a_deleted_records_personal_data(keyed, monkeypatch) -> None:
    from matcher.cli import cli

    app, tokens, url = keyed
    client = app.test_client()
    coordinator = bearer(tokens["coordinator"])
    assert client.post("/v1/experts", json=EXPERT, headers=coordinator).status_code == 201
    monkeypatch.setenv("DATABASE_URL", url)
    live = CliRunner().invoke(cli, ["purge", "experts", "E9301"])
    assert live.exit_code != 0 and "delete it first" in str(live.exception)
    assert client.delete("/v1/experts/E9301", headers=coordinator).status_code == 204
    result = CliRunner().invoke(cli, ["purge", "experts", "E9301"])
    assert result.exit_code == 0, result.output
    assert "phone" in result.output and "bio" in result.output

    from matcher.store.schema import Expert
    from matcher.store.transactions import transaction

    with transaction(url) as session:
        row = session.get(Expert, "E9301")
        assert (row.name, row.phone, row.email, row.bio) == ("已清除", "", "", "")
    purged = client.get("/v1/admin/audit?action=purge", headers=bearer(tokens["admin"])).get_json()["items"][0]
    assert purged["record_id"] == "E9301" and purged["actor"].startswith("cli")


def test_keys_cli(keyed, monkeypatch) -> None:
    from matcher.cli import cli

    app, _, url = keyed
    monkeypatch.setenv("DATABASE_URL", url)
    created = CliRunner().invoke(cli, ["keys", "create", "--name", "值班协调员", "--role", "coordinator"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("mk_")
    listed = CliRunner().invoke(cli, ["keys", "list"])
    assert "值班协调员" in listed.output and token not in listed.output
    key_id = next(line.split()[0] for line in listed.output.splitlines() if "值班协调员" in line)
    client = app.test_client()
    assert client.get("/v1/needs?per_page=1", headers=bearer(token)).status_code == 200
    assert CliRunner().invoke(cli, ["keys", "revoke", key_id]).exit_code == 0
    assert client.get("/v1/needs?per_page=1", headers=bearer(token)).status_code == 401
