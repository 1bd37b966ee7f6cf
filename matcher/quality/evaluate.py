"""Evaluation: how good the matches are, on the match history and on an external benchmark.

* :func:`evaluate_history`: a time split of the recorded decisions. The model (vocabulary, re-ranker,
  target histories) is fitted on what was known at the cutoff; each later coordinator session is then
  re-ranked, and the targets the coordinator accepted (graded by rating) are the relevant ones.
* :func:`evaluate_bench`: a labelled retrieval benchmark in the format of ``../shared/bench/zh``
  (``experts.jsonl``, ``needs.jsonl``, ``qrels.csv``, ``pairs.csv``), measured through the product's
  own commands: ``matcher batch`` zero-shot, and ``matcher train --judgments`` then
  ``matcher batch --model`` cross-validated over the benchmark's needs.
* :func:`find_gaps`: needs whose best match is weak, by category and county.

Every method is compared with a plain character TF-IDF baseline measured in the same run, and every
figure comes with a bootstrap confidence interval.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from matcher.documents.writer import write_frame_csv
from matcher.inputs.frames import needs_frame, targets_frame
from matcher.inputs.library import TARGET_TYPES, Libraries
from matcher.matching.estimator import Matcher, build_matcher
from matcher.matching.rank import WEAK_SCORE
from matcher.matching.rerank import SIMILARITIES, decision_rows, served_scores, similarity_frame
from matcher.quality import metrics

logger = logging.getLogger(__name__)

__all__ = [
    "RESULT_COLUMNS",
    "Bench",
    "evaluate_bench",
    "evaluate_history",
    "evaluate_known_items",
    "find_gaps",
    "judgments_cv_run",
    "load_bench",
    "plot_gaps",
    "plot_ndcg",
    "write_results",
]

RESULT_COLUMNS = ("dataset", "method", "metric", "k", "value", "ci_low", "ci_high", "n")
HISTORY_METHODS = ("reranker", "fusion", "char_tfidf", "shown_order")
BENCH_KS = (1, 3, 5, 10, 20)
HISTORY_KS = (1, 3, 5, 10)


def _row(dataset: str, method: str, metric: str, k: int | None, estimate: tuple[float, float, float], n: int) -> dict:
    value, low, high = estimate
    return {
        "dataset": dataset,
        "method": method,
        "metric": metric,
        "k": k if k is not None else "",
        "value": round(value, 4),
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        "n": n,
    }


def plain_char_tfidf(documents: Sequence[str]) -> TfidfVectorizer:
    """The baseline: scikit-learn ``TfidfVectorizer(analyzer="char", ngram_range=(1, 2))``, nothing else."""
    return TfidfVectorizer(analyzer="char", ngram_range=(1, 2)).fit(documents)


# ---------------------------------------------------------------------------------------- history
def _ranking_metrics(
    dataset: str, method: str, groups: list[tuple[np.ndarray, np.ndarray]], ks: Sequence[int], n_resamples: int
) -> list[dict]:
    """nDCG, precision, recall at each k, MAP and MRR over groups of (scores, gains), with CIs."""
    per: dict[tuple[str, int | None], list[float]] = {}
    for scores, gains in groups:
        order = np.lexsort((np.arange(len(scores)), -scores))
        ranked = list(order)
        gain_of = {i: float(g) for i, g in enumerate(gains)}
        relevant = {i for i, g in gain_of.items() if g > 0}
        for k in ks:
            per.setdefault(("nDCG", k), []).append(metrics.ndcg_at_k(ranked, gain_of, k))
            per.setdefault(("precision", k), []).append(metrics.precision_at_k(ranked, relevant, k))
            per.setdefault(("recall", k), []).append(metrics.recall_at_k(ranked, relevant, k))
        per.setdefault(("MAP", None), []).append(metrics.average_precision(ranked, relevant))
        per.setdefault(("MRR", None), []).append(metrics.reciprocal_rank(ranked, relevant))
    return [
        _row(dataset, method, metric, k, metrics.bootstrap_ci(values, n_resamples=n_resamples), len(values))
        for (metric, k), values in per.items()
    ]


def _ordering_rows(
    dataset: str, method: str, frame: pd.DataFrame, scores: np.ndarray, n_resamples: int
) -> list[dict]:
    """Pairwise ordering loss of each target's rated decisions: all, clear-cut (gap >= 2), close (gap 1)."""
    rated = frame["accepted"].to_numpy() & (frame["gain"] > 0).to_numpy()
    rows = []
    for label, low, high in (("ordering_loss", 1, math.inf), ("ordering_loss_clear", 2, math.inf), ("ordering_loss_close", 1, 1)):
        losses = metrics.pairwise_ordering_loss(
            (frame.loc[rated, "target_type"] + ":" + frame.loc[rated, "target_id"]).tolist(),
            frame.loc[rated, "gain"].tolist(),
            scores[rated].tolist(),
            min_gap=low,
            max_gap=high,
        )
        values = list(losses.values())
        rows.append(_row(dataset, method, label, None, metrics.bootstrap_ci(values, n_resamples=n_resamples), len(values)))
    return rows


