"""``matcher serve`` as an operator runs it: the bind check, gunicorn workers, /metrics, JSON logs, activation."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.access_support import copy_database
from tests.test_server import start_server, stop_server

ADMIN = "admin-token-for-the-ops-test-0001"
COORDINATOR = "coordinator-token-for-the-ops-test"
SECRET_NEED = "独居的王秀英阿姨身份证130638198807154529，女儿电话13931266078，想找个案管理专家"


def call(url: str, token: str, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def env_keys() -> str:
    def entry(name: str, role: str, token: str) -> str:
        return f"{name}:{role}:{hashlib.sha256(token.encode()).hexdigest()}"

    return ",".join([entry("ops", "admin", ADMIN), entry("desk", "coordinator", COORDINATOR)])


def test_serving_off_loopback_without_keys_is_refused(cli_env, trained, tmp_path) -> None:
    env = {**cli_env, "DATABASE_URL": copy_database(trained["database"], tmp_path / "nokeys.sqlite3")}
    result = subprocess.run(
        [sys.executable, "-m", "matcher.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_workers_metrics_json_logs_and_activation(cli_env, trained, tmp_path) -> None:
    models = tmp_path / "models"
    shutil.copytree(trained["models"], models)
    env = {
        **cli_env,
        "DATABASE_URL": copy_database(trained["database"], tmp_path / "ops.sqlite3"),
        "MATCHER_MODELS_DIR": str(models),
        "MATCHER_API_KEYS": env_keys(),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "server.log"
    process, base = start_server(env, log, workers=2)
    try:
        status, _ = call(base + "/v1/match", "", {"text": "个案管理"})
        assert status == 401
        for _ in range(24):
            status, body = call(base + "/v1/match", COORDINATOR, {"text": SECRET_NEED, "k": 3})
            assert status == 200 and json.loads(body)["model_version"] == trained["version"]
        status, metrics = call(base + "/metrics", ADMIN)
        assert status == 200
        text = metrics.decode()
        served = re.search(r'matcher_http_requests_total\{method="POST",route="/v1/match",status="200"\} (\S+)', text)
        assert served and float(served.group(1)) == 24.0  # summed over both workers
        assert 'matcher_http_requests_total{method="POST",route="/v1/match",status="401"} 1.0' in text
        assert re.search(r"matcher_match_duration_seconds_count (\S+)", text).group(1) == "24.0"
        assert f'matcher_model_active{{version="{trained["version"]}"}} 1.0' in text
        assert "matcher_http_request_duration_seconds_bucket" in text

        # a new version: activated once over HTTP, served by every worker from its next request
        new = "20990101T000000Z"
        shutil.copytree(models / trained["version"], models / new)
        manifest = json.loads((models / new / "manifest.json").read_text())
        (models / new / "manifest.json").write_text(json.dumps({**manifest, "version": new}))
        status, body = call(base + "/v1/admin/model/activate", ADMIN, {"version": new})
        assert status == 200, body
        versions = {
            json.loads(call(base + "/v1/match", COORDINATOR, {"text": "小组工作"})[1])["model_version"]
            for _ in range(12)
        }
        assert versions == {new}
    finally:
        stop_server(process)
    lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(records) >= 0.9 * len(lines)  # JSON lines (a crash report would be plain text)
    access = [r for r in records if r.get("logger") == "matcher.access"]
    assert len(access) >= 38 and all(len(r["request_id"]) == 32 for r in access)
    whole = log.read_text(encoding="utf-8")
    assert "王秀英" not in whole and "13931266078" not in whole and "130638198807154529" not in whole
