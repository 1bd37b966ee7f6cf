"""``matcher assign``: min-cost flow against greedy and brute force, capacities, conflicts, feasibility, booking."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matcher.errors import ConflictError
from matcher.jobs.assign import booking as bookings
from matcher.jobs.assign import solver as assign
from matcher.jobs.assign.feasibility import check_feasibility
from matcher.jobs.assign.job import AssignInputs, AssignOptions, run_assign
from matcher.jobs.assign.solver import AssignmentError, Problem, alternates, solve, solve_greedy, solve_min_cost_flow
from tests.test_batch import write_rows

# ------------------------------------------------------------------ random instances


def random_problem(seed: int, *, needs: int = 5, targets: int = 4, per_need: int = 2) -> Problem:
    rng = np.random.default_rng(seed)
    need_ids = [f"N{i}" for i in range(needs)]
    target_ids = [f"E{j}" for j in range(targets)]
    rows = []
    for need_id in need_ids:
        for target_id in rng.choice(target_ids, size=int(rng.integers(0, 4)), replace=False):
            rows.append((need_id, str(target_id), round(float(rng.choice([0.1, 0.25, 0.4, 0.5, 0.7, 0.9])), 6)))
    candidates = pd.DataFrame(rows, columns=["need_id", "target_id", "score"])
    free = {t: (None if rng.random() < 0.15 else int(rng.integers(0, 3))) for t in target_ids}
    slots = {n: int(rng.integers(0, per_need + 1)) for n in need_ids}
    return Problem.build(need_ids, target_ids, candidates, slots=slots, free=free)


def brute_force(problem: Problem, *, cover_first: bool = False) -> tuple[int, int]:
    """Best (needs covered, total scaled score) by enumerating every subset of arcs per need."""
    per_need = []
    for need in range(len(problem.need_ids)):
        arcs = np.flatnonzero(problem.arc_need == need).tolist()
        options = [c for size in range(problem.slots[need] + 1) for c in itertools.combinations(arcs, size)]
        per_need.append(options)
    best = (-1, -1)
    for combo in itertools.product(*per_need):
        chosen = [arc for part in combo for arc in part]
        counts = np.bincount(problem.arc_target[chosen], minlength=len(problem.target_ids))
        if any(problem.free[t] >= 0 and counts[t] > problem.free[t] for t in range(len(problem.target_ids))):
            continue
        value = (sum(1 for part in combo if part) if cover_first else 0, int(problem.arc_score[chosen].sum()))
        best = max(best, value)
    return best


def within_limits(problem: Problem, chosen: np.ndarray) -> bool:
    per_need = np.bincount(problem.arc_need[chosen], minlength=len(problem.need_ids))
    per_target = np.bincount(problem.arc_target[chosen], minlength=len(problem.target_ids))
    limited = problem.free >= 0
    return bool((per_need <= problem.slots).all() and (per_target[limited] <= problem.free[limited]).all())


@pytest.mark.parametrize("seed", range(40))
def test_flow_equals_brute_force_and_beats_greedy(seed: int) -> None:
    problem = random_problem(seed)
    flow = solve_min_cost_flow(problem)
    greedy = solve_greedy(problem)
    assert within_limits(problem, flow) and within_limits(problem, greedy)
    assert problem.objective(flow) == brute_force(problem)[1]
    assert problem.objective(flow) >= problem.objective(greedy)


@pytest.mark.parametrize("seed", range(40))
def test_cover_first_covers_most_needs_then_scores_most(seed: int) -> None:
    problem = random_problem(seed + 1000)
    flow = solve_min_cost_flow(problem, cover_first=True)
    assert within_limits(problem, flow)
    covered = int((np.bincount(problem.arc_need[flow], minlength=len(problem.need_ids)) > 0).sum())
    assert (covered, problem.objective(flow)) == brute_force(problem, cover_first=True)
    greedy = solve_greedy(problem, cover_first=True)
    assert within_limits(problem, greedy)
    greedy_covered = int((np.bincount(problem.arc_need[greedy], minlength=len(problem.need_ids)) > 0).sum())
    assert (covered, problem.objective(flow)) >= (greedy_covered, problem.objective(greedy))


def test_cover_first_trades_score_for_coverage() -> None:
    """E1 (1 place) is worth most to N1, but N2 has no one else: cover-first gives it to N2."""
    candidates = pd.DataFrame(
        [("N1", "E1", 0.9), ("N1", "E2", 0.8), ("N2", "E1", 0.3)], columns=["need_id", "target_id", "score"]
    )
    problem = Problem.build(["N1", "N2"], ["E1", "E2"], candidates, slots=2, free={"E1": 1, "E2": 1})
    best = problem.need_ids[problem.arc_need[solve_min_cost_flow(problem)]].tolist()
    assert best == ["N1", "N1"]  # 1.7: N2 gets nobody
    fair = solve_min_cost_flow(problem, cover_first=True)
    pairs = sorted(
        zip(problem.need_ids[problem.arc_need[fair]], problem.target_ids[problem.arc_target[fair]], strict=True)
    )
    assert pairs == [("N1", "E2"), ("N2", "E1")]


def test_greedy_can_be_beaten() -> None:
    """Greedy takes the best pair first; the flow finds the better total."""
    candidates = pd.DataFrame(
        [("N1", "E1", 0.9), ("N1", "E2", 0.85), ("N2", "E1", 0.8)], columns=["need_id", "target_id", "score"]
    )
    problem = Problem.build(["N1", "N2"], ["E1", "E2"], candidates, slots=1, free={"E1": 1, "E2": 1})
    assert problem.objective(solve_greedy(problem)) == 900_000
    assert problem.objective(solve_min_cost_flow(problem)) == 1_650_000


def test_alternates_have_free_places() -> None:
    candidates = pd.DataFrame(
        [("N1", "E1", 0.9), ("N1", "E2", 0.5), ("N1", "E3", 0.4), ("N2", "E2", 0.6)],
        columns=["need_id", "target_id", "score"],
    )
    problem = Problem.build(["N1", "N2"], ["E1", "E2", "E3"], candidates, slots=1, free={"E1": 1, "E2": 1, "E3": 2})
    chosen = solve_min_cost_flow(problem)
    spare = alternates(problem, chosen, 3)
    listed = [(problem.need_ids[problem.arc_need[a]], problem.target_ids[problem.arc_target[a]]) for a in spare]
    assert listed == [("N1", "E3")]  # E2 is booked by N2, E1 by N1 itself


def test_time_limit_falls_back_to_greedy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Min-cost flow cannot be interrupted: past the deadline the child is killed and greedy is used."""
    problem = random_problem(3)
    real = assign.solve_min_cost_flow

    def slow(*args, **kwargs):
        time.sleep(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(assign, "solve_min_cost_flow", slow)  # the forked child runs this one
    started = time.monotonic()
    solution = solve(problem, deadline=time.monotonic() + 1.0)
    assert time.monotonic() - started < 10
    assert solution.method == "greedy" and not solution.optimal
    assert "time limit" in solution.note and "greedy" in solution.note
    assert solution.objective == problem.objective(solve_greedy(problem))
    monkeypatch.setattr(assign, "solve_min_cost_flow", real)
    within = solve(problem, deadline=time.monotonic() + 60)
    assert within.method == "min-cost flow" and within.optimal


# ------------------------------------------------------------------------- feasibility


def test_feasibility_report_in_plain_words() -> None:
    needs = pd.DataFrame(
        {
            "id": [f"N{i:02d}" for i in range(16)],
            "tags": [["个案管理"]] * 14 + [["养老服务"]] * 2,
            "counties": [["雄县"]] * 14 + [["安新县"]] * 2,
        }
    )
    targets = pd.DataFrame(
        {
            "id": ["E1", "E2", "E3", "E4"],
            "tags": [["个案管理"], ["个案管理", "督导"], ["个案管理"], ["养老服务"]],
            "counties": [["雄县"], ["雄县", "容城县"], ["容城县"], []],
            "free": [2, 1, 9, 4],
            "available": [True, True, True, True],
        }
    )
    slots = dict.fromkeys(needs["id"], 1)
    report = check_feasibility(needs, targets, slots, candidates=dict.fromkeys(needs["id"], 3))
    assert not report.feasible
    assert report.lines("en") == [
        "14 needs in 雄县 need 个案管理 experts but only 3 places are free: raise capacities or add experts"
    ]
    assert report.lines("zh") == ["雄县有14个需求需要个案管理方面的专家，但只有3个空闲名额：请提高专家容量或增加专家"]
    twice = check_feasibility(needs, targets, dict.fromkeys(needs["id"], 2), candidates=dict.fromkeys(needs["id"], 3))
    assert twice.lines("en")[0] == (
        "14 needs in 雄县 need 个案管理 experts (28 places in all) but only 3 places are free: "
        "raise capacities or add experts"
    )
    assert twice.lines("en")[1] == (
        "16 needs want 32 places in all but only 16 are free: at most 16 can be filled; raise capacities or add experts"
    )
    fine = check_feasibility(needs.iloc[14:], targets, slots, candidates=dict.fromkeys(needs["id"], 1))
    assert fine.feasible and fine.lines("en") == ["every category and county has enough free experts for its needs"]
    nobody = pd.DataFrame({"id": ["N99"], "tags": [["残障服务"]], "counties": [["安新县"]]})
    assert check_feasibility(nobody, targets, {"N99": 1}).lines("en") == [
        "1 need in 安新县 needs 残障服务 experts but no 残障服务 expert serves 安新县: add experts"
    ]
    stranded = check_feasibility(needs.iloc[14:], targets, slots, candidates={"N14": 1}, min_score=0.3)
    assert stranded.lines("en") == [
        "1 need has no eligible expert scoring at least 0.3 (N15): lower --min-score, add experts or free their capacity"
    ]


# ------------------------------------------------------------------------- the job (files)


NEEDS = [
    {"id": f"N{i}", "text": text, "tags": tags, "counties": ["雄县"], "org_id": org}
    for i, (text, tags, org) in enumerate(
        [
            ("我们需要个案管理方面的督导，学习转介流程", ["个案管理"], "O1"),
            ("个案管理流程不清楚，想请专家指导个案会议", ["个案管理"], "O2"),
            ("个案会谈和转介怎么做，需要个案管理督导", ["个案管理"], "O3"),
            ("社区里失能老人多，想开展居家养老服务", ["养老服务"], "O4"),
            ("居家养老服务项目设计，需要为老服务专家", ["养老服务"], "O5"),
            ("学校里出现欺凌现象，想做儿童保护项目", ["儿童保护"], "O1"),
        ],
        start=1,
    )
]
EXPERTS = [
    {"id": "E01", "text": "长期研究个案管理的流程与转介，带过多期个案会议督导。", "tags": ["个案管理"], "capacity": 1},
    {"id": "E02", "text": "个案管理实务督导，熟悉个案会谈与转介流程。", "tags": ["个案管理"], "capacity": 1},
    {"id": "E03", "text": "关注居家养老与失能老人照护，熟悉为老服务项目。", "tags": ["养老服务"], "capacity": 1},
    {"id": "E04", "text": "儿童保护与预防校园欺凌，心语小屋项目督导。", "tags": ["儿童保护"], "capacity": 2},
    {
        "id": "E05",
        "text": "养老服务与个案管理的综合督导。",
        "tags": ["养老服务", "个案管理"],
        "capacity": 1,
        "org_id": "O4",
    },
]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    experts = [{"org_id": None, **e, "counties": ["雄县"], "name": e["id"]} for e in EXPERTS]
    return {"needs": write_rows(folder / "needs.csv", NEEDS), "expert": write_rows(folder / "experts.csv", experts)}


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_job_respects_capacity_conflicts_and_forced(files: dict[str, Path], tmp_path: Path) -> None:
    conflicts = write_rows(tmp_path / "conflicts.csv", [{"expert_id": "E01", "org_id": "O2", "relation": "督导"}])
    forced = write_rows(tmp_path / "forced.csv", [{"need_id": "N6", "expert_id": "E04"}])
    out = tmp_path / "plan.csv"
    messages: list[str] = []
    report = run_assign(
        out,
        options=AssignOptions(per_need=1, alternates=2, candidates=5),
        inputs=AssignInputs(
            needs_file=files["needs"], target_files={"expert": files["expert"]}, conflicts=conflicts, forced=forced
        ),
        progress=messages.append,
    )
    assert [m.split(":")[0] for m in messages if m.startswith("[")] == [
        "[1/5] load",
        "[2/5] candidates",
        "[3/5] feasibility",
        "[4/5] solve",
        "[5/5] write",
    ]
    rows = read(out)
    assert list(rows[0]) == ["need_id", "target_type", "target_id", "role", "rank", "score"]
    chosen = [r for r in rows if r["role"] != "alternate"]
    assert {"need_id": "N6", "target_type": "expert", "target_id": "E04", "role": "forced", "rank": "1"}.items() <= {
        **next(r for r in chosen if r["need_id"] == "N6")
    }.items()
    loads = {r["target_id"]: r for r in read(out.with_name("plan.loads.csv"))}
    capacity = {e["id"]: e["capacity"] for e in EXPERTS}
    for expert_id, row in loads.items():
        assert int(row["load_after"]) <= capacity[expert_id]
        assert int(row["assigned"]) == sum(r["target_id"] == expert_id for r in chosen)
    pairs = {(r["need_id"], r["target_id"]) for r in chosen}
    assert ("N2", "E01") not in pairs  # conflicts file
    assert ("N4", "E05") not in pairs  # affiliation: E05 belongs to O4
    for alternate in (r for r in rows if r["role"] == "alternate"):
        assert int(loads[alternate["target_id"]]["load_after"]) < capacity[alternate["target_id"]]
    summary = json.loads(out.with_name("plan.summary.json").read_text(encoding="utf-8"))
    result = summary["results"]["expert"]
    assert result["method"] == "min-cost flow" and result["optimal"] and result["forced"] == 1
    assert result["objective"] == pytest.approx(sum(float(r["score"]) for r in chosen), abs=1e-6)
    assert result["objective"] >= result["greedy_objective"]
    unassigned = read(out.with_name("plan.unassigned.csv"))
    assigned_needs = {r["need_id"] for r in chosen}
    assert {r["need_id"] for r in unassigned} == {n["id"] for n in NEEDS} - assigned_needs
    assert all(r["reason"] for r in unassigned)
    assert report.results["expert"].assigned == len(chosen)


def test_forced_pairs_that_break_a_rule_are_refused(files: dict[str, Path], tmp_path: Path) -> None:
    forced = write_rows(
        tmp_path / "forced.csv",
        [
            {"need_id": "N4", "expert_id": "E05"},
            {"need_id": "N1", "expert_id": "E03"},
            {"need_id": "N2", "expert_id": "E03"},
        ],
    )
    with pytest.raises(AssignmentError) as caught:
        run_assign(
            tmp_path / "plan.csv",
            inputs=AssignInputs(needs_file=files["needs"], target_files={"expert": files["expert"]}, forced=forced),
        )
    message = str(caught.value)
    assert "E05 has a conflict of interest with need N4" in message
    assert "expert E03 is forced onto 2 needs but has 1 free places" in message
    assert not (tmp_path / "plan.csv").exists()


def test_reasons_for_needs_left_short(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "plan.parquet"
    run_assign(
        out,
        options=AssignOptions(per_need=2, candidates=5, min_score=0.05, cover_first=True),
        inputs=AssignInputs(needs_file=files["needs"], target_files={"expert": files["expert"]}),
    )
    frame = pd.read_parquet(out.with_name("plan.unassigned.parquet"))
    assert set(frame.columns) == {"need_id", "target_type", "wanted", "assigned", "reason"}
    assert (frame["wanted"] == 2).all() and (frame["assigned"] < 2).all()
    assert frame["reason"].str.contains("fully booked|candidate|minimum score").all()
    plan = pd.read_parquet(out)
    assigned = plan.loc[plan["role"] == "assigned"]
    assert assigned["need_id"].nunique() == len(NEEDS)  # cover-first: each need got one first (6 places, 6 needs)


# ------------------------------------------------------------------------ the database


def _env(trained, url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MATCHER_MODELS_DIR=str(trained["models"]), MATCHER_DATA_DIR=str(trained["data"]), DATABASE_URL=url)
    env.update(extra)
    return env


def _db(trained, url: str) -> dict[str, object]:
    return {"database_url": url, "models_dir": trained["models"], "data_dir": trained["data"]}


def _open_engagements(url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from matcher.store.libraries import load_libraries_db
    from matcher.store.transactions import transaction

    with transaction(url) as session:
        libs = load_libraries_db(session)
    engagements = libs.engagements.loc[(libs.engagements["status"] == "open")]
    return engagements, libs.experts


def test_commit_books_engagements_within_capacity(trained, db_url: str, tmp_path: Path) -> None:
    from matcher.store.seed import ensure_database

    ensure_database(db_url, trained["data"])
    before, _ = _open_engagements(db_url)
    out = tmp_path / "plan.csv"
    report = run_assign(
        out, options=AssignOptions(per_need=2), commit=True, inputs=AssignInputs(**_db(trained, db_url))
    )
    chosen = [r for r in read(out) if r["role"] != "alternate"]
    assert report.booked == len(chosen) > 0
    after, experts = _open_engagements(db_url)
    assert len(after) == len(before) + len(chosen)
    load = after.loc[after["target_type"] == "expert"].groupby("target_id").size()
    capacity = experts.set_index("id")["capacity"]
    assert (load <= capacity.reindex(load.index)).all()
    again = run_assign(
        tmp_path / "again.csv",
        options=AssignOptions(per_need=2),
        commit=True,
        inputs=AssignInputs(**_db(trained, db_url)),
    )
    assert again.results["expert"].needs < report.results["expert"].needs  # booked needs are matched, not open


def test_two_concurrent_commits_never_double_book(
    trained, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both runs plan on the same state, then race to book: the second finds its plan stale."""
    from matcher.jobs import sources
    from matcher.store import seed

    seed.ensure_database(db_url, trained["data"])
    # migrated once above: Alembic's upgrade is not thread-safe within one process (a process migrates once)
    monkeypatch.setattr(sources, "ensure_database", lambda *args, **kwargs: False)
    before, _ = _open_engagements(db_url)
    barrier = threading.Barrier(2, timeout=60)
    plain = bookings.transaction

    def when_both_planned(*args: object, **kwargs: object):  # the booking transaction starts after both plans
        barrier.wait()
        return plain(*args, **kwargs)

    monkeypatch.setattr(bookings, "transaction", when_both_planned)
    outcomes: dict[int, object] = {}

    def run(number: int) -> None:
        try:
            outcomes[number] = run_assign(
                tmp_path / f"plan{number}.csv",
                options=AssignOptions(per_need=1),
                commit=True,
                inputs=AssignInputs(**_db(trained, db_url)),
            )
        except Exception as error:  # collected and checked below
            outcomes[number] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    booked = [o for o in outcomes.values() if not isinstance(o, Exception)]
    failed = [o for o in outcomes.values() if isinstance(o, Exception)]
    assert len(booked) == 1 and len(failed) == 1, outcomes
    assert isinstance(failed[0], ConflictError) and "run matcher assign again" in str(failed[0])
    engagements, experts = _open_engagements(db_url)
    load = engagements.loc[engagements["target_type"] == "expert"].groupby("target_id").size()
    capacity = experts.set_index("id")["capacity"]
    assert (load <= capacity.reindex(load.index)).all()
    assert len(engagements) == len(before) + booked[0].booked  # nothing of the stale plan was written
    new = engagements.loc[~engagements["id"].isin(before["id"])]
    assert new.groupby("need_id").size().max() == 1  # one expert per need, as asked


def test_cli_assign(trained, tmp_path: Path) -> None:
    env = _env(trained, trained["database"])
    out = tmp_path / "plan.csv"
    result = subprocess.run(
        [sys.executable, "-m", "matcher.cli", "assign", "--out", str(out), "--per-need", "2", "--cover-first"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "[1/5] load" in result.stderr and "[4/5] solve" in result.stderr
    assert result.stdout.startswith("experts: ") and "min-cost flow, optimal" in result.stdout
    assert out.exists() and out.with_name("plan.summary.json").exists()
    check = subprocess.run(
        [sys.executable, "-m", "matcher.cli", "assign", "--check", "--per-need", "4"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("== expert: ")
    refused = subprocess.run(
        [sys.executable, "-m", "matcher.cli", "assign", "--out", "x.csv", "--experts", "e.csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert refused.returncode == 2 and "--experts goes with --needs" in refused.stderr


def test_commit_with_files_is_refused(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(AssignmentError, match="cannot be used with --needs files"):
        run_assign(
            tmp_path / "p.csv",
            inputs=AssignInputs(needs_file=files["needs"], target_files={"expert": files["expert"]}),
            commit=True,
        )


def test_assign_benchmark_runs_small(tmp_path: Path) -> None:
    """The assignment benchmark still runs (at a tiny size)."""
    from tests.conftest import ROOT

    out = tmp_path / "assign.json"
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/assign.py",
            "--experts",
            "200",
            "--needs",
            "150",
            "--workers",
            "1",
            *("--cache", str(tmp_path / "cache"), "--out", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert all(run["experts_over_capacity"] == 0 for run in report["runs"].values())
    assert all(run["objective"] >= run["objective_greedy"] for run in report["runs"].values())