@dataclass
class HistoryResult:
    """What :func:`evaluate_history` measured: the table, the per-pair scores and the fitted model."""

    rows: list[dict]
    frame: pd.DataFrame  # the test decisions with each method's score
    cutoff: pd.Timestamp
    model: Matcher


def history_scores(
    model: Matcher,
    libs: Libraries,
    test: pd.DataFrame,
    cutoff: pd.Timestamp,
    *,
    need_tags: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Scores of each test decision's pair by every method of ``HISTORY_METHODS``.

    The re-ranker scores as it serves (:func:`matcher.matching.rerank.served_scores`): target histories frozen
    at the cutoff (its training), the live load at decision time, profiles as of the decision's period,
    every candidate taken as shown first, and the evidence cap within each session. ``need_tags`` (need
    id -> tags) replaces the stored tags: the needs as typed free text, with inferred tags.
    """
    frame = test.copy()
    similarities = similarity_frame(model, libs, frame, need_tags=need_tags)
    frame[list(SIMILARITIES)] = similarities.to_numpy()
    text_weight = 1.0 - model.tag_weight - model.region_weight
    frame["fusion"] = np.round(
        text_weight * frame["text"] + model.tag_weight * frame["tags"] + model.region_weight * frame["region"], 6
    )
    frame["base"] = frame["fusion"]
    frame["reranker"] = frame["fusion"]
    reranker = model.reranker_
    if reranker is not None:
        for target_type in reranker.models_:
            mask = (frame["target_type"] == target_type).to_numpy()
            frame.loc[mask, "reranker"] = served_scores(reranker, target_type, frame.loc[mask])
    profiles = targets_frame(libs, until=cutoff)
    documents = {
        (t, i): "\n".join(x for x in texts if x)
        for t, i, texts in zip(profiles["target_type"], profiles["id"], profiles["texts"], strict=True)
    }
    baseline = plain_char_tfidf(list(documents.values()))
    need_text = needs_frame(libs).set_index("id")["text"]
    left = baseline.transform(need_text.reindex(frame["need_id"]).fillna("").tolist())
    right = baseline.transform([documents.get(key, "") for key in zip(frame["target_type"], frame["target_id"], strict=True)])
    frame["char_tfidf"] = np.asarray(left.multiply(right).sum(axis=1)).ravel()
    frame["shown_order"] = -frame["rank"].astype(float)
    return frame


def evaluate_history(
    libs: Libraries,
    params: dict[str, Any] | None = None,
    *,
    test_share: float = 0.25,
    n_resamples: int = 1000,
) -> HistoryResult:
    """Fit on the decisions before a cutoff and rank the coordinator sessions after it.

    The cutoff is the time by which ``1 - test_share`` of the accept/reject decisions were made. The
    matcher's vocabulary, its tag classifier (on the needs created by then), the re-ranker (with its
    gate) and the target histories are fitted on what was known then. Each later session (the targets
    shown to a coordinator for one need) is a ranking task; the relevance of a target is its rating
    when accepted (3 without one), 0 when rejected. Methods: ``reranker`` (the model as it serves),
    ``fusion`` (its base score), ``char_tfidf`` (plain character TF-IDF cosine) and ``shown_order``
    (the order the simulator showed, a reference that knew the hidden relevance). Sessions without any
    acceptance carry no ranking signal and are left out.

    Datasets: ``history`` (stored needs, all types), ``history/<type>`` (each target type), and
    ``history_free_text`` and ``history_free_text/<type>``: the same needs as typed free text, tags
    removed and inferred by the classifier fitted before the cutoff.
    """
    rows_all = decision_rows(libs)
    if rows_all.empty:
        raise ValueError("the libraries hold no decisions to evaluate on")
    cutoff = rows_all["decided_at"].quantile(1 - test_share)
    model = build_matcher(params).fit(targets_frame(libs, until=cutoff))
    model.fit_tagger(needs_frame(libs, libs.needs.loc[libs.needs["created_at"] <= cutoff, "id"].tolist()), libs.taxonomy)
    model.fit_reranker(libs, until=cutoff)
    test = rows_all.loc[rows_all["decided_at"] > cutoff].reset_index(drop=True)
    frame = history_scores(model, libs, test, cutoff)
    later = needs_frame(libs, list(dict.fromkeys(test["need_id"])))
    inferred = dict(zip(later["id"], model.infer_tags(later["text"].tolist()), strict=True))
    free = history_scores(model, libs, test, cutoff, need_tags={i: [t["tag"] for t in v] for i, v in inferred.items()})
    result = _history_rows("history", frame, n_resamples, ordering=True)
    result += _history_rows("history_free_text", free, n_resamples)
    for target_type in TARGET_TYPES:
        for dataset, part in ((f"history/{target_type}", frame), (f"history_free_text/{target_type}", free)):
            chosen = part.loc[part["target_type"] == target_type]
            if len(chosen):
                result += _history_rows(dataset, chosen, n_resamples, ks=(5,))
    result += _exposure_rows(model, libs, test, n_resamples)
    return HistoryResult(rows=result, frame=frame, cutoff=cutoff, model=model)


def _history_rows(
    dataset: str, frame: pd.DataFrame, n_resamples: int, *, ordering: bool = False, ks: Sequence[int] = HISTORY_KS
) -> list[dict]:
    """Ranking metrics of each method over the sessions of ``frame``, and the re-ranker's paired gain."""
    result = []
    sessions = [g for _, g in frame.groupby("session", sort=True) if (g["gain"] > 0).any() and len(g) > 1]
    for method in HISTORY_METHODS:
        groups = [(g[method].to_numpy(dtype=float), g["gain"].to_numpy(dtype=float)) for g in sessions]
        result += _ranking_metrics(dataset, method, groups, ks, n_resamples)
        if ordering and method != "shown_order":
            result += _ordering_rows(dataset, method, frame, frame[method].to_numpy(dtype=float), n_resamples)
    # the gain of re-ranking over the base score, per session, with its own interval
    differences = []
    for g in sessions:
        gains = dict(enumerate(g["gain"]))
        ndcg = {}
        for method in ("reranker", "fusion"):
            scores = g[method].to_numpy(dtype=float)
            ndcg[method] = metrics.ndcg_at_k(list(np.lexsort((np.arange(len(scores)), -scores))), gains, 5)
        differences.append(ndcg["reranker"] - ndcg["fusion"])
    result.append(
        _row(dataset, "reranker-fusion", "nDCG", 5, metrics.bootstrap_ci(differences, n_resamples=n_resamples), len(differences))
    )
    return result


