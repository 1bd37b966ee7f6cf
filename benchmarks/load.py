#!/usr/bin/env python3
"""Bounded load test of ``matcher serve`` against a bare Flask + gunicorn matcher, in one run.

The script builds, in a temporary folder, a database holding the sample libraries plus 20,000
generated experts (the seeded generator of ``latency.py``), trains one model version on it, copies
that version under a second name (for the activation phase), creates API keys, and starts two
servers on free loopback ports, each with the same number of gunicorn sync workers:

* **matcher**: ``matcher serve`` as deployed: API key checked on every request, request validation,
  problem+json errors, Prometheus metrics, JSON access log with request ids (to a file), the
  database revision check that keeps the index in step with edits;
* **bare**: :func:`bare_app`, a Flask app written here that loads the same artefact and answers
  ``POST /match`` with ``model.recommend`` and ``jsonify``: no auth, no validation, no metrics,
  no logging, no database.

Clients are threads of this process, each sending ``POST`` requests one after another on a new
connection (sync workers close connections), with the same needs for both servers. For each of
1, 4 and 32 concurrent clients, a fixed number of requests goes to each server, in the order
bare, matcher, matcher, bare (the two rounds are pooled): throughput, p50 and p99 latency,
errors. Then the activation phase: 32 clients send a fixed number of requests to matcher while,
after a third of them, ``POST /v1/admin/model/activate`` switches to the second version and,
after two thirds, ``POST /v1/admin/model/rollback`` switches back; every request must succeed.

Only 127.0.0.1 is ever contacted; every phase is a fixed number of requests, each with a timeout,
and the whole run has a deadline, after which it stops the servers and reports what it has.

Usage::

    .venv/bin/python benchmarks/load.py --experts 20000 --workers 2 --out /tmp/load.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # the only address this script talks to
LEVELS = (1, 4, 32)
K = 10
TAG_MAP = {"督导": "专业督导", "征迁安置": "征迁安置融入", "项目评估": "项目设计与评估", "志愿服务": "志愿者管理"}


def log(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the bare matcher


def bare_app():
    """A bare Flask matcher: the model of ``$BARE_MODELS_DIR`` behind ``POST /match`` (gunicorn factory)."""
    from flask import Flask, jsonify, request

    from matcher.matching import persist

    model, manifest = persist.load(root=Path(os.environ["BARE_MODELS_DIR"]))
    app = Flask("bare")

    @app.get("/health")
    def health():
        return jsonify({"status": "ok", "model_version": manifest["version"]})

    @app.post("/match")
    def match():
        body = request.get_json()
        need = {"text": body["text"], "tags": body.get("tags", []), "counties": []}
        results = model.recommend(need, k=body.get("k", 5), target_types=body.get("targets"))
        return jsonify({"model_version": manifest["version"], "results": results})

    return app


# --------------------------------------------------------------------------- set-up


def build(workdir: Path, n_experts: int, seed: int) -> dict[str, Any]:
    """Database with ``n_experts`` generated experts, a trained version and its copy, API keys, needs."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.latency import Generator
    from matcher.jobs.training import train_version
    from matcher.store import keys
    from matcher.store.io import import_file
    from matcher.store.seed import ensure_database
    from matcher.store.transactions import transaction

    url = f"sqlite:///{workdir / 'load.sqlite3'}"
    models = workdir / "models"
    started = time.perf_counter()
    ensure_database(url, ROOT / "data")
    generator = Generator(seed)
    taxonomy = {
        line.split(",")[1] for line in (ROOT / "data" / "taxonomy.csv").read_text(encoding="utf-8").splitlines()[1:]
    }
    experts = workdir / "experts.jsonl"
    with experts.open("w", encoding="utf-8") as handle:
        for i in range(n_experts):
            row = generator.expert(i + 1)
            tags = list(dict.fromkeys(t for t in (TAG_MAP.get(t, t) for t in row["tags"]) if t in taxonomy))
            record = {
                "id": row["id"],
                "name": row["name"],
                "specialties": tags,
                "bio": row["texts"][1],
                "courses": row["texts"][2:],
                "counties": row["counties"],
                "capacity": row["capacity"],
                "available": True,
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    report = import_file("experts", experts, url=url)
    log(f"database: {report} generated experts in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    version = train_version(data=ROOT / "data", models=models, database_url=url)
    log(f"trained version {version} in {time.perf_counter() - started:.1f} s")
    second = "20991231T235959Z"  # the same artefact under a second name, to switch to and back
    shutil.copytree(models / version, models / second)
    manifest = json.loads((models / second / "manifest.json").read_text(encoding="utf-8"))
    (models / second / "manifest.json").write_text(json.dumps({**manifest, "version": second}), encoding="utf-8")
    with transaction(url) as session:
        coordinator, _ = keys.create_key(session, "load test", "coordinator", created_by="benchmarks/load.py")
        admin, _ = keys.create_key(session, "load test admin", "admin", created_by="benchmarks/load.py")
    needs = [n["text"] for n in Generator(seed + 1).needs(500)]
    return {
        "url": url,
        "models": models,
        "versions": [version, second],
        "coordinator": coordinator,
        "admin": admin,
        "needs": needs,
        "artefact_mb": round((models / version / "model.joblib").stat().st_size / 1e6, 1),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start(command: list[str], env: dict[str, str], log_file: Path, port: int, deadline: float) -> subprocess.Popen:
    with log_file.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[2:5]} exited: {log_file.read_text(errors='replace')[-2000:]}")
        try:
            status, _ = request(port, "GET", "/health", None, {}, timeout=5)
            if status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{command[2:5]} did not answer /health in time")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


# --------------------------------------------------------------------------- clients


def request(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float = 60):
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Target:
    """One server as the clients see it: port, path, headers and how a need becomes a body."""

    def __init__(self, name: str, port: int, path: str, token: str | None = None) -> None:
        self.name, self.port, self.path = name, port, path
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def body(self, text: str) -> bytes:
        return json.dumps({"text": text, "k": K, "targets": ["expert"]}, ensure_ascii=False).encode()


def run_clients(
    target: Target, needs: list[str], clients: int, total: int, deadline: float, on_progress=None
) -> dict[str, Any]:
    """``total`` requests from ``clients`` threads; latencies (ms), errors and versions seen."""
    latencies: list[float] = []
    errors: list[str] = []
    versions: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body = target.body(needs[i % len(needs)])
            began = time.perf_counter()
            try:
                status, data = request(target.port, "POST", target.path, body, target.headers)
                error = None if status == 200 else f"HTTP {status}: {data[:200]!r}"
            except OSError as failure:
                status, data, error = 0, b"", f"{type(failure).__name__}: {failure}"
            elapsed = (time.perf_counter() - began) * 1000
            version = json.loads(data).get("model_version") if status == 200 else None
            with lock:
                latencies.append(elapsed)
                if error:
                    errors.append(error)
                versions[version] = versions.get(version, 0) + 1
            if on_progress:
                on_progress(len(latencies))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    return {"latencies": latencies, "errors": errors, "seconds": seconds, "versions": versions, "sent": len(latencies)}


def stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    latencies = np.array([x for r in runs for x in r["latencies"]])
    sent = sum(r["sent"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return {
        "requests": sent,
        "errors": sum(len(r["errors"]) for r in runs),
        "throughput_rps": round(sent / seconds, 1) if seconds else 0.0,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2) if len(latencies) else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 2) if len(latencies) else None,
        "max_ms": round(float(latencies.max()), 2) if len(latencies) else None,
        "first_errors": [e for r in runs for e in r["errors"]][:5],
    }


# --------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from benchmarks.latency import machine

    deadline = time.monotonic() + args.deadline
    workdir = Path(tempfile.mkdtemp(prefix="matcher-load-"))
    processes: list[subprocess.Popen] = []
    report: dict[str, Any] = {
        "config": {
            "experts": args.experts,
            "workers": args.workers,
            "requests": {str(c): args.requests * (2 if c > 4 else 1) for c in LEVELS},
            "activation_requests": args.activation_requests,
            "k": K,
            "seed": args.seed,
        },
        "machine": machine(),
    }
    try:
        built = build(workdir, args.experts, args.seed)
        report["config"]["artefact_mb"] = built["artefact_mb"]
        needs = built["needs"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHER_", "PROMETHEUS_"))}
        env.update(
            # one BLAS/OpenMP thread per worker for both servers: matcher serve sets it itself, and
            # the bare server must not be slowed by threads fighting over the cores either
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            DATABASE_URL=built["url"],
            MATCHER_MODELS_DIR=str(built["models"]),
            MATCHER_DATA_DIR=str(ROOT / "data"),
            BARE_MODELS_DIR=str(built["models"]),
        )
        bare_port, matcher_port = free_port(), free_port()
        python = sys.executable
        log("starting the bare server and matcher serve")
        processes.append(
            start(
                [
                    python,
                    "-m",
                    "gunicorn",
                    "--workers",
                    str(args.workers),
                    "--bind",
                    f"{HOST}:{bare_port}",
                    "--timeout",
                    "120",
                    "benchmarks.load:bare_app()",
                ],
                env,
                workdir / "bare.log",
                bare_port,
                deadline,
            )
        )
        processes.append(
            start(
                [
                    python,
                    "-m",
                    "matcher.cli",
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(matcher_port),
                    "--workers",
                    str(args.workers),
                    "--timeout",
                    "120",
                ],
                env,
                workdir / "matcher.log",
                matcher_port,
                deadline,
            )
        )
        bare = Target("bare", bare_port, "/match")
        served = Target("matcher", matcher_port, "/v1/match", built["coordinator"])
        for target in (bare, served):  # warm-up: every worker loads and answers
            warm = run_clients(target, needs, 4, args.warmup, deadline)
            if warm["errors"]:
                raise RuntimeError(f"{target.name} warm-up failed: {warm['errors'][:3]}")
        results: dict[str, dict[str, Any]] = {}
        for clients in LEVELS:
            total = report["config"]["requests"][str(clients)]
            runs: dict[str, list] = {"bare": [], "matcher": []}
            for target in (bare, served, served, bare):
                log(f"{clients} clients: {total} requests to {target.name}")
                runs[target.name].append(run_clients(target, needs, clients, total, deadline))
            results[str(clients)] = {name: stats(r) for name, r in runs.items()}
            bare_rps, matcher_rps = (results[str(clients)][n]["throughput_rps"] for n in ("bare", "matcher"))
            results[str(clients)]["ratio"] = round(matcher_rps / bare_rps, 3) if bare_rps else None
        report["levels"] = results
        report["activation"] = activation_phase(served, built, needs, args, deadline)
        report["goals"] = goals(report)
        report["logs"] = {
            "matcher_log_lines": sum(1 for _ in (workdir / "matcher.log").open(encoding="utf-8", errors="replace"))
        }
    finally:
        for process in processes:
            stop(process)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def activation_phase(
    served: Target, built: dict[str, Any], needs: list[str], args: argparse.Namespace, deadline: float
) -> dict[str, Any]:
    """32 clients on matcher while a version is activated (after 1/3) and rolled back (after 2/3)."""
    first, second = built["versions"]
    admin = {"Content-Type": "application/json", "Authorization": f"Bearer {built['admin']}"}
    total = args.activation_requests
    switches: list[dict[str, Any]] = []
    fired = {"activate": False, "rollback": False}
    lock = threading.Lock()

    def switch(kind: str, done: int) -> None:
        began = time.perf_counter()
        if kind == "activate":
            body = json.dumps({"version": second}).encode()
            status, data = request(served.port, "POST", "/v1/admin/model/activate", body, admin)
        else:
            status, data = request(served.port, "POST", "/v1/admin/model/rollback", b"", admin)
        switches.append(
            {
                "action": kind,
                "after_requests": done,
                "status": status,
                "ms": round((time.perf_counter() - began) * 1000, 1),
                "body": json.loads(data) if data else None,
            }
        )

    workers: list[threading.Thread] = []

    def progress(done: int) -> None:
        for kind, at in (("activate", total // 3), ("rollback", 2 * total // 3)):
            if done >= at:
                with lock:
                    if fired[kind]:
                        continue
                    fired[kind] = True
                thread = threading.Thread(target=switch, args=(kind, done))
                thread.start()
                workers.append(thread)

    log(f"activation phase: 32 clients, {total} requests, activate {second} and roll back to {first}")
    result = run_clients(served, needs, 32, total, deadline, on_progress=progress)
    for thread in workers:
        thread.join()
    summary = stats([result])
    summary["switches"] = switches
    summary["versions_served"] = result["versions"]
    return summary


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    four = report["levels"]["4"]
    activation = report["activation"]
    return [
        {
            "goal": "matcher throughput at 4 clients >= 80% of bare",
            "value": four["ratio"],
            "pass": (four["ratio"] or 0) >= 0.8,
        },
        {
            "goal": "matcher p99 at 4 clients < 20 ms",
            "value": four["matcher"]["p99_ms"],
            "pass": four["matcher"]["p99_ms"] < 20,
        },
        {
            "goal": "no failed request at 32 clients during activation and rollback",
            "value": activation["errors"],
            "pass": activation["errors"] == 0
            and all(s["status"] == 200 for s in activation["switches"])
            and len(activation["switches"]) == 2,
        },
        {
            "goal": "no failed request at any level",
            "value": sum(level[n]["errors"] for level in report["levels"].values() for n in ("bare", "matcher")),
            "pass": all(level[n]["errors"] == 0 for level in report["levels"].values() for n in ("bare", "matcher")),
        },
    ]


def markdown(report: dict[str, Any]) -> str:
    config, m = report["config"], report["machine"]
    lines = [
        f"Run on {m['date']}: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, matcher at {m['matcher_commit']}.",
        f"{config['experts']:,} generated experts (+ the sample libraries), artefact {config.get('artefact_mb')} MB, "
        f"{config['workers']} gunicorn sync workers per server, k = {config['k']} experts per request.",
        "",
        "| clients | server | requests | errors | throughput (req/s) | p50 ms | p99 ms | max ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for clients, level in report.get("levels", {}).items():
        for name in ("bare", "matcher"):
            s = level[name]
            lines.append(
                f"| {clients} | {name} | {s['requests']} | {s['errors']} | {s['throughput_rps']} | {s['p50_ms']} | "
                f"{s['p99_ms']} | {s['max_ms']} |"
            )
    lines.append("")
    for clients, level in report.get("levels", {}).items():
        lines.append(f"- {clients} clients: matcher / bare throughput = {level['ratio']}")
    activation = report.get("activation")
    if activation:
        lines += [
            "",
            f"Activation phase (32 clients, matcher): {activation['requests']} requests, {activation['errors']} errors, "
            f"{activation['throughput_rps']} req/s, p50 {activation['p50_ms']} ms, p99 {activation['p99_ms']} ms, "
            f"max {activation['max_ms']} ms; versions served: {activation['versions_served']}.",
        ]
        for s in activation["switches"]:
            lines.append(f"- {s['action']} after {s['after_requests']} requests: HTTP {s['status']} in {s['ms']} ms")
    lines += ["", "Goals:", ""]
    for goal in report.get("goals", []):
        lines.append(f"- {'PASS' if goal['pass'] else 'FAIL'}: {goal['goal']} ({goal['value']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experts", type=int, default=20000, help="generated experts added to the sample libraries")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of each server")
    parser.add_argument("--requests", type=int, default=800, help="requests per round at 1 and 4 clients (x2 at 32)")
    parser.add_argument("--activation-requests", type=int, default=3000, help="requests of the activation phase")
    parser.add_argument("--warmup", type=int, default=40, help="untimed requests to each server first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator")
    parser.add_argument("--deadline", type=float, default=1800, help="seconds after which the run stops by itself")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, models, logs)")
    parser.add_argument("--out", type=Path, default=None, help="also write the full report as JSON here")
    args = parser.parse_args(argv)
    if args.experts < K or args.requests < 1 or args.activation_requests < 3 or args.workers < 1:
        parser.error("need --experts >= 10, --requests >= 1, --activation-requests >= 3, --workers >= 1")
    report = run(args)
    print(markdown(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0 if all(goal["pass"] for goal in report.get("goals", [])) else 1


if __name__ == "__main__":
    raise SystemExit(main())
