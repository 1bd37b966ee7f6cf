"""``matcher batch`` without ``--needs``: the database's open needs, the active model, resume, engines."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from matcher.errors import BatchError
from matcher.jobs import batch
from matcher.jobs.batch import run_batch, run_batch_db
from matcher.jobs.chunks import ChunkOptions, parts_dir, score_chunk
from matcher.jobs.executors import DaskEngine, EngineError, make_engine
from matcher.text.processes import usable_cores
from matcher.text.segment import segmenter
from tests.conftest import ROOT
from tests.test_batch import EXPERTS, NEEDS, run_cli, targets_of, write_library, write_rows

PAUSING = Path(__file__).parent / "pausing.py"  # runs the command with a pause after each chunk


def _rows_by_need(path: Path) -> dict[str, dict[str, list[tuple[str, float]]]]:
    frame = pq.read_table(path).to_pandas()
    result: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for need_id, target_type, target_id, _, score in frame.itertuples(index=False):
        result.setdefault(need_id, {}).setdefault(target_type, []).append((target_id, score))
    return result


def _open_needs(url: str) -> list[str]:
    from matcher.store.libraries import load_libraries_db
    from matcher.store.transactions import transaction

    with transaction(url) as session:
        needs = load_libraries_db(session).needs
    return needs.loc[needs["status"] == "open", "id"].tolist()


def _env(trained, url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MATCHER_MODELS_DIR=str(trained["models"]), MATCHER_DATA_DIR=str(trained["data"]), DATABASE_URL=url)
    env.update(extra)
    env.pop("COLUMNS", None)
    return env


def _cli(*args: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env=env)


# --------------------------------------------------------------------------- database mode


def test_rows_equal_the_http_api_on_the_database(trained, make_app, db_url: str, tmp_path: Path) -> None:
    """Open needs only; excluded targets (unavailable, fully booked) are left out exactly as the API does."""
    from matcher.store.crud import replace_record
    from matcher.store.engagements import record_feedback
    from matcher.store.seed import ensure_database
    from matcher.store.transactions import transaction

    ensure_database(db_url, trained["data"])
    open_ids = _open_needs(db_url)
    client = make_app(DATABASE_URL=db_url).test_client()
    first = client.post("/v1/match", json={"need_id": open_ids[0], "k": 5}).get_json()["results"]
    unavailable, booked = first["expert"][0]["id"], first["expert"][1]["id"]
    with transaction(db_url) as session:
        from matcher.store.crud import get_record

        record = get_record(session, "experts", unavailable)
        replace_record(session, "experts", unavailable, {**record, "available": False})
        expert = get_record(session, "experts", booked)
        replace_record(session, "experts", booked, {**expert, "capacity": expert["open_engagements"] + 1})
        record_feedback(
            session, {"need_id": open_ids[-1], "target_type": "expert", "target_id": booked, "decision": "accepted"}
        )
    open_ids = _open_needs(db_url)  # the last one is matched now

    out = tmp_path / "matches.parquet"
    report = run_batch_db(
        out,
        k=5,
        database_url=db_url,
        models_dir=trained["models"],
        data_dir=trained["data"],
        chunks=ChunkOptions(chunk_size=40),
    )
    assert report.needs == len(open_ids) and report.model_version == trained["version"]
    rows = _rows_by_need(out)
    assert set(rows) <= set(open_ids)
    found = {target for need in rows.values() for target, _ in need.get("expert", [])}
    assert unavailable not in found and booked not in found
    for need_id in [*open_ids[:6], *open_ids[-3:]]:
        response = client.post("/v1/match", json={"need_id": need_id, "k": 5})
        assert response.status_code == 200, response.get_json()
        expected = {
            target_type: [(r["id"], r["score"]) for r in results]
            for target_type, results in response.get_json()["results"].items()
            if results
        }
        assert rows.get(need_id, {}) == expected

    manifest = json.loads(batch.manifest_path(out).read_text(encoding="utf-8"))
    assert manifest["model_version"] == trained["version"]
    assert manifest["counts"]["needs"] == len(open_ids) and manifest["counts"]["rows"] == report.rows
    assert manifest["parameters"] == {"k": 5, "chunk_size": 40, "target_types": ["expert", "resource", "project"]}
    assert set(manifest["timings_seconds"]) == {"load", "sync_targets", "match", "write", "total"}
    # by default one scoring process per usable core
    assert manifest["output_sha256"] and manifest["engine"] == {"engine": "local", "workers": usable_cores()}
    assert manifest["segmenter"] == segmenter()
    assert not parts_dir(out).exists()


def test_cli_database_mode(trained, tmp_path: Path) -> None:
    env = _env(trained, trained["database"])
    out = tmp_path / "open.csv"
    result = _cli("--out", out, "--k", "3", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"with model version {trained['version']}" in result.stdout and "open needs" in result.stdout
    with out.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["need_id", "target_type", "target_id", "rank", "score"]
    assert {r[0] for r in rows[1:]} <= set(_open_needs(trained["database"]))
    again = tmp_path / "again.csv"
    assert (
        _cli("--out", again, "--k", "3", "--workers", "2", "--chunk-size", "25", env=env, cwd=tmp_path).returncode == 0
    )
    assert again.read_bytes() == out.read_bytes()
    check = _cli("--check", env=env, cwd=tmp_path)
    assert check.returncode == 0 and "ready to match the open needs" in check.stdout


@pytest.mark.parametrize(
    "args, refused",
    [
        (["--experts", "e.csv"], "--experts goes with --needs"),
        (["--params", "p.json", "--projects", "p.csv"], "--projects, --params go with --needs"),
        (["--skip-invalid", "r.csv"], "--skip-invalid goes with --needs"),
    ],
)
def test_cli_refuses_target_files_without_needs(trained, tmp_path: Path, args: list[str], refused: str) -> None:
    result = _cli(*args, "--out", tmp_path / "o.csv", env=_env(trained, trained["database"]), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"matcher: {refused}") and result.stderr.count("\n") == 1
    assert not (tmp_path / "o.csv").exists()


def test_cli_needs_without_experts(tmp_path: Path) -> None:
    paths = write_library(tmp_path / "in")
    result = _cli("--needs", paths["needs"], "--out", tmp_path / "o.csv", env=dict(os.environ), cwd=tmp_path)
    assert result.returncode == 2 and "'--experts'" in result.stderr


def test_no_active_model_is_a_clear_error(trained, tmp_path: Path) -> None:
    env = _env(trained, trained["database"], MATCHER_MODELS_DIR=str(tmp_path / "empty"))
    result = _cli("--out", tmp_path / "o.csv", env=env, cwd=tmp_path)
    assert result.returncode == 2 and "no active model" in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------- resume


def _kill_after(args: list[str | Path], env: dict[str, str], cwd: Path, chunks: int) -> None:
    """Start ``matcher batch ARGS`` pausing after each chunk, and SIGKILL it once ``chunks`` are done."""
    process = subprocess.Popen(
        [sys.executable, str(PAUSING), "chunk", "0.5", "batch", *map(str, args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    deadline = time.monotonic() + 120
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if f"{chunks} of " in line and "chunks done" in line:
                break
            assert time.monotonic() < deadline, "the run did not report its chunks"
        else:
            pytest.fail(f"the run ended before {chunks} chunks (exit {process.wait()})")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def test_resume_after_a_kill_gives_the_same_bytes(trained, tmp_path: Path) -> None:
    """SIGKILL after 3 chunks; --resume skips them and writes the bytes of an uninterrupted run (CSV: below)."""
    name = "resume.parquet"
    env = _env(trained, trained["database"])
    reference = tmp_path / f"reference-{name}"
    assert _cli("--out", reference, "--chunk-size", "20", env=env, cwd=tmp_path).returncode == 0
    out = tmp_path / name
    _kill_after(["--out", out, "--chunk-size", "20"], env, tmp_path, chunks=3)
    assert not out.exists()  # the final file appears only when complete
    psutil = pytest.importorskip("psutil")
    deadline = time.monotonic() + 30  # its worker processes (one per core, by default) end with it
    while any(str(out) in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])):
        assert time.monotonic() < deadline, "a worker process outlived the killed batch job"
        time.sleep(0.2)
    parts = sorted(p.name for p in parts_dir(out).iterdir())
    assert "state.json" in parts and len([p for p in parts if p.endswith(".parquet")]) >= 3

    refused = _cli("--out", out, "--chunk-size", "20", "--k", "4", "--resume", env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"matcher: cannot resume: {parts_dir(out)} holds the chunks of a run")
    assert "k 10 then, 4 now" in refused.stderr and "run without --resume to start over" in refused.stderr

    resumed = _cli("--out", out, "--chunk-size", "20", "--resume", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "(resumed: " in resumed.stdout
    assert out.read_bytes() == reference.read_bytes()
    assert not parts_dir(out).exists()


def test_resume_in_file_mode_refuses_other_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_library(tmp_path / "in")
    out = tmp_path / "out.csv"
    reference = tmp_path / "reference.csv"
    run_batch(paths["needs"], targets_of(paths), reference, chunks=ChunkOptions(chunk_size=1))
    calls: list[int] = []
    original = batch.Matcher.match_columns  # what each chunk calls

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(batch.Matcher, "match_columns", failing)
    with pytest.raises(KeyboardInterrupt):  # in this process: the interruption is the third chunk's
        run_batch(paths["needs"], targets_of(paths), out, chunks=ChunkOptions(chunk_size=1, workers=1))
    monkeypatch.undo()
    assert not out.exists() and len(list(parts_dir(out).glob("*.parquet"))) == 2

    write_rows(paths["expert"], [*EXPERTS[:-1], {**EXPERTS[-1], "capacity": 0}])
    with pytest.raises(BatchError, match=r"cannot resume: .* \(different targets"):
        run_batch(paths["needs"], targets_of(paths), out, chunks=ChunkOptions(chunk_size=1, resume=True))
    write_rows(paths["expert"], EXPERTS)
    report = run_batch(paths["needs"], targets_of(paths), out, chunks=ChunkOptions(chunk_size=1, resume=True))
    assert report.resumed == 2 and report.chunks == len(NEEDS)
    assert out.read_bytes() == reference.read_bytes()
    assert not parts_dir(out).exists()


def test_a_run_without_resume_starts_over(tmp_path: Path) -> None:
    paths = write_library(tmp_path / "in")
    out = tmp_path / "out.csv"
    stale = parts_dir(out)
    stale.mkdir()
    (stale / "state.json").write_text("{}", encoding="utf-8")
    (stale / "00000.parquet").write_bytes(b"not parquet")
    report = run_batch(paths["needs"], targets_of(paths), out)
    assert report.resumed == 0 and out.exists() and not stale.exists()


def test_chunks_bound_the_needs_scored_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory grows with the chunk: every sparse product sees at most ``chunk_size`` needs."""
    paths = write_library(tmp_path / "in")
    sizes: list[int] = []
    original = batch.Matcher.match_columns  # what each chunk calls

    def spy(self, needs, **kwargs):
        sizes.append(len(needs))
        return original(self, needs, **kwargs)

    monkeypatch.setattr(batch.Matcher, "match_columns", spy)
    run_batch(paths["needs"], targets_of(paths), tmp_path / "out.csv", chunks=ChunkOptions(chunk_size=2, workers=1))  # the spy sees this process's chunks
    assert sizes == [2, 1]
    sizes.clear()
    monkeypatch.setattr("matcher.jobs.chunks.CELLS_PER_CHUNK", 5)  # 5 experts: one need per chunk
    run_batch(paths["needs"], targets_of(paths), tmp_path / "out2.csv", chunks=ChunkOptions(chunk_size=2, workers=1))  # the spy sees this process's chunks
    assert sizes == [1, 1, 1]


