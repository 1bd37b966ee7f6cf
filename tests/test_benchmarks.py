"""The benchmark scripts still run (at a tiny size: speed is measured by hand, not in tests)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_latency_benchmark_runs_small(tmp_path) -> None:
    out = tmp_path / "latency.json"
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/latency.py",
            "--experts",
            "300",
            "--queries",
            "5",
            "--bm25-queries",
            "2",
            "--warmup",
            "2",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert "matcher.recommend" in result.stdout and "reference" in result.stdout
    assert report["config"]["experts"] == 300


def test_batch_benchmark_runs_small(tmp_path) -> None:
    out = tmp_path / "batch.json"
    cache = tmp_path / "cache"
    command = [sys.executable, "benchmarks/batch.py", "--experts", "300", "--needs", "60", "--cache", str(cache)]
    command += ["--cases", "reference,matcher-1,nocache", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["cases"]) == {"reference", "matcher-1", "nocache", "reference-again"}
    assert report["cases"]["matcher-1"]["agreement_at_10_with_matcher"] == 1.0
    assert report["cases"]["nocache"]["agreement_at_10_with_matcher"] == 1.0  # the cache changes no result
    assert report["cases"]["matcher-1"]["throughput_vs_reference"] > 0
    assert "× reference" in result.stdout
