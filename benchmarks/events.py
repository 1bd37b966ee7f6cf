#!/usr/bin/env python3
"""Events: how many open needs group matching serves, at what cost in expert capacity, how fast.

On the embedded libraries (a fresh database seeded from ``data/``, a model trained on it), the planner
of ``matcher events plan`` proposes events for four weeks; the benchmark reports

* the share of open needs served by events with fit at or above the threshold (and the share a
  one-to-one assignment of the same experts' free capacity serves at that threshold, greedily by score);
* expert capacity units used per need served: one per event for events, one per need one-to-one;
* the optimiser's time and status (and whether it stopped at its limit);
* that the plan breaks no constraint (:func:`matcher.jobs.planning.check_plan`) and that the database
  accepts every event and attendee when the plan is committed (the same rules as the API).

A second part times the optimiser on generated instances larger than the base's libraries.

Usage::

    .venv/bin/python benchmarks/events.py --out /tmp/events.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from matcher.jobs.planning import PlanInputs, PlanOptions, check_plan, commit_plan, eligibility, plan_inputs, solve  # noqa: E402
from matcher.matching.rank import WEAK_SCORE  # noqa: E402

logger = logging.getLogger("benchmarks.events")


def one_to_one(inputs: PlanInputs, threshold: float) -> int:
    """Needs a one-to-one assignment serves: best pairs first, one unit of free capacity per need."""
    free = inputs.experts["free"].to_numpy().copy()
    allowed = eligibility(inputs, threshold)
    pairs = [(-inputs.scores[n, e], n, e) for n, e in zip(*np.nonzero(allowed), strict=True)]
    served: set[int] = set()
    for _, n, e in sorted(pairs):
        if n not in served and free[e] > 0:
            served.add(n)
            free[e] -= 1
    return len(served)


def embedded(period: tuple[date, date], threshold: float, time_limit: float) -> dict[str, Any]:
    from matcher.jobs.training import train_version

    folder = Path(tempfile.mkdtemp(prefix="events-bench-"))
    url = f"sqlite:///{folder / 'matcher.sqlite3'}"
    started = time.perf_counter()
    train_version(
        {"reranker__method": "none"}, data=ROOT / "data", models=folder / "models", database_url=url, evaluate=False
    )
    trained = time.perf_counter() - started
    started = time.perf_counter()
    inputs = plan_inputs(database_url=url, models_dir=folder / "models")
    gathered = time.perf_counter() - started
    options = PlanOptions(starts=period[0], ends=period[1], threshold=threshold, time_limit=time_limit)
    result = solve(inputs, options)
    body = result.body()
    problems = check_plan(body, inputs, options)
    served = sum(len(e["needs"]) for e in body["events"])
    open_needs = len(inputs.needs)
    solo = one_to_one(inputs, threshold)
    committed = commit_plan(body, url=url)  # raises when the database refuses an event or attendee
    return {
        "open_needs": open_needs,
        "events": len(body["events"]),
        "needs_served_by_events": served,
        "share_served_by_events": round(served / open_needs, 4) if open_needs else 0.0,
        "mean_group_size": round(served / len(body["events"]), 2) if body["events"] else 0.0,
        "mean_fit_served": round(float(np.mean([n["score"] for e in body["events"] for n in e["needs"]])), 4)
        if served
        else 0.0,
        "units_per_need_events": round(len(body["events"]) / served, 4) if served else None,
        "needs_served_one_to_one": solo,
        "share_served_one_to_one": round(solo / open_needs, 4) if open_needs else 0.0,
        "units_per_need_one_to_one": 1.0,
        "unserved_reasons": pd.Series([u["reason"].split(":")[0] for u in body["unserved"]]).value_counts().to_dict(),
        "optimiser_seconds": round(result.seconds, 3),
        "status": result.status,
        "stopped_at_limit": result.stopped_at_limit,
        "constraint_problems": problems,
        "committed_events": len(committed),
        "train_seconds": round(trained, 2),
        "inputs_seconds": round(gathered, 2),
    }


def generated(n_needs: int, n_experts: int, n_venues: int, seed: int) -> PlanInputs:
    """A random instance shaped like the base's libraries, larger."""
    rng = np.random.default_rng(seed)
    counties = ["雄县", "容城县", "安新县"]
    tags = ["小组工作", "个案管理", "政策解读", "专业督导", "社区治理", "能力建设", "养老服务", "儿童保护"]
    needs = pd.DataFrame(
        {
            "need_id": [f"N{i:05d}" for i in range(n_needs)],
            "org_id": [f"O{rng.integers(0, n_needs // 5):04d}" for _ in range(n_needs)],
            "county": [counties[rng.integers(0, 3)] for _ in range(n_needs)],
            "tags": [sorted(set(rng.choice(tags, size=rng.integers(1, 3)).tolist())) for _ in range(n_needs)],
            "text": ["需要培训"] * n_needs,
        }
    )
    experts = pd.DataFrame(
        {
            "id": [f"E{i:04d}" for i in range(n_experts)],
            "name": [f"专家{i}" for i in range(n_experts)],
            "org_id": [None] * n_experts,
            "counties": [[] if rng.random() < 0.4 else [counties[rng.integers(0, 3)]] for _ in range(n_experts)],
            "specialties": [[tags[rng.integers(0, len(tags))]] for _ in range(n_experts)],
            "free": rng.integers(0, 4, size=n_experts).tolist(),
            "available": [True] * n_experts,
        }
    )
    venues = pd.DataFrame(
        {
            "id": [f"R{i:03d}" for i in range(n_venues)],
            "name": [f"场地{i}" for i in range(n_venues)],
            "county": [(["", *counties])[rng.integers(0, 4)] for _ in range(n_venues)],
            "seats": rng.integers(15, 61, size=n_venues).tolist(),
        }
    )
    scores = rng.beta(2, 5, size=(n_needs, n_experts))
    return PlanInputs(needs, experts, scores, venues, [])


def scale(time_limit: float) -> list[dict[str, Any]]:
    rows = []
    for n_needs, n_experts, n_venues in ((500, 100, 20), (2000, 300, 40)):
        inputs = generated(n_needs, n_experts, n_venues, seed=n_needs)
        options = PlanOptions(starts=date(2030, 3, 4), ends=date(2030, 3, 29), threshold=0.3, time_limit=time_limit)
        result = solve(inputs, options)
        served = sum(len(e["needs"]) for e in result.events)
        rows.append(
            {
                "needs": n_needs,
                "experts": n_experts,
                "venues": n_venues,
                "events": len(result.events),
                "needs_served": served,
                "seconds": round(result.seconds, 2),
                "status": result.status,
                "stopped_at_limit": result.stopped_at_limit,
                "constraint_problems": len(check_plan(result.body(), inputs, options)),
            }
        )
        logger.info("generated %s", rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="Write the results as JSON here.")
    parser.add_argument("--from", dest="starts", default="2026-11-02")
    parser.add_argument("--to", dest="ends", default="2026-11-27")
    parser.add_argument("--threshold", type=float, default=WEAK_SCORE)
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--skip-scale", action="store_true", help="Only the embedded libraries.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results: dict[str, Any] = {
        "embedded": embedded(
            (date.fromisoformat(args.starts), date.fromisoformat(args.ends)), args.threshold, args.time_limit
        )
    }
    if not args.skip_scale:
        results["generated"] = scale(args.time_limit)
    text = json.dumps(results, ensure_ascii=False, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
