"""Safe model activation: verified before ACTIVE changes, history and rollback, signed versions."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from matcher.errors import ConflictError, ModelError
from matcher.matching import persist
from tests.access_support import bearer, copy_database, make_keys

KEY = "a signing key for tests only"


def _copy_version(root, version: str, new: str) -> str:
    """A second version with the same artefact (fast: no training)."""
    shutil.copytree(root / version, root / new)
    manifest = json.loads((root / new / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = new
    (root / new / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return new


# ---------------------------------------------------------------- persist


def test_activation_verifies_first_and_a_corrupt_version_changes_nothing(toy_matcher, tmp_path) -> None:
    good = persist.save(toy_matcher, root=tmp_path)
    bad = persist.save(toy_matcher, root=tmp_path, activate_version=False)
    (tmp_path / bad / "model.joblib").write_bytes(b"corrupted on disk")
    with pytest.raises(ModelError, match="sha256"):
        persist.activate(bad, root=tmp_path)
    assert persist.active_version(tmp_path) == good
    assert [e["version"] for e in persist.history(tmp_path)] == [good]


def test_history_and_rollback_step_back_one_activation_at_a_time(toy_matcher, tmp_path) -> None:
    first = persist.save(toy_matcher, root=tmp_path)
    second = persist.save(toy_matcher, root=tmp_path)
    third = persist.save(toy_matcher, root=tmp_path)
    assert persist.rollback(root=tmp_path) == (third, second)
    assert persist.active_version(tmp_path) == second
    assert persist.rollback(root=tmp_path) == (second, first)
    with pytest.raises(ConflictError, match="no previous"):
        persist.rollback(root=tmp_path)
    persist.activate(third, root=tmp_path)
    assert persist.rollback(root=tmp_path) == (third, first)
    actions = [(e["action"], e["version"], e["previous"]) for e in persist.history(tmp_path)]
    assert actions[-1] == ("rollback", first, third) and all(e["by"] for e in persist.history(tmp_path))


def test_rollback_refuses_a_previous_version_that_fails_its_checks(toy_matcher, tmp_path) -> None:
    first = persist.save(toy_matcher, root=tmp_path)
    second = persist.save(toy_matcher, root=tmp_path)
    (tmp_path / first / "model.joblib").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        persist.rollback(root=tmp_path)
    assert persist.active_version(tmp_path) == second


def test_signed_versions(toy_matcher, tmp_path) -> None:
    unsigned = persist.save(toy_matcher, root=tmp_path)
    signed = persist.save(toy_matcher, root=tmp_path, key=KEY)
    manifest = persist.read_manifest(signed, root=tmp_path)
    assert len(manifest["artefact_hmac"]) == 64 and "artefact_hmac" not in persist.read_manifest(
        unsigned, root=tmp_path
    )
    persist.load(signed, root=tmp_path, key=KEY)
    with pytest.raises(ModelError, match="not signed"):
        persist.load(unsigned, root=tmp_path, key=KEY)
    with pytest.raises(ModelError, match="artefact_hmac does not match"):
        persist.load(signed, root=tmp_path, key="another key")
    with pytest.raises(ModelError, match="not signed"):
        persist.activate(unsigned, root=tmp_path, key=KEY)
    persist.sign(unsigned, root=tmp_path, key=KEY)
    persist.activate(unsigned, root=tmp_path, key=KEY)
    assert persist.active_version(tmp_path) == unsigned


def test_signing_key_from_the_environment(toy_matcher, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MATCHER_SIGNING_KEY", KEY)
    version = persist.save(toy_matcher, root=tmp_path)
    assert persist.verify(version, root=tmp_path)["artefact_hmac"]
    forged = persist.read_manifest(version, root=tmp_path)
    forged["artefact_hmac"] = "0" * 64
    (tmp_path / version / "manifest.json").write_text(json.dumps(forged), encoding="utf-8")
    with pytest.raises(ModelError, match="does not match the signing key"):
        persist.load(root=tmp_path)


# ---------------------------------------------------------------- HTTP and the running service


@pytest.fixture
def admin_app(make_app, trained, models_copy, tmp_path):
    url = copy_database(trained["database"], tmp_path / "admin.sqlite3")
    tokens = make_keys(url)
    app = make_app(DATABASE_URL=url, MODELS_DIR=models_copy)
    return app, tokens, models_copy


def test_activate_over_http_switches_without_restart_and_refuses_a_corrupt_artefact(admin_app, trained) -> None:
    app, tokens, models = admin_app
    client = app.test_client()
    admin, coordinator = bearer(tokens["admin"]), bearer(tokens["coordinator"])
    match = {"text": "个案管理督导", "k": 3}
    assert client.post("/v1/match", json=match, headers=coordinator).get_json()["model_version"] == trained["version"]
    new = _copy_version(models, trained["version"], "20990101T000000Z")
    corrupt = _copy_version(models, trained["version"], "20990102T000000Z")
    (models / corrupt / "model.joblib").write_bytes(b"\x80\x04corrupted")

    refused = client.post("/v1/admin/model/activate", json={"version": corrupt}, headers=admin)
    assert refused.status_code == 409 and "sha256" in refused.get_json()["detail"]
    assert persist.active_version(models) == trained["version"]
    assert client.post("/v1/match", json=match, headers=coordinator).get_json()["model_version"] == trained["version"]

    assert (
        client.post("/v1/admin/model/activate", json={"version": "20990103T000000Z"}, headers=admin).status_code == 404
    )
    assert client.post("/v1/admin/model/activate", json={"version": "latest"}, headers=admin).status_code == 400
    activated = client.post("/v1/admin/model/activate", json={"version": new}, headers=admin)
    assert activated.status_code == 200
    assert activated.get_json() == {"active": new, "previous": trained["version"]}
    assert client.post("/v1/match", json=match, headers=coordinator).get_json()["model_version"] == new
    listed = client.get("/v1/models", headers=bearer(tokens["analyst"])).get_json()
    assert listed["active"] == new and [v["version"] for v in listed["versions"]][:2] == [corrupt, new]

    rolled = client.post("/v1/admin/model/rollback", headers=admin)
    assert rolled.status_code == 200 and rolled.get_json() == {"active": trained["version"], "previous": new}
    assert client.post("/v1/match", json=match, headers=coordinator).get_json()["model_version"] == trained["version"]
    audit = client.get("/v1/admin/audit?kind=models", headers=admin).get_json()["items"]
    assert [e["action"] for e in audit] == ["model_rollback", "model_activate"]


def test_a_corrupt_active_version_written_behind_the_services_back_keeps_the_old_one(admin_app, trained) -> None:
    app, tokens, models = admin_app
    client = app.test_client()
    coordinator = bearer(tokens["coordinator"])
    assert client.get("/health").get_json()["model_version"] == trained["version"]
    corrupt = _copy_version(models, trained["version"], "20990104T000000Z")
    (models / corrupt / "model.joblib").write_bytes(b"corrupted")
    (models / "ACTIVE").write_text(corrupt + "\n")
    response = client.post("/v1/match", json={"text": "小组工作"}, headers=coordinator)
    assert response.status_code == 200 and response.get_json()["model_version"] == trained["version"]
    assert client.get("/health").get_json()["failed_version"] == corrupt


def test_signing_key_refuses_unsigned_versions_over_http(make_app, trained, models_copy, tmp_path) -> None:
    url = copy_database(trained["database"], tmp_path / "signed.sqlite3")
    tokens = make_keys(url)
    persist.sign(trained["version"], root=models_copy, key=KEY)
    unsigned = _copy_version(models_copy, trained["version"], "20990105T000000Z")
    manifest = json.loads((models_copy / unsigned / "manifest.json").read_text())
    manifest.pop("artefact_hmac")
    (models_copy / unsigned / "manifest.json").write_text(json.dumps(manifest))
    client = make_app(DATABASE_URL=url, MODELS_DIR=models_copy, SIGNING_KEY=KEY).test_client()
    admin = bearer(tokens["admin"])
    assert client.get("/health").status_code == 200
    refused = client.post("/v1/admin/model/activate", json={"version": unsigned}, headers=admin)
    assert refused.status_code == 409 and "not signed" in refused.get_json()["detail"]
    assert client.get("/v1/models", headers=admin).get_json()["signing"] is True


def test_models_cli(models_copy, trained, tmp_path, monkeypatch) -> None:
    from matcher.cli import cli

    monkeypatch.setenv("MATCHER_MODELS_DIR", str(models_copy))
    monkeypatch.setenv("DATABASE_URL", copy_database(trained["database"], tmp_path / "cli.sqlite3"))
    new = _copy_version(models_copy, trained["version"], "20990106T000000Z")
    runner = CliRunner()
    listed = runner.invoke(cli, ["models", "list", "--verify"])
    assert listed.exit_code == 0 and f"* {trained['version']}" in listed.output and "verified" in listed.output
    activated = runner.invoke(cli, ["models", "activate", new])
    assert activated.exit_code == 0, activated.output
    assert persist.active_version(models_copy) == new
    rolled = runner.invoke(cli, ["models", "rollback"])
    assert rolled.exit_code == 0 and f"to {trained['version']}" in rolled.output
    (models_copy / new / "model.joblib").write_bytes(b"broken")
    refused = runner.invoke(cli, ["models", "activate", new])
    assert refused.exit_code != 0 and "sha256" in str(refused.exception)
    assert persist.active_version(models_copy) == trained["version"]


def test_a_version_fitted_on_files_is_refused_over_http(admin_app, trained) -> None:
    app, tokens, models = admin_app
    client = app.test_client()
    files = _copy_version(models, trained["version"], "20990104T000000Z")
    manifest = json.loads((models / files / "manifest.json").read_text(encoding="utf-8"))
    manifest["source"] = "files"
    (models / files / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    refused = client.post("/v1/admin/model/activate", json={"version": files}, headers=bearer(tokens["admin"]))
    assert refused.status_code == 409 and refused.mimetype == "application/problem+json"
    assert "fitted on files" in refused.get_json()["detail"]
    assert persist.active_version(models) == trained["version"]
