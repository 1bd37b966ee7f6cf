#!/usr/bin/env python3
"""Batch throughput and memory: matcher against a plain char TF-IDF reference, measured in one run.

The script generates seeded Chinese libraries (the generator of ``latency.py``: experts from one
seed, needs from the next, cached as Parquet in ``--cache``), then runs every case in a child process
of its own, one after the other, so that each has its own peak memory (``VmHWM``) and nothing is
warm from the case before:

* ``reference``: written here, as the issue specifies it: scikit-learn
  ``TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3))`` fitted on the experts' texts, the needs
  vectorised, one sparse product per chunk of 500 needs, ``np.argpartition`` top 10, a CSV written;
  it runs first and, unless ``--no-reference-again``, once more after the other cases: the load of a
  shared machine drifts, and the ratios are taken against the faster of its two runs;
* ``matcher``: the shipped path end to end with the default parameters: ``batch.fit_matcher`` on the
  experts, then ``batch.match_to_file`` (chunks of 500 needs, one sparse product each, top 10,
  Parquet), in one process (``workers 1``) and in two (``workers 2``);
* ``matcher, no segment cache``: ``matcher-2`` with :func:`matcher.text.segment.segment`'s memory of
  segmented blocks switched off (every block segmented by jieba each time it occurs), to show what
  that cache contributes on these generated texts, whose phrases recur far more than real ones;
* ``matcher, pruned``: the vocabulary learnt from a quarter of the 20,000 experts
  (``fit_sample=5000``; the others added with the fitted vocabulary), workers 2, to measure what the
  pruning costs in quality;
* ``large``: 200,000 experts × 20,000 needs, the vocabulary learnt from a quarter of them
  (``fit_sample=50000``, ``matcher batch --fit-sample 50000``), workers 2: peak memory and
  throughput, and the time for 200,000 needs extrapolated.

Each case also reports its CPU time (its processes and their children, user and system), which
moves less with the load of other tenants than its wall time. Peak memory is sampled every half second as the sum of the proportional set sizes (PSS) of the case's
process and its worker processes: pages the forked workers share with their parent count once. The
process's own ``VmHWM`` is reported too.

Quality is checked on the outputs: ``tag hit@10`` (share of returned experts carrying the need's
first tag: a sanity check, matcher scores tags explicitly) and ``agreement@10`` with the default
matcher's top 10 (share of the same need–expert pairs). The report also gives how often jieba's
blocks recur in the generated texts (distinct blocks over all blocks), which is what the
segmentation cache feeds on.

* ``matcher``: the shipped path with every default, as ``matcher batch`` runs it: one process per
  usable core for the fit and for the scoring (no ``workers`` argument);
* ``cli``: the command itself, ``matcher batch --needs N.jsonl --experts E.jsonl --out O.parquet``
  with its defaults, reading and writing the files (its fit and match are not timed apart);
* ``large-full``: 200,000 experts × 20,000 needs with a full fit (no ``fit_sample``) and the defaults.

With ``--corpus DIR`` the texts are those of a perf corpus (``../shared/bench/perf/gen.py``: the
``medium`` folder of DIR for the 20,000 × 20,000 cases, ``large`` for the large ones, its first
``--large-needs`` needs), written once as the JSONL files ``matcher batch`` reads (``{"id", "text"}``
a line, in ``--cache``); they have no tags or counties, so ``tag hit@10`` is blank. The output of
every matcher case is compared byte for byte with that of ``matcher-1`` (``same bytes as matcher-1``).

Usage::

    .venv/bin/python benchmarks/batch.py --out /tmp/batch.json          # everything (about 15 min)
    .venv/bin/python benchmarks/batch.py --cases reference,matcher-1,matcher-2 --out /tmp/e2e.json
    python ../shared/bench/perf/gen.py medium --out /tmp/perf && python ../shared/bench/perf/gen.py large --out /tmp/perf
    .venv/bin/python benchmarks/batch.py --corpus /tmp/perf --cases reference,matcher,matcher-1,cli --out /tmp/perf.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
K = 10
CHUNK = 500
#: The share of the library the vocabulary is learnt from in the pruned and large cases.
SAMPLE_SHARE = 4
CASES = ("reference", "matcher", "matcher-1", "matcher-2", "cli", "nocache", "pruned", "large", "large-full")
#: Cases on the large library.
LARGE = ("large", "large-full")


# --------------------------------------------------------------------------- data


def dataset(cache: Path, experts: int, needs: int, seed: int) -> tuple[Path, Path]:
    """Generated experts (seed) and needs (seed + 1) as Parquet files, made once and cached."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from latency import Generator

    cache.mkdir(parents=True, exist_ok=True)
    expert_file = cache / f"experts-{experts}-seed{seed}.parquet"
    need_file = cache / f"needs-{needs}-seed{seed + 1}.parquet"
    if not expert_file.exists():
        log(f"generating {experts} experts (cached in {expert_file})")
        Generator(seed).experts(experts).to_parquet(expert_file)
    if not need_file.exists():
        log(f"generating {needs} needs (cached in {need_file})")
        frame = pd.DataFrame(Generator(seed + 1).needs(needs))
        frame["org_id"] = None
        frame.to_parquet(need_file)
    return expert_file, need_file


