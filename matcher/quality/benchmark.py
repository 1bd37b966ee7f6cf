"""Evaluation on an external benchmark, measured through the product's own commands.

A labelled retrieval benchmark in the format of ``../shared/bench/zh`` (``experts.jsonl``,
``needs.jsonl``, ``qrels.csv``, ``pairs.csv``): :func:`evaluate_bench` runs ``matcher batch``
zero-shot, and ``matcher train --judgments`` then ``matcher batch --model`` cross-validated over the
benchmark's needs (:func:`judgments_cv_run`), beside the plain character TF-IDF baseline
(:mod:`matcher.quality.baseline`), each figure with a bootstrap confidence interval.
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from matcher.jobs.batch import run_batch, run_batch_model
from matcher.jobs.chunks import ChunkOptions
from matcher.jobs.training import train_files
from matcher.quality import metrics
from matcher.quality.baseline import plain_char_bm25, plain_char_tfidf
from matcher.quality.results import result_row

logger = logging.getLogger(__name__)

__all__ = ["BENCH_KS", "Bench", "bench_metrics", "evaluate_bench", "judgments_cv_run", "load_bench", "paired_gains"]

BENCH_KS = (1, 3, 5, 10, 20)


@dataclass
class Bench:
    """A labelled retrieval benchmark: targets (experts), needs, graded judgements and preference pairs."""

    experts: pd.DataFrame  # id, text
    needs: pd.DataFrame  # id, text
    qrels: dict[str, dict[str, int]]  # need id -> expert id -> label (0 = judged not relevant)
    pairs: list[tuple[str, str, str, int, int]]  # need, expert a, expert b, label a, label b
    folder: Path | None = None  # where it was loaded from (its experts.jsonl is scored from there)

    def subset(self, n_needs: int, seed: int = 0) -> Bench:
        """The first ``n_needs`` judged needs in a seeded random order (every expert kept)."""
        judged = [n for n in self.needs["id"] if any(v > 0 for v in self.qrels.get(n, {}).values())]
        chosen = set(np.random.default_rng(seed).permutation(judged)[:n_needs])
        return Bench(
            experts=self.experts,
            needs=self.needs.loc[self.needs["id"].isin(chosen)].reset_index(drop=True),
            qrels={n: q for n, q in self.qrels.items() if n in chosen},
            pairs=[p for p in self.pairs if p[0] in chosen],
            folder=self.folder,
        )

    def targets(self) -> pd.DataFrame:
        """The experts as a matcher targets frame (no tags, counties or capacity)."""
        n = len(self.experts)
        return pd.DataFrame(
            {
                "target_type": "expert",
                "id": self.experts["id"],
                "name": self.experts["text"],
                "texts": [[t] for t in self.experts["text"]],
                "tags": [[] for _ in range(n)],
                "counties": [[] for _ in range(n)],
                "org_id": None,
                "capacity": pd.array([None] * n, dtype="Int64"),
                "load": 0,
                "available": True,
            }
        )

    def need_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"id": self.needs["id"], "text": self.needs["text"]})

    def __deepcopy__(self, memo: dict) -> Bench:  # read-only data: estimators holding it share it
        return self


def load_bench(folder: str | Path, split: str = "dev") -> Bench:
    """Read a benchmark folder in the format of ``../shared/bench/zh`` (see its README)."""
    folder = Path(folder)
    for name in ("experts.jsonl", "needs.jsonl", "qrels.csv"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: not found (is this a benchmark folder?)")

    def jsonl(name: str) -> pd.DataFrame:
        with (folder / name).open(encoding="utf-8") as handle:
            return pd.DataFrame([json.loads(line) for line in handle if line.strip()])[["id", "text"]]

    needs = jsonl("needs.jsonl")
    if (folder / "split.csv").is_file():
        splits = pd.read_csv(folder / "split.csv", dtype=str)
        needs = needs.loc[needs["id"].isin(set(splits.loc[splits["split"] == split, "need_id"]))]
    wanted = set(needs["id"])
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["need_id"] in wanted:
                qrels.setdefault(row["need_id"], {})[row["expert_id"]] = int(row["relevance"])
    pairs = []
    if (folder / "pairs.csv").is_file():
        with (folder / "pairs.csv").open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["need_id"] in wanted:
                    pairs.append(
                        (row["need_id"], row["expert_a"], row["expert_b"], int(row["label_a"]), int(row["label_b"]))
                    )
    return Bench(
        experts=jsonl("experts.jsonl"), needs=needs.reset_index(drop=True), qrels=qrels, pairs=pairs, folder=folder
    )


def _top_and_judged(score_block: Callable[[pd.DataFrame], np.ndarray], bench: Bench, depth: int) -> pd.DataFrame:
    """Each need's ``depth`` best experts by a scorer, plus its judged experts: need_id, expert_id, score."""
    ids = bench.experts["id"].to_numpy(dtype=object)
    column = {e: j for j, e in enumerate(ids)}
    needs = bench.need_frame()
    parts = []
    for start in range(0, len(needs), 500):
        chunk = needs.iloc[start : start + 500]
        scores = score_block(chunk)
        for row, need_id in enumerate(chunk["id"]):
            top = np.argpartition(-scores[row], min(depth, len(ids) - 1))[:depth]
            judged = [column[e] for e in bench.qrels.get(need_id, {}) if e in column]
            chosen = np.unique(np.r_[top, judged].astype(int))
            parts.append(
                pd.DataFrame(
                    {
                        "need_id": need_id,
                        "expert_id": ids[chosen],
                        "score": scores[row, chosen],
                        "retrieved": np.isin(chosen, top),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def _per_need(
    run: pd.DataFrame, bench: Bench, ks: Sequence[int]
) -> tuple[dict[tuple[str, int | None], list[float]], dict[str, list[float]]]:
    """Per judged need (in ``bench.needs`` order): each metric's value, and PAIR's right and wrong counts."""
    scores = {n: dict(zip(g["expert_id"], g["score"], strict=True)) for n, g in run.groupby("need_id", sort=False)}
    judged = [n for n in bench.needs["id"] if any(v >= 1 for v in bench.qrels.get(n, {}).values())]
    per: dict[tuple[str, int | None], list[float]] = {}
    for need_id in judged:
        gains = bench.qrels[need_id]
        relevant = {e for e, g in gains.items() if g >= 1}
        ranked = [e for e, _ in sorted(scores.get(need_id, {}).items(), key=lambda kv: (-kv[1], kv[0]))]
        for k in ks:
            per.setdefault(("nDCG", k), []).append(metrics.ndcg_at_k(ranked, gains, k))
        per.setdefault(("MRR", 10), []).append(metrics.reciprocal_rank(ranked, relevant, 10))
        per.setdefault(("MAP", None), []).append(metrics.average_precision(ranked[:100], relevant))
        for k in (10, 100):
            per.setdefault(("recall", k), []).append(metrics.recall_at_k(ranked, relevant, k))
    # PAIR = right / wrong over preference pairs whose two experts are both in the run
    counts: dict[str, list[float]] = {}
    for need_id, a, b, label_a, label_b in bench.pairs:
        s = scores.get(need_id, {})
        if label_a == label_b or a not in s or b not in s:
            continue
        right_wrong = counts.setdefault(need_id, [0.0, 0.0])
        high, low = (s[a], s[b]) if label_a > label_b else (s[b], s[a])
        right_wrong[0] += 1.0 if high > low else 0.5 if high == low else 0.0
        right_wrong[1] += 1.0 if high < low else 0.5 if high == low else 0.0
    return per, counts


def _pair_ratio(table: np.ndarray) -> float:
    """PAIR of rows of (right, wrong) counts (inf or nan when nothing is wrong: the bootstrap drops it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float64(table[:, 0].sum()) / table[:, 1].sum()


def _pair_gain(table: np.ndarray) -> float:
    """PAIR of the first two columns of (right, wrong, right, wrong) rows minus that of the last two."""
    with np.errstate(invalid="ignore"):
        return _pair_ratio(table[:, :2]) - _pair_ratio(table[:, 2:])


def bench_metrics(
    run: pd.DataFrame, bench: Bench, method: str, *, n_resamples: int = 1000, ks: Sequence[int] = BENCH_KS
) -> list[dict]:
    """nDCG@k, MRR@10, recall@10/100 and PAIR of a run (need_id, expert_id, score), as the benchmark's
    own ``evaluate.py`` computes them (ties by expert id), with bootstrap intervals over needs."""
    per, counts = _per_need(run, bench, ks)
    rows = [
        result_row("bench", method, metric, k, metrics.bootstrap_ci(values, n_resamples=n_resamples), len(values))
        for (metric, k), values in per.items()
    ]
    table = np.asarray(list(counts.values())).reshape(-1, 2)  # resampled by need
    rows.append(
        result_row(
            "bench", method, "PAIR", None, metrics.bootstrap_ci(table, _pair_ratio, n_resamples=n_resamples), len(table)
        )
    )
    return rows


def paired_gains(
    run: pd.DataFrame, other: pd.DataFrame, bench: Bench, method: str, *, n_resamples: int = 1000, k: int = 10
) -> list[dict]:
    """What ``run`` gains over ``other`` on the same needs, with paired bootstrap intervals (the same
    resampled needs for both): ``nDCG gain`` at ``k`` (mean per-need difference) and ``PAIR gain``
    (difference of the two ratios). ``method`` names the pair, e.g. ``matcher-char_tfidf``."""
    (mine, mine_counts), (theirs, their_counts) = _per_need(run, bench, (k,)), _per_need(other, bench, (k,))
    differences = np.subtract(mine[("nDCG", k)], theirs[("nDCG", k)])
    needs = sorted(set(mine_counts) | set(their_counts))
    table = np.asarray([[*mine_counts.get(n, [0.0, 0.0]), *their_counts.get(n, [0.0, 0.0])] for n in needs]).reshape(
        -1, 4
    )
    return [
        result_row(
            "bench",
            method,
            "nDCG gain",
            k,
            metrics.bootstrap_ci(differences, n_resamples=n_resamples),
            len(differences),
        ),
        result_row(
            "bench",
            method,
            "PAIR gain",
            None,
            metrics.bootstrap_ci(table, _pair_gain, n_resamples=n_resamples),
            len(table),
        ),
    ]


def _write_jsonl(path: Path, frame: pd.DataFrame) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for need_id, text in zip(frame["id"], frame["text"], strict=True):
            handle.write(json.dumps({"id": need_id, "text": text}, ensure_ascii=False) + "\n")


def _read_run(path: Path) -> pd.DataFrame:
    run = pd.read_csv(path, encoding="utf-8-sig", dtype={"need_id": str, "target_id": str})
    return run.rename(columns={"target_id": "expert_id"})[["need_id", "expert_id", "score"]]


def judgments_cv_run(
    bench: Bench,
    params: dict[str, Any] | None,
    work: Path,
    *,
    n_splits: int = 5,
    depth: int = 100,
    seed: int = 0,
) -> pd.DataFrame:
    """The product path cross-validated: per fold, ``matcher train --judgments`` on the other folds'
    needs and judgments, then ``matcher batch --model … --k depth`` on the fold's needs (files in ``work``).

    Folds are needs (shuffled with ``seed``); a need's judgments are used only to train the folds it
    is not in. Returns the concatenated run: ``need_id, expert_id, score``.
    """
    if bench.folder is None:
        raise ValueError("this benchmark has no folder: load it with load_bench")
    experts = bench.folder / "experts.jsonl"
    needs = bench.need_frame()
    folds = np.random.default_rng(seed).permutation(len(needs)) % n_splits
    runs = []
    for fold in range(n_splits):
        train, test = needs.loc[folds != fold], needs.loc[folds == fold]
        _write_jsonl(work / f"train{fold}.jsonl", train)
        _write_jsonl(work / f"test{fold}.jsonl", test)
        wanted = set(train["id"])
        judged = [(n, e, g) for n, q in bench.qrels.items() if n in wanted for e, g in q.items()]
        pd.DataFrame(judged, columns=["need_id", "expert_id", "relevance"]).to_csv(
            work / f"judgments{fold}.csv", index=False
        )
        folder = work / f"model{fold}"
        train_files(
            work / f"train{fold}.jsonl",
            {"expert": experts},
            folder,
            judgments=work / f"judgments{fold}.csv",
            params=params,
        )
        run_batch_model(folder, work / f"test{fold}.jsonl", {}, work / f"run{fold}.csv", k=depth)  # no progress bar
        runs.append(_read_run(work / f"run{fold}.csv"))
        logger.info("fold %d of %d scored", fold + 1, n_splits)
    return pd.concat(runs, ignore_index=True)


def evaluate_bench(
    bench: Bench,
    params: dict[str, Any] | None = None,
    *,
    depth: int = 100,
    n_splits: int = 5,
    n_resamples: int = 1000,
    work: Path | None = None,
) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    """The plain baselines (char TF-IDF, textbook char BM25), the zero-shot matcher (``matcher batch``
    on the files) and the judgments path cross-validated (:func:`judgments_cv_run`) on one benchmark,
    in one run.

    Every method's run is its top ``depth`` experts per need. Besides each method's figures, the rows
    hold the paired gains (:func:`paired_gains`) of the matcher over both baselines, and of the
    judgments path over the char TF-IDF baseline and the matcher. Returns the table rows and each run.
    """
    texts = bench.experts["text"].tolist()
    baseline = plain_char_tfidf(texts)
    experts = baseline.transform(texts).T.tocsr()
    bm25 = plain_char_bm25(texts)
    runs = {
        "char_tfidf": _top_and_judged(
            lambda chunk: (baseline.transform(chunk["text"]) @ experts).toarray(), bench, depth
        ),
        "char_bm25": _top_and_judged(lambda chunk: bm25(chunk["text"]), bench, depth),
    }
    for name in ("char_tfidf", "char_bm25"):
        runs[name] = runs[name].loc[runs[name]["retrieved"]]
    with tempfile.TemporaryDirectory(prefix="bench.", dir=work) as folder:
        work_dir = Path(folder)
        _write_jsonl(work_dir / "needs.jsonl", bench.need_frame())
        run_batch(
            work_dir / "needs.jsonl",
            {"expert": bench.folder / "experts.jsonl"},
            work_dir / "zero_shot.csv",
            k=depth,
            params=params,
            chunks=ChunkOptions(progress=False),
        )
        runs["matcher"] = _read_run(work_dir / "zero_shot.csv")
        runs["matcher+judgments(cv)"] = judgments_cv_run(bench, params, work_dir, n_splits=n_splits, depth=depth)
    rows = []
    for method, run in runs.items():
        rows += bench_metrics(run, bench, method, n_resamples=n_resamples)
    for method, other in (
        ("matcher", "char_tfidf"),
        ("matcher", "char_bm25"),
        ("matcher+judgments(cv)", "char_tfidf"),
        ("matcher+judgments(cv)", "matcher"),
    ):
        rows += paired_gains(runs[method], runs[other], bench, f"{method}-{other}", n_resamples=n_resamples)
    return rows, runs
