#!/usr/bin/env python3
"""Assignment at scale: ``matcher assign`` on 20,000 generated needs and 20,000 experts with capacities.

The libraries are those of ``batch.py`` (the generator of ``latency.py``; experts have capacities of
1–5 and no load, needs one or two tags and a county), written as JSONL files and given to
:func:`matcher.jobs.assign.job.run_assign`, the function behind ``matcher assign --needs … --experts …``.
Every stage is timed (load = read the files + fit the matcher, candidates = the top N of every need,
feasibility, solve = greedy + min-cost flow, write), and the result is checked: no expert beyond
capacity, the flow's objective against greedy's. A second part times the solver alone on a random
graph of the same size.

Usage::

    .venv/bin/python benchmarks/assign.py --out /tmp/assign.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch import dataset, log, peak_rss_mib, read_frames
from latency import machine

SCENARIOS = {
    "d=1": {"per_need": 1},
    "d=2, cover first": {"per_need": 2, "cover_first": True},
}


def write_jsonl(frame: pd.DataFrame, path: Path, columns: dict[str, str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in frame.to_dict("records"):
            record = {name: row[source] for name, source in columns.items()}
            handle.write(json.dumps(record, ensure_ascii=False, default=list) + "\n")
    return path


def solver_only(needs: int, experts: int, candidates: int, seed: int) -> dict[str, Any]:
    """The solver on a random candidate graph of the same size (scores uniform, capacities 1–5)."""
    from matcher.jobs.assign.solver import Problem, solve_greedy, solve_min_cost_flow

    rng = np.random.default_rng(seed)
    need_ids = [f"N{i:06d}" for i in range(needs)]
    target_ids = [f"E{j:06d}" for j in range(experts)]
    frame = pd.DataFrame(
        {
            "need_id": np.repeat(need_ids, candidates),
            "target_id": np.asarray(target_ids, dtype=object)[rng.integers(0, experts, needs * candidates)],
            "score": np.round(rng.random(needs * candidates), 6),
        }
    ).drop_duplicates(["need_id", "target_id"])
    free = dict(zip(target_ids, rng.integers(1, 6, experts).tolist(), strict=True))
    result = {}
    for name, per_need, cover in (("d=1", 1, False), ("d=2, cover first", 2, True)):
        started = time.perf_counter()
        problem = Problem.build(need_ids, target_ids, frame, slots=per_need, free=free)
        built = time.perf_counter()
        greedy = solve_greedy(problem, cover_first=cover)
        greedy_done = time.perf_counter()
        flow = solve_min_cost_flow(problem, cover_first=cover)
        finished = time.perf_counter()
        result[name] = {
            "arcs": problem.n_arcs,
            "build_seconds": built - started,
            "greedy_seconds": greedy_done - built,
            "flow_seconds": finished - greedy_done,
            "objective_flow": problem.objective(flow) / 1e6,
            "objective_greedy": problem.objective(greedy) / 1e6,
        }
        log(f"solver only, {name}: flow {finished - greedy_done:.2f} s over {problem.n_arcs} arcs")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experts", type=int, default=20000)
    parser.add_argument("--needs", type=int, default=20000)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="processes scoring the candidates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "matcher-bench")
    parser.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)

    import logging

    from matcher.jobs.assign.job import AssignInputs, AssignOptions, run_assign

    logging.getLogger("jieba").setLevel(logging.WARNING)
    info = machine()
    load_before = os.getloadavg()
    experts, needs = read_frames(*dataset(args.cache, args.experts, args.needs, args.seed))
    capacity = dict(zip(experts["id"], experts["capacity"], strict=True))
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="matcher-assign-") as folder:
        work = Path(folder)
        expert_file = write_jsonl(
            experts.assign(text=["\n".join(t for t in texts if t) for texts in experts["texts"]]),
            work / "experts.jsonl",
            {c: c for c in ("id", "name", "text", "tags", "counties", "capacity")},
        )
        need_file = write_jsonl(needs, work / "needs.jsonl", {c: c for c in ("id", "text", "tags", "counties")})
        for name, settings in SCENARIOS.items():
            log(f"matcher assign, {name} ...")
            out = work / f"plan-{name[:3]}.parquet"
            started = time.perf_counter()
            report = run_assign(
                out,
                options=AssignOptions(candidates=args.candidates, **settings),
                inputs=AssignInputs(needs_file=need_file, target_files={"expert": expert_file}),
                workers=args.workers,
                progress=log,
            )
            total = time.perf_counter() - started
            summary = json.loads(out.with_name(f"{out.stem}.summary.json").read_text(encoding="utf-8"))
            plan = pd.read_parquet(out)
            chosen = plan.loc[plan["role"] != "alternate"]
            load = chosen.groupby("target_id").size()
            over = int(sum(count > capacity[target] for target, count in load.items()))
            result = report.results["expert"]
            runs[name] = {
                "total_seconds": total,
                "stage_seconds": summary["stage_seconds"],
                "solver_seconds": result.seconds,
                "arcs": result.arcs,
                "assigned": result.assigned,
                "needs_full": result.needs_full,
                "needs_partial": result.needs_partial,
                "needs_none": result.needs_none,
                "objective": result.objective,
                "objective_greedy": result.greedy_objective,
                "experts_over_capacity": over,
                "feasibility_findings": len(result.feasibility.findings),
                "feasibility_first": result.feasibility.lines("en")[:3],
            }
            log(f"{name}: {total:.1f} s, {result.summary()}")
    solver = solver_only(args.needs, args.experts, args.candidates, args.seed)
    report = {
        "config": vars(args) | {"cache": str(args.cache), "out": str(args.out)},
        "machine": {**info, "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "runs": runs,
        "solver_only": solver,
        "peak_rss_mib": peak_rss_mib(),
    }
    print(markdown(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


def markdown(report: dict[str, Any]) -> str:
    config = report["config"]
    lines = [
        f"`matcher assign` on {config['needs']:,} needs × {config['experts']:,} experts (capacity 1–5), "
        f"top {config['candidates']} candidates per need, scoring with {config['workers']} processes:",
        "",
        "| run | load (read + fit) s | candidates s | feasibility s | solve s (greedy; flow) | write s | total s "
        "| arcs | assigned | needs full / part / none | objective flow | greedy | over capacity |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, run in report["runs"].items():
        stage, solver = run["stage_seconds"], run["solver_seconds"]
        lines.append(
            f"| {name} | {stage.get('load', 0):.1f} | {stage.get('candidates', 0):.1f} "
            f"| {stage.get('feasibility', 0):.2f} | {stage.get('solve', 0):.2f} "
            f"({solver.get('greedy', 0):.2f}; {solver.get('min-cost flow', 0):.2f}) | {stage.get('write', 0):.2f} "
            f"| {run['total_seconds']:.1f} | {run['arcs']:,} | {run['assigned']:,} "
            f"| {run['needs_full']:,} / {run['needs_partial']:,} / {run['needs_none']:,} "
            f"| {run['objective']:.3f} | {run['objective_greedy']:.3f} | {run['experts_over_capacity']} |"
        )
    lines += [
        "",
        "Solver alone, random graph of the same size:",
        "",
        "| run | arcs | build s | greedy s | min-cost flow s | objective flow | greedy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in report["solver_only"].items():
        lines.append(
            f"| {name} | {run['arcs']:,} | {run['build_seconds']:.2f} | {run['greedy_seconds']:.2f} "
            f"| {run['flow_seconds']:.2f} | {run['objective_flow']:.3f} | {run['objective_greedy']:.3f} |"
        )
    info = report["machine"]
    lines += [
        "",
        f"{info['nproc']} CPUs ({info['cpu']}), {info['date']}, load average {info['loadavg_before'][0]:.2f} before, "
        f"{info['loadavg_after'][0]:.2f} after; peak RSS {report['peak_rss_mib']['process']:.0f} MiB.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
