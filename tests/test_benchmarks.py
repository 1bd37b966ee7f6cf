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


def _corpus(folder, experts: int, needs: int):
    """A tiny perf-style corpus (gen.py's layout: medium/experts.txt and medium/needs.txt) from the toy texts."""
    texts = [
        "擅长个案管理与小组工作，长期关注留守儿童和困境儿童的社区服务，熟悉社工站运营",
        "专注于居家养老、失能老人照护与长者饭堂，参与过时间银行项目",
        "主持社区治理与居民议事协商，熟悉网格化管理、党建引领和三社联动",
        "从事心理援助、危机干预与哀伤辅导，开展自杀预防和情绪疏导培训",
        "乡村振兴、电商助农与返乡创业，驻村帮扶，合作社和集体经济",
    ]
    medium = folder / "medium"
    medium.mkdir(parents=True)
    (medium / "experts.txt").write_text("\n".join(texts[i % 5] + str(i) for i in range(experts)) + "\n", encoding="utf-8")
    (medium / "needs.txt").write_text("\n".join(texts[(i * 3) % 5][:20] for i in range(needs)) + "\n", encoding="utf-8")
    return folder


def test_batch_benchmark_runs_on_a_corpus(tmp_path) -> None:
    corpus = _corpus(tmp_path / "perf", 120, 30)
    out = tmp_path / "batch.json"
    command = [sys.executable, "benchmarks/batch.py", "--corpus", str(corpus), "--cache", str(tmp_path / "cache")]
    command += ["--cases", "reference,matcher,matcher-1,cli", "--no-reference-again", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    cases = json.loads(out.read_text())["cases"]
    assert cases["matcher"]["same_bytes_as_matcher_1"] is True and cases["cli"]["same_bytes_as_matcher_1"] is True
    assert cases["matcher"]["peak_pss_mib"] > 0 and cases["cli"]["needs"] == 30


def test_segmenters_and_stages_benchmarks_run_small(tmp_path) -> None:
    corpus = _corpus(tmp_path / "perf", 60, 20)
    out = tmp_path / "segmenters.json"
    command = [sys.executable, "benchmarks/segmenters.py", "--corpus", str(corpus / "medium"), "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    for texts in report["results"]:
        for candidate in texts["candidates"].values():
            if candidate.get("skipped") is None and "matcher" in str(candidate):
                assert candidate["tokens_differing"] == 0
    if report["segmenter"]["name"] == "rjieba":
        assert all(r["candidates"]["matcher (rjieba)"]["tokens_differing"] == 0 for r in report["results"])
    for name, prefix, lines in (("needs", "n", 20), ("experts", "e", 60)):
        rows = (corpus / "medium" / f"{name}.txt").read_text(encoding="utf-8").splitlines()[:lines]
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"id": f"{prefix}{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(rows)),
            encoding="utf-8",
        )
    stages = tmp_path / "stages.json"
    command = [sys.executable, "benchmarks/stages.py", "--needs", str(tmp_path / "needs.jsonl")]
    command += ["--experts", str(tmp_path / "experts.jsonl"), "--out", str(stages)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    timed = json.loads(stages.read_text())["stages"]
    assert timed["fit"] > 0 and timed["score / vectorise the needs"] > 0 and "| stage | s | calls |" in result.stdout


def test_judged_latency_benchmark_runs_small(tmp_path) -> None:
    """On a tiny benchmark folder of our own (the format of ../shared/bench/zh)."""
    topics = ["个案管理", "小组工作", "社区治理", "养老服务", "儿童保护", "心理援助"]
    bench = tmp_path / "bench"
    bench.mkdir()
    with (bench / "experts.jsonl").open("w", encoding="utf-8") as handle:
        for i in range(60):
            text = f"专家{i}长期从事{topics[i % 6]}，也做过{topics[(i + 1) % 6]}的培训"
            handle.write(json.dumps({"id": f"E{i}", "text": text}, ensure_ascii=False) + "\n")
    qrels = ["need_id,expert_id,relevance"]
    with (bench / "needs.jsonl").open("w", encoding="utf-8") as handle:
        for n in range(60):
            handle.write(json.dumps({"id": f"N{n}", "text": f"需要{topics[n % 6]}方面的指导"}, ensure_ascii=False) + "\n")
            qrels += [f"N{n},E{n % 6},2", f"N{n},E{(n % 6) + 6},1", f"N{n},E{(n + 3) % 6},0"]
    (bench / "qrels.csv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    out = tmp_path / "judged.json"
    command = [sys.executable, "benchmarks/judged_latency.py", "--bench", str(bench), "--test-share", "0.5"]
    command += ["--queries", "5", "--warmup", "2", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["config"]["reranked"] == ["expert"] and report["config"]["train_needs"] == 30
    assert set(report["latency"]) == {"recommend, judgments re-ranker", "recommend, weighted sum", "reference, dense q"}
    assert "recommend, judgments re-ranker / recommend, weighted sum" in result.stdout
    bad = subprocess.run([*command[:2], "--bench", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a benchmark folder" in bad.stderr