def evaluate_known_items(libs: Libraries, params: dict[str, Any] | None = None, *, n_resamples: int = 1000) -> list[dict]:
    """Known-item success@1 and @3 of each target type and query form (:mod:`matcher.quality.known_item`).

    The model is fitted as ``matcher train`` fits it (current profiles, tag classifier, gated
    re-ranker); ``method`` is ``reranker`` (what serves) or ``base`` (the base score alone). Rows have
    dataset ``known_item/<type>``, metric ``success:<form>`` and a bootstrap interval over the targets.
    """
    from matcher.quality.known_item import FORMS, known_item_table

    model = build_matcher(params).fit(targets_frame(libs))
    model.fit_tagger(needs_frame(libs), libs.taxonomy).fit_reranker(libs)
    rows = []
    for method, scorer in (("reranker", model), ("base", _without_reranker(model))):
        for target_type in model.target_types_:
            table = known_item_table(scorer, target_type, k=3)
            for form in FORMS:
                ranks = table.loc[table["form"] == form, "rank"].to_numpy()
                for k in (1, 3):
                    hits = ((ranks >= 1) & (ranks <= k)).astype(float)
                    estimate = metrics.bootstrap_ci(hits, n_resamples=n_resamples)
                    rows.append(_row(f"known_item/{target_type}", method, f"success:{form}", k, estimate, len(hits)))
    return rows


