#!/usr/bin/env python3
"""Where a batch job's time goes, stage by stage, on a perf corpus, in one process.

Runs ``batch.fit_matcher`` and ``batch.match_to_file`` (``workers=1``, so that every stage runs in
this process and is timed here) on the JSONL files of a perf corpus (``{"id", "text"}`` a line, as
``benchmarks/batch.py --corpus`` writes them), with the functions of each stage wrapped by a timer.
Stages nest (the segmentation is part of the word block, which is part of the fit); the table gives
each stage's total seconds, its calls, and its share of its parent. The dense product of the
two-pass scoring is inline code: it is timed apart on the same shapes (a chunk of needs against the
dense copy of the common terms, one BLAS thread) and its total estimated from the number of chunks.

Usage::

    .venv/bin/python benchmarks/stages.py --needs /tmp/perf-medium/needs.jsonl \\
        --experts /tmp/perf-medium/experts.jsonl --out /tmp/stages.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

TIMES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(owner: Any, attribute: str, name: str, *, key: Any = None) -> None:
    """Wrap ``owner.attribute`` so that its calls add to ``TIMES[name]`` (``key(args)`` appended when given)."""
    original = getattr(owner, attribute)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        label = name if key is None else f"{name}{key(args)}"
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - started
            CALLS[label] += 1

    setattr(owner, attribute, wrapper)


def instrument() -> None:
    from matcher.jobs import batch, chunks
    from matcher.matching import estimator as model
    from matcher.matching import scoring, vectorize
    from matcher.matching.estimator import Matcher
    from matcher.matching.vectorize import TextVectorizer
    from matcher.text import segment as text

    timed(batch, "fit_matcher", "fit")
    timed(model, "normalise_many", "fit / normalise the profiles")
    timed(TextVectorizer, "_views", "views (CJK runs apart from Latin)")
    timed(TextVectorizer, "_fit_block", "fit / count the block ", key=lambda args: args[1])
    timed(vectorize, "_char_codes", "character n-grams as codes")
    timed(vectorize, "text_blocks", "jieba's blocks of each text")
    timed(vectorize, "segment_blocks", "segment the distinct blocks")
    timed(TextVectorizer, "_weigh", "weigh (BM25 / TF-IDF, norms)")
    timed(TextVectorizer, "get_feature_names_out", "fit / feature names")
    timed(Matcher, "_build_index", "fit / index (inverted postings, labels)")
    timed(batch, "match_to_file", "score and write")
    timed(Matcher, "match_columns", "score / chunks")
    timed(Matcher, "_needs", "score / vectorise the needs")
    timed(Matcher, "_top_pruned", "score / two-pass top k")
    timed(Matcher, "_exact_scores", "score / exact re-scoring of the candidates")
    timed(scoring, "near_the_best", "score / candidates near the k-th best")
    timed(Matcher, "_exclude", "score / hard rules")
    timed(Matcher, "_named", "score / names in the needs")
    timed(chunks, "arrow_scores", "score / rows to Arrow")
    del text


def dense_product_seconds(fitted: Any, needs: Any, chunk: int) -> tuple[float, int]:
    """Seconds of one chunk's dense product (median of 5, one BLAS thread) and the number of chunks."""
    from threadpoolctl import threadpool_limits

    index = fitted.index_["expert"]
    _, dense = index.dense_common()
    X = np.random.default_rng(0).random((chunk, dense.shape[0]), dtype=np.float32)
    with threadpool_limits(1):
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            X @ dense
            runs.append(time.perf_counter() - started)
    return float(np.median(runs)), -(-len(needs) // chunk)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--needs", type=Path, required=True)
    parser.add_argument("--experts", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from matcher.inputs import frames
    from matcher.jobs import batch
    from matcher.jobs.chunks import ChunkOptions, chunk_step
    from matcher.text.segment import segmenter

    need_table, tables = batch.read_inputs(args.needs, {"expert": args.experts})
    targets, needs = frames.table_targets_frame(tables), frames.table_needs_frame(need_table)
    instrument()
    load = os.getloadavg()
    started = time.perf_counter()
    model = batch.fit_matcher(targets, workers=1)
    with tempfile.TemporaryDirectory() as folder, threadpool_limits(1):
        batch.match_to_file(model, needs, Path(folder) / "out.parquet", chunks=ChunkOptions(progress=False, workers=1))
    total = time.perf_counter() - started
    chunk = chunk_step(max(model.n_targets_.values()))
    one, chunks = dense_product_seconds(model, needs, chunk)
    TIMES["score / dense product (timed apart)"] = one * chunks
    CALLS["score / dense product (timed apart)"] = chunks
    rows = sorted(TIMES.items(), key=lambda item: -item[1])
    lines = [
        f"{len(targets):,} experts × {len(needs):,} needs, one process, segmenter {segmenter()['name']}: "
        f"{total:.1f} s in all; load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after.",
        "",
        "| stage | s | calls |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {seconds:.2f} | {CALLS[name]:,} |" for name, seconds in rows]
    print("\n".join(lines))
    if args.out:
        report = {"total": total, "stages": dict(TIMES), "calls": dict(CALLS), "loadavg_before": load}
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