# ------------------------------------------------------------------------------ engines


def test_local_workers_give_the_same_bytes(tmp_path: Path) -> None:
    paths = write_library(tmp_path / "in")
    one, two, default = tmp_path / "one.parquet", tmp_path / "two.parquet", tmp_path / "default.parquet"
    run_batch(paths["needs"], targets_of(paths), one, chunks=ChunkOptions(chunk_size=1, workers=1))
    run_batch(paths["needs"], targets_of(paths), two, chunks=ChunkOptions(chunk_size=1, workers=3))
    run_batch(paths["needs"], targets_of(paths), default, chunks=ChunkOptions(chunk_size=1))  # one process per usable core
    assert one.read_bytes() == two.read_bytes() == default.read_bytes()


def test_workers_default_to_the_usable_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(
        "matcher.jobs.chunks.make_engine",
        lambda name, **options: seen.append(options["workers"]) or make_engine(name, **options),
    )
    paths = write_library(tmp_path / "in")
    run_batch(paths["needs"], targets_of(paths), tmp_path / "o.csv", chunks=ChunkOptions(chunk_size=2))
    assert seen == [len(os.sched_getaffinity(0))]


def test_dask_engine_gives_the_same_bytes(trained, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    paths = write_library(tmp_path / "in")
    local_files, local_db = tmp_path / "files.csv", tmp_path / "db.parquet"
    run_batch(paths["needs"], targets_of(paths), local_files, chunks=ChunkOptions(chunk_size=1))
    db = {"database_url": trained["database"], "models_dir": trained["models"], "data_dir": trained["data"]}
    run_batch_db(local_db, chunks=ChunkOptions(chunk_size=30), **db)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        dask_files, dask_db = tmp_path / "dask-files.csv", tmp_path / "dask-db.parquet"
        run_batch(
            paths["needs"],
            targets_of(paths),
            dask_files,
            chunks=ChunkOptions(chunk_size=1, engine="dask", scheduler=cluster.scheduler_address),
        )
        dask = ChunkOptions(chunk_size=30, engine="dask", scheduler=cluster.scheduler_address)
        report = run_batch_db(dask_db, chunks=dask, **db)
    assert dask_files.read_bytes() == local_files.read_bytes()
    assert dask_db.read_bytes() == local_db.read_bytes()
    manifest = json.loads(batch.manifest_path(dask_db).read_text(encoding="utf-8"))
    assert manifest["engine"]["engine"] == "dask" and manifest["engine"]["workers"] == 2
    assert report.chunks == manifest["counts"]["chunks"] > 1


def test_engine_options_are_checked(tmp_path: Path) -> None:
    paths = write_library(tmp_path / "in")
    with pytest.raises(BatchError, match="needs --scheduler"):
        run_batch(paths["needs"], targets_of(paths), tmp_path / "o.csv", chunks=ChunkOptions(engine="dask"))
    with pytest.raises(BatchError, match="--scheduler goes with --engine dask"):
        run_batch(
            paths["needs"], targets_of(paths), tmp_path / "o.csv", chunks=ChunkOptions(scheduler="tcp://127.0.0.1:1")
        )
    with pytest.raises(BatchError, match="unknown engine"):
        run_batch(paths["needs"], targets_of(paths), tmp_path / "o.csv", chunks=ChunkOptions(engine="spark"))
    with pytest.raises(EngineError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        list(DaskEngine("tcp://127.0.0.1:9", timeout=0.5).run(score_chunk, None, [(0, None)]))
    assert not (tmp_path / "o.csv").exists()


# ---------------------------------------------------------------------------- privacy


def test_rejects_are_redacted(tmp_path: Path) -> None:
    paths = write_library(tmp_path / "in")
    write_rows(paths["needs"], [*NEEDS, {**NEEDS[0], "text": "请联系 13812345678 或 a.b@example.com"}])
    rejects = tmp_path / "rejects.csv"
    run_batch(paths["needs"], targets_of(paths), tmp_path / "out.csv", skip_invalid=rejects)
    text = rejects.read_text(encoding="utf-8-sig")
    assert "13812345678" not in text and "example.com" not in text
    assert "[电话]" in text and "[邮箱]" in text
    frame = pd.read_csv(rejects, encoding="utf-8-sig")
    assert frame["reason"].str.contains("duplicate id").all()


# ---------------------------------------------------------------------------- benchmark


def test_batch_benchmark_runs_small(tmp_path: Path) -> None:
    """The benchmark script still runs (speed is measured by hand, at full size, not in tests)."""
    out = tmp_path / "batch.json"
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/batch.py",
            "--experts",
            "300",
            "--needs",
            "80",
            "--cases",
            "reference,matcher-2",
            "--no-reference-again",
            *("--cache", str(tmp_path / "cache"), "--out", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["cases"]) == {"reference", "matcher-2"}
    assert report["cases"]["matcher-2"]["throughput_vs_reference"] > 0
    assert "| matcher-2 |" in result.stdout


def test_fit_sample_indexes_every_target(tmp_path: Path) -> None:
    """A vocabulary learnt from a sample still indexes and scores every target, the same way each run."""
    paths = write_library(tmp_path / "in")
    from matcher.inputs.frames import table_targets_frame as targets_frame
    from matcher.jobs.batch import fit_matcher, read_inputs

    _, tables = read_inputs(paths["needs"], targets_of(paths))
    frame = targets_frame(tables)
    sampled = fit_matcher(frame, fit_sample=3)
    assert sampled.n_targets_ == fit_matcher(frame).n_targets_
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    run_batch(paths["needs"], targets_of(paths), one, fit_sample=3)
    run_batch(paths["needs"], targets_of(paths), two, fit_sample=3)
    assert one.read_bytes() == two.read_bytes()
    whole = tmp_path / "whole.csv"
    run_batch(paths["needs"], targets_of(paths), whole, fit_sample=100)  # larger than the library: a plain fit
    run_batch(paths["needs"], targets_of(paths), tmp_path / "plain.csv")
    assert whole.read_bytes() == (tmp_path / "plain.csv").read_bytes()