def _exposure_rows(model: Matcher, libs: Libraries, test: pd.DataFrame, n_resamples: int, k: int = 5) -> list[dict]:
    """Catalogue coverage and exposure Gini of the top ``k`` experts for the test period's needs."""
    needs = needs_frame(libs, list(dict.fromkeys(test["need_id"])))
    catalogue = model.targets("expert")
    catalogue = catalogue.loc[catalogue["available"], "id"].tolist()
    rows = []
    fusion = _without_reranker(model)
    for method, scorer in (("reranker", model), ("fusion", fusion)):
        table = scorer.match(needs, k=k, target_types=["expert"])
        lists = [g["target_id"].tolist() for _, g in table.groupby("need_id", sort=False)]
        coverage = metrics.bootstrap_ci(
            np.arange(len(lists)), lambda d, ls=lists: metrics.catalogue_coverage([ls[int(i)] for i in d], catalogue), n_resamples=n_resamples,
            centred=True,
        )
        gini = metrics.bootstrap_ci(
            np.arange(len(lists)), lambda d, ls=lists: metrics.exposure_gini([ls[int(i)] for i in d], catalogue), n_resamples=n_resamples,
            centred=True,
        )
        rows.append(_row("history", method, "coverage", k, coverage, len(lists)))
        rows.append(_row("history", method, "exposure_gini", k, gini, len(lists)))
    return rows


def _without_reranker(model: Matcher) -> Matcher:
    import copy

    twin = copy.copy(model)
    twin.reranker_ = None
    return twin


# ------------------------------------------------------------------------------------------ bench
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
                    pairs.append((row["need_id"], row["expert_a"], row["expert_b"], int(row["label_a"]), int(row["label_b"])))
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