def corpus_dataset(corpus: Path, size: str, cache: Path, needs: int | None = None) -> tuple[Path, Path]:
    """The experts and needs of ``corpus/size`` (perf's ``gen.py`` output) as JSONL files, made once."""
    folder = cache / (f"perf-{size}" if needs is None else f"perf-{size}-{needs}")
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, prefix, limit in (("experts", "e", None), ("needs", "n", needs)):
        path = folder / f"{name}.jsonl"
        if not path.exists():
            log(f"writing {path} from {corpus / size / (name + '.txt')}")
            lines = (corpus / size / f"{name}.txt").read_text(encoding="utf-8").splitlines()[:limit]
            partial = path.with_suffix(".part")
            with partial.open("w", encoding="utf-8") as handle:
                for number, text in enumerate(lines):
                    handle.write(json.dumps({"id": f"{prefix}{number}", "text": text}, ensure_ascii=False) + "\n")
            partial.replace(path)
        files.append(path)
    return files[0], files[1]


def read_frames(expert_file: Path, need_file: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if expert_file.suffix == ".jsonl":  # a perf corpus: read as `matcher batch` reads the files
        from matcher.inputs.frames import table_needs_frame as needs_frame
        from matcher.inputs.frames import table_targets_frame as targets_frame
        from matcher.jobs.batch import read_inputs

        need_table, tables = read_inputs(need_file, {"expert": expert_file})
        experts, needs = targets_frame(tables), needs_frame(need_table)
        experts["texts"] = [list(v) for v in experts["texts"]]
        return experts, needs
    experts = pd.read_parquet(expert_file)
    for column in ("texts", "tags", "counties"):
        experts[column] = [list(v) for v in experts[column]]
    needs = pd.read_parquet(need_file)
    for column in ("tags", "counties"):
        needs[column] = [list(v) for v in needs[column]]
    needs["org_id"] = None
    return experts, needs


def log(message: str) -> None:
    print(f"[batch] {message}", file=sys.stderr, flush=True)


def _sample_pss(pid: int, interval: float, connection: Any) -> None:
    """In a process of its own: the peak PSS of process ``pid`` and its children, until asked for it."""
    import psutil

    me, target, peak, stop = os.getpid(), psutil.Process(pid), 0.0, False
    while True:  # a sample now, then every interval until asked, and one when asked
        total = 0
        try:
            processes = [target, *target.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for process in processes:
            if process.pid == me:
                continue
            try:
                total += process.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        peak = max(peak, total / 2**20)
        if stop:
            break
        stop = connection.poll(interval)
    connection.send(peak)


class MemorySampler:
    """Samples the PSS of this process and its children every ``interval`` seconds; keeps the peak.

    The sampling runs in a spawned process, not in a thread of this one: matcher forks worker
    processes only where no other thread runs, so a sampling thread would change what is measured.
    """

    def __init__(self, interval: float = 0.5) -> None:
        import multiprocessing

        self.interval = interval
        self.peak = 0.0
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_sample_pss, args=(os.getpid(), interval, child), daemon=True)

    def __enter__(self) -> MemorySampler:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._connection.send("stop")
        self.peak = float(self._connection.recv())
        self._process.join()


def peak_rss_mib() -> dict[str, float]:
    """This process's peak resident set (VmHWM) and the largest of its finished children's."""
    own = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            own = int(line.split()[1]) / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"process": round(own, 1), "largest_worker": round(children, 1)}


# ------------------------------------------------------------------------ the cases


