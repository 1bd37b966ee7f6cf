"""The load benchmark still runs end to end (at a tiny size: speed is measured by hand, not in tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_load_benchmark_runs_small(tmp_path) -> None:
    out = tmp_path / "load.json"
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/load.py",
            "--experts",
            "200",
            "--workers",
            "1",
            "--requests",
            "12",
            "--activation-requests",
            "60",
            "--warmup",
            "4",
            "--deadline",
            "240",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: a speed goal missed at this size
    report = json.loads(out.read_text())
    assert set(report["levels"]) == {"1", "4", "32"}
    for level in report["levels"].values():
        assert level["bare"]["errors"] == 0 and level["matcher"]["errors"] == 0
    activation = report["activation"]
    assert activation["errors"] == 0 and [s["status"] for s in activation["switches"]] == [200, 200]
    assert len(activation["versions_served"]) == 2  # both versions answered during the phase
    assert "| 4 | matcher |" in result.stdout
