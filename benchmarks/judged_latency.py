#!/usr/bin/env python3
"""Single-need latency of ``recommend`` with the re-ranker learnt from judgments, in one run.

On a labelled benchmark folder (``../shared/bench/zh`` by default: 19,424 web-page titles, real search
queries), the product path fits one version: ``matcher train --needs … --experts … --judgments …``
(:func:`matcher.jobs.training.train_files`) on the judgments of ``1 - --test-share`` of the needs,
loaded as ``matcher batch --model`` loads it. Then, one held-out need at a time, interleaved in a
rotating order so that the noise of a shared machine falls on all alike:

* ``recommend, judgments re-ranker``: ``Matcher.recommend(text, k=10)`` of that version (the weighted
  sum's ``rerank_depth`` best re-scored by :class:`~matcher.matching.judgments.JudgedReranker`, reasons);
* ``recommend, weighted sum``: the same fitted matcher with its re-ranker detached;
* ``reference, dense q``: scikit-learn's char 1–2-gram TF-IDF, ``X @ q.toarray().ravel()``, top 10
  (as in ``latency.py``).

Usage::

    .venv/bin/python benchmarks/judged_latency.py --bench ../shared/bench/zh --queries 300 --out /tmp/judged.json
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import K, Reference, emit, machine, summary, timed

from matcher.jobs.training import train_files
from matcher.matching import persist
from matcher.quality.benchmark import load_bench

ROOT = Path(__file__).resolve().parents[1]


def run(args: argparse.Namespace) -> dict[str, Any]:
    logging.getLogger("jieba").setLevel(logging.WARNING)
    info = machine()
    load_before = os.getloadavg()
    bench = load_bench(args.bench)
    needs = bench.need_frame()
    order = np.random.default_rng(args.seed).permutation(len(needs))
    n_test = round(len(needs) * args.test_share)
    train, test = needs.iloc[order[n_test:]], needs.iloc[order[:n_test]]
    wanted = set(train["id"])
    judged = [(n, e, g) for n, q in bench.qrels.items() if n in wanted for e, g in q.items()]
    with tempfile.TemporaryDirectory(prefix="judged-latency.") as folder:
        work = Path(folder)
        with (work / "needs.jsonl").open("w", encoding="utf-8") as handle:
            for need_id, text in zip(train["id"], train["text"], strict=True):
                handle.write(json.dumps({"id": need_id, "text": text}, ensure_ascii=False) + "\n")
        pd.DataFrame(judged, columns=["need_id", "expert_id", "relevance"]).to_csv(work / "judgments.csv", index=False)
        _, fit_seconds = timed(
            "matcher train --judgments",
            lambda: train_files(
                work / "needs.jsonl",
                {"expert": bench.folder / "experts.jsonl"},
                work / "model",
                judgments=work / "judgments.csv",
            ),
        )
        judged_model, _ = persist.load_folder(work / "model")
    plain_model = copy.copy(judged_model)
    plain_model.reranker_ = None
    reference, _ = timed(
        "fit reference", lambda: Reference(bench.experts["text"].tolist(), bench.experts["id"].to_numpy())
    )

    def recommend(model: Any) -> Any:
        return lambda text: [r["id"] for r in model.recommend({"text": text}, k=K, target_types=["expert"])["expert"]]

    methods = {
        "recommend, judgments re-ranker": recommend(judged_model),
        "recommend, weighted sum": recommend(plain_model),
        "reference, dense q": lambda text: reference.dense_query({"text": text}),
    }
    texts = test["text"].tolist()
    timed_texts, warmup = texts[: args.queries], texts[args.queries : args.queries + args.warmup]
    for text in warmup:
        for method in methods.values():
            method(text)
    names = list(methods)
    times: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    print(f"[judged-latency] timing {len(timed_texts)} needs, interleaved", file=sys.stderr, flush=True)
    for i, text in enumerate(timed_texts):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter_ns()
            methods[name](text)
            times[name].append((time.perf_counter_ns() - start) / 1e6)
    stats = {name: summary(values) for name, values in times.items()}
    med = {name: s["median_ms"] for name, s in stats.items()}
    p99 = {name: s["p99_ms"] for name, s in stats.items()}
    pairs = [
        ("recommend, judgments re-ranker", "recommend, weighted sum"),
        ("recommend, judgments re-ranker", "reference, dense q"),
        ("recommend, weighted sum", "reference, dense q"),
    ]
    return {
        "config": {
            "bench": str(args.bench),
            "experts": len(bench.experts),
            "train_needs": len(train),
            "judgments": len(judged),
            "queries": len(timed_texts),
            "warmup": len(warmup),
            "seed": args.seed,
            "rerank_depth": judged_model.rerank_depth,
            "reranked": judged_model.reranker_.target_types_,
        },
        "machine": {**info, "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "train_seconds": fit_seconds,
        "latency": stats,
        "ratios": {f"{a} / {b}": {"median": med[a] / med[b], "p99": p99[a] / p99[b]} for a, b in pairs},
    }


def markdown(report: dict[str, Any]) -> str:
    config, info = report["config"], report["machine"]
    lines = [
        f"{config['experts']} targets, {config['queries']} held-out needs timed, a version trained on "
        f"{config['judgments']} judgments of {config['train_needs']} needs ({report['train_seconds']:.0f} s), "
        f"rerank_depth {config['rerank_depth']}; {info['nproc']} CPUs ({info['cpu']}), {info['date']}, "
        f"load {info['loadavg_before'][0]:.2f} before, {info['loadavg_after'][0]:.2f} after",
        "",
        "| method | needs | median ms | p99 ms | mean ms |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {name} | {s['n']} | {s['median_ms']:.2f} | {s['p99_ms']:.2f} | {s['mean_ms']:.2f} |"
            for name, s in report["latency"].items()
        ],
        "",
        "Ratios, same run (median; p99):",
        "",
        *[f"- {pair}: {r['median']:.3g}×; {r['p99']:.3g}×" for pair, r in report["ratios"].items()],
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench" / "zh", help="benchmark folder")
    parser.add_argument("--queries", type=int, default=300, help="held-out needs timed")
    parser.add_argument("--warmup", type=int, default=20, help="further held-out needs run untimed first")
    parser.add_argument("--test-share", type=float, default=0.2, help="share of the needs held out")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument("--out", type=Path, default=None, help="also write the full report as JSON here")
    args = parser.parse_args(argv)
    if args.queries < 1 or args.warmup < 1 or not 0.01 <= args.test_share <= 0.9:
        parser.error("need --queries >= 1, --warmup >= 1 and 0.01 <= --test-share <= 0.9")
    if not (args.bench / "qrels.csv").is_file():
        parser.error(f"{args.bench}: not a benchmark folder (no qrels.csv)")
    report = run(args)
    emit(markdown(report), report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