def run_reference(experts: pd.DataFrame, needs: pd.DataFrame, out: Path) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = ["\n".join(t for t in texts if t) for texts in experts["texts"]]
    ids = experts["id"].to_numpy(dtype=object)
    need_ids = needs["id"].tolist()
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3))
    X = vectorizer.fit_transform(docs)
    fitted = time.perf_counter()
    Q = vectorizer.transform(needs["text"].tolist())
    XT = X.T.tocsr()
    vectorised = time.perf_counter()
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["need_id", "target_id", "rank", "score"])
        for start in range(0, Q.shape[0], CHUNK):
            scores = (Q[start : start + CHUNK] @ XT).toarray()
            top = np.argpartition(-scores, K - 1, axis=1)[:, :K]
            for row in range(scores.shape[0]):
                best = top[row][np.argsort(-scores[row, top[row]], kind="stable")]
                for rank, column in enumerate(best, 1):
                    writer.writerow([need_ids[start + row], ids[column], rank, f"{scores[row, column]:.6f}"])
    finished = time.perf_counter()
    return {
        "fit": fitted - started,
        "vectorise": vectorised - fitted,
        "match_write": finished - vectorised,
        "total": finished - started,
        "features": X.shape[1],
        "nnz": int(X.nnz),
    }


def run_matcher(
    experts: pd.DataFrame, needs: pd.DataFrame, out: Path, workers: int | None, fit_sample: int | None = None
) -> dict:
    """``batch.fit_matcher`` then ``batch.match_to_file``; ``workers`` None: the defaults (every usable core)."""
    from matcher.jobs.batch import fit_matcher, match_to_file
    from matcher.jobs.chunks import ChunkOptions

    started = time.perf_counter()
    model = fit_matcher(experts, fit_sample=fit_sample, workers=workers)
    fitted = time.perf_counter()
    match_to_file(model, needs, out, k=K, chunks=ChunkOptions(chunk_size=CHUNK, progress=False, workers=workers))
    finished = time.perf_counter()
    index = model.index_["expert"]
    return {
        "fit": fitted - started,
        "match_write": finished - fitted,
        "total": finished - started,
        "features": int(model.vectorizer_.n_features_out_),
        "nnz": int(index.postings.nnz),
    }