def bench_metrics(
    run: pd.DataFrame, bench: Bench, method: str, *, n_resamples: int = 1000, ks: Sequence[int] = BENCH_KS
) -> list[dict]:
    """nDCG@k, MRR@10, recall@10/100 and PAIR of a run (need_id, expert_id, score), as the benchmark's
    own ``evaluate.py`` computes them (ties by expert id), with bootstrap intervals over needs."""
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
    rows = [
        _row("bench", method, metric, k, metrics.bootstrap_ci(values, n_resamples=n_resamples), len(values))
        for (metric, k), values in per.items()
    ]
    # PAIR = right / wrong over preference pairs; resampled by need (rows: right, wrong of one need)
    counts: dict[str, list[float]] = {}
    for need_id, a, b, label_a, label_b in bench.pairs:
        s = scores.get(need_id, {})
        if label_a == label_b or a not in s or b not in s:
            continue
        right_wrong = counts.setdefault(need_id, [0.0, 0.0])
        high, low = (s[a], s[b]) if label_a > label_b else (s[b], s[a])
        right_wrong[0] += 1.0 if high > low else 0.5 if high == low else 0.0
        right_wrong[1] += 1.0 if high < low else 0.5 if high == low else 0.0
    table = np.asarray(list(counts.values())).reshape(-1, 2)
    ratio = metrics.bootstrap_ci(table, lambda d: d[:, 0].sum() / d[:, 1].sum(), n_resamples=n_resamples)
    rows.append(_row("bench", method, "PAIR", None, ratio, len(table)))
    return rows


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
    from matcher.jobs.batch import run_batch_model
    from matcher.matching.training import train_files

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
        pd.DataFrame(judged, columns=["need_id", "expert_id", "relevance"]).to_csv(work / f"judgments{fold}.csv", index=False)
        folder = work / f"model{fold}"
        train_files(
            work / f"train{fold}.jsonl", {"expert": experts}, folder, judgments=work / f"judgments{fold}.csv", params=params
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
    """The plain char TF-IDF baseline, the zero-shot matcher (``matcher batch`` on the files) and the
    judgments path cross-validated (:func:`judgments_cv_run`) on one benchmark, in one run.

    Every method's run is its top ``depth`` experts per need. Returns the table rows and each run.
    """
    import tempfile

    from matcher.jobs.batch import run_batch
    from matcher.jobs.chunks import ChunkOptions

    baseline = plain_char_tfidf(bench.experts["text"].tolist())
    experts = baseline.transform(bench.experts["text"].tolist()).T.tocsr()
    runs = {"char_tfidf": _top_and_judged(lambda chunk: (baseline.transform(chunk["text"]) @ experts).toarray(), bench, depth)}
    runs["char_tfidf"] = runs["char_tfidf"].loc[runs["char_tfidf"]["retrieved"]]
    with tempfile.TemporaryDirectory(prefix="bench.", dir=work) as folder:
        work_dir = Path(folder)
        _write_jsonl(work_dir / "needs.jsonl", bench.need_frame())
        run_batch(
            work_dir / "needs.jsonl", {"expert": bench.folder / "experts.jsonl"}, work_dir / "zero_shot.csv",
            k=depth, params=params, chunks=ChunkOptions(progress=False),
        )
        runs["matcher"] = _read_run(work_dir / "zero_shot.csv")
        runs["matcher+judgments(cv)"] = judgments_cv_run(bench, params, work_dir, n_splits=n_splits, depth=depth)
    rows = []
    for method, run in runs.items():
        rows += bench_metrics(run, bench, method, n_resamples=n_resamples)
    return rows, runs


# ------------------------------------------------------------------------------------------ gaps
GAP_COLUMNS = ("dimension", "value", "needs", "weak", "weak_share", "mean_best")


def find_gaps(
    model: Matcher, libs: Libraries, *, target_type: str = "expert", threshold: float = WEAK_SCORE, status: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Needs whose best available match is weak, and their counts by category (tag) and county.

    A need's best match is its highest weighted-sum score over the available targets of
    ``target_type`` (fully booked ones included: a booked-out expert still shows that the need has
    supply, and unmet demand for them is a reason to recruit). Scores are comparable across needs,
    so one ``threshold`` serves them all.

    Returns
    -------
    needs : DataFrame ``need_id, title, county, tags, best_score, best_id, weak``.
    summary : DataFrame of ``GAP_COLUMNS``, one row per category and per county, most weak needs first.
    """
    chosen = libs.needs if status is None else libs.needs.loc[libs.needs["status"] == status]
    needs = needs_frame(libs, chosen["id"].tolist())
    scores = model.score(needs, target_type)
    targets = model.targets(target_type)
    scores[:, ~targets["available"].to_numpy(dtype=bool)] = -np.inf
    best = scores.argmax(axis=1) if scores.shape[1] else np.zeros(len(needs), dtype=int)
    best_score = scores[np.arange(len(needs)), best] if scores.shape[1] else np.zeros(len(needs))
    county = chosen["org_id"].map(libs.organisations.set_index("id")["county"]).fillna("")
    frame = pd.DataFrame(
        {
            "need_id": needs["id"].to_numpy(),
            "title": chosen["title"].to_numpy(),
            "county": county.to_numpy(),
            "tags": ["、".join(t) for t in chosen["tags"]],
            "best_score": np.round(np.maximum(best_score, 0.0), 6),
            "best_id": targets["id"].to_numpy()[best] if len(targets) else "",
        }
    )
    frame["weak"] = frame["best_score"] < threshold
    summary = []
    for dimension, values in (("category", chosen["tags"].tolist()), ("county", [[c] if c else [] for c in county])):
        exploded = pd.DataFrame({"value": values, "weak": frame["weak"], "best": frame["best_score"]}).explode("value")
        exploded = exploded.dropna(subset=["value"])
        for value, group in exploded.groupby("value"):
            summary.append(
                {
                    "dimension": dimension,
                    "value": value,
                    "needs": len(group),
                    "weak": int(group["weak"].sum()),
                    "weak_share": round(float(group["weak"].mean()), 4),
                    "mean_best": round(float(group["best"].mean()), 4),
                }
            )
    summary_frame = pd.DataFrame(summary, columns=list(GAP_COLUMNS))
    summary_frame = summary_frame.sort_values(["dimension", "weak", "value"], ascending=[True, False, True], kind="stable")
    return frame, summary_frame.reset_index(drop=True)


# ---------------------------------------------------------------------------------------- outputs
def write_results(rows: list[dict], path: Path) -> None:
    """The results table as CSV (``RESULT_COLUMNS``), in a stable order."""
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    write_frame_csv(frame, path)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fonts = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "SimHei"]
    manager = matplotlib.font_manager.fontManager
    if not {font.name for font in manager.ttflist} & set(fonts):
        # a font cache built before a CJK font was installed does not list it: add the files on disk
        for path in matplotlib.font_manager.findSystemFonts():
            if "CJK" in path or "wqy" in path.lower():
                manager.addfont(path)
    plt.rcParams["font.sans-serif"] = [*fonts, "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    return plt


def plot_ndcg(rows: list[dict], path: Path) -> None:
    """nDCG@k against k, one line (with its confidence band) per dataset and method, as a PNG."""
    plt = _pyplot()
    frame = pd.DataFrame(rows)
    frame = frame.loc[(frame["metric"] == "nDCG") & (frame["k"] != "")]
    datasets = list(dict.fromkeys(frame["dataset"]))
    figure, axes = plt.subplots(1, max(1, len(datasets)), figsize=(5.5 * max(1, len(datasets)), 4), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=False):
        part = frame.loc[frame["dataset"] == dataset]
        for method, group in part.groupby("method", sort=False):
            group = group.sort_values("k")
            ks = group["k"].astype(int)
            axis.plot(ks, group["value"], marker="o", label=method)
            axis.fill_between(ks, group["ci_low"].astype(float), group["ci_high"].astype(float), alpha=0.15)
        axis.set_title(f"nDCG@k: {dataset}")
        axis.set_xlabel("k")
        axis.set_ylabel("nDCG@k")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_gaps(summary: pd.DataFrame, path: Path) -> None:
    """Weak needs by category and by county, as horizontal bar charts in one PNG."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 6), gridspec_kw={"width_ratios": [3, 1]})
    for axis, dimension in zip(axes, ("category", "county"), strict=True):
        part = summary.loc[summary["dimension"] == dimension].sort_values("weak")
        axis.barh(part["value"], part["weak"], color="#c0504d", label="weak")
        axis.barh(part["value"], part["needs"] - part["weak"], left=part["weak"], color="#9bbb59", label="well matched")
        axis.set_title(f"needs by {dimension}")
        axis.set_xlabel("needs")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
