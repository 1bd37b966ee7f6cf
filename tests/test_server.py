"""The service as a real gunicorn process on a free loopback port, and concurrent writes through it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def start_server(env: dict[str, str], log: Path, workers: int = 2):
    """Start ``matcher serve`` on a free port, its output going to ``log`` (a pipe would fill and block it)."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "matcher.cli", "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if request(base + "/health")[0] == 200:
                return process, base
        except OSError:
            time.sleep(0.2)
    process.kill()
    pytest.fail("the server did not answer /health within 90 s: " + log.read_text(errors="replace")[-2000:])


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def server(cli_env, tmp_path):
    process, base = start_server(cli_env, tmp_path / "server.log")
    yield base
    stop_server(process)


@pytest.fixture
def db_server(cli_env, db_url, tmp_path):
    """A server over a fresh database of each kind."""
    process, base = start_server({**cli_env, "DATABASE_URL": db_url}, tmp_path / "server.log")
    yield base, db_url
    stop_server(process)


def test_real_server_matches_and_reports_errors(server, client) -> None:
    status, body = request(server + "/v1/match", {"text": "社工站小组工作怎么设计", "k": 2})
    assert status == 200
    assert body == client.post("/v1/match", json={"text": "社工站小组工作怎么设计", "k": 2}).get_json()
    status, problem = request(server + "/v1/match", {"text": "x", "k": 99})
    assert status == 400 and problem["detail"].startswith("k:")
    with urllib.request.urlopen(server + "/", timeout=30) as page:
        assert "需求匹配" in page.read().decode()


def test_concurrent_feedback_writes_are_all_recorded(db_server) -> None:
    from matcher.store import kinds, transactions

    base, url = db_server
    with transactions.transaction(url) as session:
        before = kinds.counts(session)["decisions"]
    needs = [n["id"] for n in request(base + "/v1/needs?per_page=40")[1]["items"]]
    experts = [e["id"] for e in request(base + "/v1/experts?per_page=40")[1]["items"]]

    def writer(thread: int) -> list[int]:
        statuses = []
        for i in range(200):
            body = {
                "need_id": needs[(thread * 7 + i) % len(needs)],
                "target_type": "expert",
                "target_id": experts[(thread + i) % len(experts)],
                "decision": "rejected",
                "comment": f"t{thread}-{i}",
                "rank": 1 + i % 10,
                "score": 0.1,
            }
            statuses.append(request(base + "/v1/feedback", body)[0])
        return statuses

    with ThreadPoolExecutor(8) as pool:
        statuses = [s for result in pool.map(writer, range(8)) for s in result]
    assert statuses.count(201) == 1600, {s: statuses.count(s) for s in set(statuses)}
    with transactions.transaction(url) as session:
        assert kinds.counts(session)["decisions"] == before + 1600


def test_concurrent_accepts_never_overbook(db_server) -> None:
    base, _ = db_server
    expert = {"id": "E9100", "name": "并发专家", "specialties": ["个案管理"], "counties": ["雄县"], "capacity": 3}
    assert request(base + "/v1/experts", expert)[0] == 201
    needs = [n["id"] for n in request(base + "/v1/needs?per_page=8&status=open")[1]["items"]]
    assert len(needs) == 8

    def accept(need_id: str) -> int:
        body = {"need_id": need_id, "target_type": "expert", "target_id": "E9100", "decision": "accepted"}
        return request(base + "/v1/feedback", body)[0]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(accept, needs))
    assert sorted(statuses) == [201] * 3 + [409] * 5
    engagements = request(base + "/v1/engagements?expert_id=E9100&status=open")[1]
    assert engagements["total"] == 3
