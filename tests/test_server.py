"""The API once through a real gunicorn server process on a free loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def server(cli_env):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "matcher.cli", "serve", "--port", str(port), "--workers", "2"],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if request(base + "/health")[0] == 200:
                break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the server did not answer /health within 60 s: " + process.stdout.read().decode()[-2000:])
    yield base
    process.terminate()
    process.wait(timeout=30)


def test_real_server_matches_and_reports_errors(server, client) -> None:
    status, body = request(server + "/v1/match", {"text": "社工站小组工作怎么设计", "k": 2})
    assert status == 200
    assert body == client.post("/v1/match", json={"text": "社工站小组工作怎么设计", "k": 2}).get_json()
    status, problem = request(server + "/v1/match", {"text": "x", "k": 99})
    assert status == 400 and problem["detail"].startswith("k:")
    with urllib.request.urlopen(server + "/", timeout=30) as page:
        assert "需求匹配" in page.read().decode()