def run_cli(expert_file: Path, need_file: Path, out: Path) -> dict:
    """``matcher batch --needs … --experts … --out …`` with its defaults, as a user runs it."""
    command = [str(Path(sys.executable).with_name("matcher")), "batch", "--needs", str(need_file)]
    command += ["--experts", str(expert_file), "--out", str(out)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    total = time.perf_counter() - started
    return {"fit": float("nan"), "match_write": total, "total": total, "features": None, "nnz": None}


def without_segment_cache() -> None:
    """Switch off :func:`matcher.text.segment.segment`'s memory of blocks in this process (jieba every time)."""
    from matcher.matching import vectorize
    from matcher.text import segment as text

    def segment_block(block: str) -> tuple[str, ...]:
        return tuple(word for word, _, _ in text.tokenize(block))

    text._segment_block = segment_block
    text.SEGMENT_MEMORY.limit = 0  # segment_blocks remembers nothing either (a call still cuts each distinct block once)
    text.SEGMENT_MEMORY.clear()
    vectorize.prepare_segments = lambda texts: 0  # nothing to remember the words in


def repetition(needs: pd.DataFrame, experts: pd.DataFrame) -> dict[str, float]:
    """How often jieba's blocks recur in the texts: distinct blocks over all blocks."""
    from matcher.text.normalise import normalise
    from matcher.text.segment import text_blocks

    docs = ["\n".join(t for t in texts if t) for texts in experts["texts"]] + needs["text"].tolist()
    blocks = [b for doc in docs for b in text_blocks(normalise(doc))]
    return {"blocks": len(blocks), "distinct_blocks": len(set(blocks))}


def child(args: argparse.Namespace) -> None:
    import logging

    logging.getLogger("jieba").setLevel(logging.WARNING)
    experts, needs = read_frames(Path(args.expert_file), Path(args.need_file))
    out = Path(args.output)
    case = args.child
    cpu = os.times()
    load = os.getloadavg()
    with MemorySampler() as memory:
        if case.startswith("reference"):
            result = run_reference(experts, needs, out)
        elif case in ("matcher", "large-full"):
            result = run_matcher(experts, needs, out, None)
        elif case == "cli":
            result = run_cli(Path(args.expert_file), Path(args.need_file), out)
        elif case in ("matcher-1", "matcher-2"):
            result = run_matcher(experts, needs, out, int(case[-1]))
        elif case == "nocache":
            without_segment_cache()
            result = run_matcher(experts, needs, out, 2)
        elif case in ("pruned", "large"):
            result = run_matcher(experts, needs, out, 2, fit_sample=len(experts) // SAMPLE_SHARE)
        else:
            raise SystemExit(f"unknown case {case}")
    spent = os.times()
    result["cpu"] = sum(
        getattr(spent, f) - getattr(cpu, f) for f in ("user", "system", "children_user", "children_system")
    )
    result.update(experts=len(experts), needs=len(needs), peak_rss_mib=peak_rss_mib())
    result["loadavg_before"], result["loadavg_after"] = load, os.getloadavg()
    result["peak_pss_mib"] = round(memory.peak, 1)
    Path(args.result).write_text(json.dumps(result, indent=2), encoding="utf-8")


# ------------------------------------------------------------------------ the parent


def top10(path: Path) -> dict[str, list[str]]:
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype={"need_id": str, "target_id": str})
    else:
        frame = pd.read_parquet(path, columns=["need_id", "target_type", "target_id"])
        frame = frame.loc[frame["target_type"] == "expert"]
    return frame.groupby("need_id", sort=False)["target_id"].agg(list).to_dict()


def tag_hit(found: dict[str, list[str]], needs: pd.DataFrame, experts: pd.DataFrame) -> float:
    if not all(isinstance(t, list) and t for t in needs["tags"]):  # a perf corpus: no tags
        return float("nan")
    tags = dict(zip(experts["id"], (set(t) for t in experts["tags"]), strict=True))
    first = dict(zip(needs["id"], (t[0] for t in needs["tags"]), strict=True))
    hits = total = 0
    for need_id, ids in found.items():
        hits += sum(first[need_id] in tags[i] for i in ids)
        total += len(ids)
    return hits / total if total else float("nan")


def agreement(a: dict[str, list[str]], b: dict[str, list[str]]) -> float:
    shared = total = 0
    for need_id, ids in b.items():
        shared += len(set(ids) & set(a.get(need_id, [])))
        total += len(ids)
    return shared / total if total else float("nan")


def run_case(case: str, files: tuple[Path, Path], work: Path, workers: int = 1) -> dict[str, Any]:
    suffix = ".csv" if case.startswith("reference") else ".parquet"
    output, result = work / f"{case}{suffix}", work / f"{case}.json"
    command = [sys.executable, __file__, "--child", case, "--expert-file", str(files[0])]
    command += ["--need-file", str(files[1]), "--output", str(output), "--result", str(result)]
    command += ["--workers", str(workers)]
    log(f"{case} ...")
    started = time.perf_counter()
    subprocess.run(command, check=True)
    report = json.loads(result.read_text(encoding="utf-8"))
    report["output"] = str(output)
    log(f"{case}: {report['total']:.1f} s (child wall {time.perf_counter() - started:.1f} s)")
    return report


def machine() -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from latency import machine as latency_machine

    return latency_machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experts", type=int, default=20000)
    parser.add_argument("--needs", type=int, default=20000)
    parser.add_argument("--large-experts", type=int, default=200000)
    parser.add_argument("--large-needs", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "matcher-bench")
    parser.add_argument("--corpus", type=Path, help="a perf corpus (gen.py's output folder): its texts instead")
    parser.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    parser.add_argument(
        "--no-reference-again",
        dest="reference_again",
        action="store_false",
        help="run the reference once, first (by default it runs again last, and ratios use its faster run)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    for hidden in ("--expert-file", "--need-file", "--output", "--result"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {CASES}")

    info = machine()
    load_before = os.getloadavg()
    if args.corpus is not None:
        small = corpus_dataset(args.corpus, "medium", args.cache)
    else:
        small = dataset(args.cache, args.experts, args.needs, args.seed)
    reports: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="matcher-bench-") as folder:
        work = Path(folder)
        for case in cases:
            if case in LARGE:
                if args.corpus is not None:
                    large = corpus_dataset(args.corpus, "large", args.cache, args.large_needs)
                else:
                    large = dataset(args.cache, args.large_experts, args.large_needs, args.seed)
                reports[case] = run_case(case, large, work)
            else:
                reports[case] = run_case(case, small, work)
        if "reference" in cases and args.reference_again:  # the load of a shared machine drifts: twice
            reports["reference-again"] = run_case("reference-again", small, work)
        experts, needs = read_frames(*small)
        data = repetition(needs, experts)
        found = {case: top10(Path(r["output"])) for case, r in reports.items() if case not in LARGE}
        if "matcher-1" in reports:  # the same bytes whatever the number of processes
            first = Path(reports["matcher-1"]["output"]).read_bytes()
            for case, report in reports.items():
                if not case.startswith("reference") and case not in LARGE:
                    report["same_bytes_as_matcher_1"] = Path(report["output"]).read_bytes() == first
        for case, report in reports.items():
            if case in found:
                report["tag_hit_at_10"] = tag_hit(found[case], needs, experts)
                if {"matcher", "matcher-1", "matcher-2"} & set(found):
                    base = found.get("matcher") or found.get("matcher-2") or found["matcher-1"]
                    report["agreement_at_10_with_matcher"] = agreement(base, found[case])
            report["needs_per_second_match"] = report["needs"] / report["match_write"]
            report["needs_per_second_end_to_end"] = report["needs"] / report["total"]
        for case in LARGE:
            if case not in reports:
                continue
            large_report = reports[case]
            rate = large_report["needs"] / large_report["match_write"]
            large_report["extrapolated_200k_needs_seconds"] = large_report["fit"] + 200_000 / rate
            large_experts, large_needs = read_frames(*large)
            large_report["tag_hit_at_10"] = tag_hit(top10(Path(large_report["output"])), large_needs, large_experts)
    if "reference" in reports:
        # against the faster of the reference's runs (the first case, and the last with --reference-again)
        reference = min(r["total"] for case, r in reports.items() if case.startswith("reference"))
        for case, report in reports.items():
            if not case.startswith("reference") and case not in LARGE:
                report["throughput_vs_reference"] = reference / report["total"]
    report = {
        "config": {
            "experts": args.experts,
            "needs": args.needs,
            "large_experts": args.large_experts,
            "large_needs": args.large_needs,
            "seed": args.seed,
            "k": K,
            "chunk": CHUNK,
            "fit_sample_share": f"1/{SAMPLE_SHARE}",
            "corpus": None if args.corpus is None else str(args.corpus),
        },
        "machine": {**info, "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "data": data,
        "cases": reports,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }
    print(markdown(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


WHAT = {
    "matcher": "shipped defaults (a process per usable core for fit and scoring), Parquet",
    "cli": "`matcher batch` with its defaults, JSONL in, Parquet out",
    "large-full": "full fit (no `--fit-sample`), defaults",
    "reference": "char_wb 1–3 TF-IDF, sparse product per 500, argpartition, CSV",
    "reference-again": "the reference again, after the other cases",
    "matcher-1": "shipped defaults, 1 process, Parquet",
    "matcher-2": "shipped defaults, `--workers 2`, Parquet",
    "nocache": "as matcher-2, without the memory of segmented blocks",
    "pruned": "vocabulary from a 1/4 sample (`--fit-sample 5000`), workers 2",
    "large": "vocabulary from a 1/4 sample (`--fit-sample 50000`), workers 2",
}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| case | what | experts × needs | fit s | match+write s | total s | CPU s | needs/s (match) | × reference "
        "| peak MiB (PSS) | tag hit@10 | agreement@10 | same bytes as matcher-1 | load before |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    same = {True: "yes", False: "**no**"}
    for case, r in report["cases"].items():
        ratio = r.get("throughput_vs_reference")
        agree = r.get("agreement_at_10_with_matcher")
        memory = f"{r['peak_pss_mib']:.0f}"
        lines.append(
            f"| {case} | {WHAT[case]} | {r['experts']:,} × {r['needs']:,} | {r['fit']:.1f} | {r['match_write']:.1f} "
            f"| {r['total']:.1f} | {r['cpu']:.1f} | {r['needs_per_second_match']:.0f} | {'' if ratio is None else f'{ratio:.2f}×'} "
            f"| {memory} | {r.get('tag_hit_at_10', float('nan')):.3f} | {'' if agree is None else f'{agree:.3f}'} "
            f"| {same.get(r.get('same_bytes_as_matcher_1'), '')} | {r['loadavg_before'][0]:.2f} |"
        )
    for case in LARGE:
        if case not in report["cases"]:
            continue
        large = report["cases"][case]
        lines += [
            "",
            f"{case}: {large['experts']:,} experts, {large['needs']:,} needs; fit {large['fit']:.0f} s, "
            f"{large['needs_per_second_match']:.0f} needs/s; 200,000 needs extrapolated: "
            f"{large['extrapolated_200k_needs_seconds'] / 60:.1f} min; peak {large['peak_pss_mib']:.0f} MiB (PSS of all "
            f"processes), {large['peak_rss_mib']['process']:.0f} MiB VmHWM of the main process.",
        ]
    info = report["machine"]
    data = report["data"]
    lines += [
        "",
        f"Generated texts: {data['distinct_blocks']:,} distinct jieba blocks of {data['blocks']:,} "
        f"({data['distinct_blocks'] / data['blocks']:.1%}).",
    ]
    lines += [
        "",
        f"{info['nproc']} CPUs ({info['cpu']}), Python {report['python']}, {report['date']}, "
        f"load average {info['loadavg_before'][0]:.2f} before, {info['loadavg_after'][0]:.2f} after.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
