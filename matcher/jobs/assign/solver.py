"""Capacity-constrained assignment: each need gets up to ``d`` targets, maximising the total score.

Scoring and assignment talk through a flat candidate table (``need_id, target_id, score``: the top N
eligible targets of each need, from :meth:`Matcher.match`). This module turns it into an integer
problem (:class:`Problem`) and solves it two ways:

* :func:`solve_min_cost_flow`, exact: a sparse min-cost-flow graph (OR-Tools ``SimpleMinCostFlow``)
  ``source -> need (capacity: places wanted) -> target (one arc per candidate, cost -score × 10^6)
  -> sink (capacity: free places)``, plus a ``source -> sink`` bypass so that a place may stay empty.
  With ``cover_first`` the first place of every need carries a bonus larger than any total score,
  so the solution covers as many needs as possible and, among those solutions, has the largest total
  score: no need gets a second target while another need that could have had one has none.
* :func:`solve_greedy`, fast and always available: candidate pairs best score first (with
  ``cover_first``, one pass for first places, then one for the rest).

Min-cost flow cannot be interrupted, so :func:`solve` runs it in a child process when a time limit
is set and falls back to the greedy result (computed first) when the limit passes.

Scores are integers in the graph (``round(score × 10^6)``: scores carry 6 decimals), so the objective
is exact. Everything public speaks in external ids; only :class:`Problem` knows indices.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from matcher.errors import MatcherError

logger = logging.getLogger(__name__)

__all__ = [
    "SCALE",
    "AssignmentError",
    "Problem",
    "Solution",
    "alternates",
    "solve",
    "solve_greedy",
    "solve_min_cost_flow",
]

#: Scores are scaled by this and rounded to integers in the flow graph.
SCALE = 1_000_000


class AssignmentError(MatcherError, ValueError):
    """An assignment cannot be made as asked: bad options or inputs, forced pairs that break a rule."""


@dataclass
class Problem:
    """One target type's assignment problem, in indices.

    Attributes
    ----------
    need_ids : array of shape (n_needs,)
        External need ids; need ``i`` is row ``i`` everywhere below.
    target_ids : array of shape (n_targets,)
        External target ids.
    slots : int array of shape (n_needs,)
        Places still wanted by each need (after forced assignments).
    covered : bool array of shape (n_needs,)
        Needs that already have a target (forced); ``cover_first`` gives them no bonus.
    free : int array of shape (n_targets,)
        Free places of each target (after forced assignments); -1 means unlimited.
    arc_need, arc_target : int arrays of shape (n_arcs,)
        The candidate pairs, as need and target rows.
    arc_score : int array of shape (n_arcs,)
        Their scores × :data:`SCALE`, rounded.
    """

    need_ids: np.ndarray
    target_ids: np.ndarray
    slots: np.ndarray
    covered: np.ndarray
    free: np.ndarray
    arc_need: np.ndarray
    arc_target: np.ndarray
    arc_score: np.ndarray

    @classmethod
    def build(
        cls,
        need_ids: list[str],
        target_ids: list[str],
        candidates: pd.DataFrame,
        *,
        slots: dict[str, int] | int,
        free: dict[str, int | None],
        covered: set[str] | None = None,
    ) -> Problem:
        """A problem from external ids.

        Parameters
        ----------
        need_ids : the needs to assign, in output order.
        target_ids : the targets that may be assigned, in id order.
        candidates : DataFrame with ``need_id, target_id, score``; pairs naming an unknown need or
            target are dropped.
        slots : places wanted per need (one number for all, or per need id; missing means 0).
        free : free places per target id (None: unlimited; missing: 0).
        covered : needs that already have a target.
        """
        need_index = {need_id: row for row, need_id in enumerate(need_ids)}
        target_index = {target_id: row for row, target_id in enumerate(target_ids)}
        rows = candidates.loc[candidates["need_id"].isin(need_index) & candidates["target_id"].isin(target_index)]
        arc_need = rows["need_id"].map(need_index).to_numpy(dtype=np.int64)
        arc_target = rows["target_id"].map(target_index).to_numpy(dtype=np.int64)
        arc_score = np.rint(rows["score"].to_numpy(dtype=np.float64) * SCALE).astype(np.int64)
        order = np.lexsort((arc_target, arc_need))  # deterministic arc order
        wanted = (
            np.full(len(need_ids), slots, dtype=np.int64)
            if isinstance(slots, int)
            else np.asarray([max(0, int(slots.get(n, 0))) for n in need_ids], dtype=np.int64)
        )
        places = np.asarray(
            [-1 if free.get(t, 0) is None else max(0, int(free.get(t, 0))) for t in target_ids], dtype=np.int64
        )
        done = covered or set()
        return cls(
            need_ids=np.asarray(need_ids, dtype=object),
            target_ids=np.asarray(target_ids, dtype=object),
            slots=np.maximum(wanted, 0),
            covered=np.asarray([n in done for n in need_ids], dtype=bool),
            free=places,
            arc_need=arc_need[order],
            arc_target=arc_target[order],
            arc_score=arc_score[order],
        )

    @property
    def n_arcs(self) -> int:
        return len(self.arc_need)

    def objective(self, chosen: np.ndarray) -> int:
        """The total scaled score of the chosen arcs."""
        return int(self.arc_score[chosen].sum())

    def check(self, chosen: np.ndarray) -> None:
        """Raise :class:`AssignmentError` if ``chosen`` breaks a place limit (a solver bug, never expected)."""
        per_need = np.bincount(self.arc_need[chosen], minlength=len(self.need_ids))
        per_target = np.bincount(self.arc_target[chosen], minlength=len(self.target_ids))
        limited = self.free >= 0
        if (per_need > self.slots).any() or (per_target[limited] > self.free[limited]).any():
            raise AssignmentError("internal error: the assignment exceeds a need's places or a target's capacity")


@dataclass
class Solution:
    """What a solver chose.

    Attributes
    ----------
    chosen : bool array of shape (n_arcs,)
        The candidate pairs assigned.
    method : str
        ``min-cost flow`` or ``greedy``.
    objective : int
        Total scaled score of the chosen pairs.
    optimal : bool
        Proven optimal (min-cost flow finished).
    greedy_objective : int or None
        The greedy objective, for comparison.
    note : str
        What happened, in plain words (a time limit, a fallback).
    seconds : dict of str to float
        Time spent by each solver.
    """

    chosen: np.ndarray
    method: str
    objective: int
    optimal: bool
    greedy_objective: int | None = None
    note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------ greedy


def solve_greedy(problem: Problem, *, cover_first: bool = False) -> np.ndarray:
    """Pairs best score first (ties by need, then target order) while places remain.

    With ``cover_first``, a first pass gives each uncovered need at most one target; a second pass
    fills the remaining places. Returns the chosen arcs (bool array of shape (n_arcs,)).
    """
    chosen = np.zeros(problem.n_arcs, dtype=bool)
    order = np.lexsort((problem.arc_target, problem.arc_need, -problem.arc_score))
    need_left = problem.slots.copy()
    target_left = np.where(problem.free < 0, np.iinfo(np.int64).max, problem.free)
    covered = problem.covered.copy()
    arc_need, arc_target = problem.arc_need.tolist(), problem.arc_target.tolist()
    passes = (True, False) if cover_first else (False,)
    for first_only in passes:
        for arc in order.tolist():
            need, target = arc_need[arc], arc_target[arc]
            if chosen[arc] or need_left[need] <= 0 or target_left[target] <= 0:
                continue
            if first_only and covered[need]:
                continue
            chosen[arc] = True
            need_left[need] -= 1
            target_left[target] -= 1
            covered[need] = True
    return chosen


# ---------------------------------------------------------------------- min-cost flow


def solve_min_cost_flow(problem: Problem, *, cover_first: bool = False) -> np.ndarray:
    """The exact assignment by min-cost flow (OR-Tools ``SimpleMinCostFlow``); chosen arcs as bools.

    Raises
    ------
    AssignmentError
        The solver reports anything but an optimal solution (e.g. costs out of its range).
    """
    from ortools.graph.python import min_cost_flow

    n, m, a = len(problem.need_ids), len(problem.target_ids), problem.n_arcs
    supply = int(problem.slots.sum())
    if supply == 0 or a == 0:
        return np.zeros(a, dtype=bool)
    source, sink = 0, n + m + 1
    need_node = np.arange(1, n + 1, dtype=np.int32)
    target_node = np.arange(n + 1, n + m + 1, dtype=np.int32)
    solver = min_cost_flow.SimpleMinCostFlow()

    def arcs(tails: np.ndarray, heads: np.ndarray, capacities: np.ndarray, costs: np.ndarray) -> np.ndarray:
        return solver.add_arcs_with_capacity_and_unit_cost(
            np.asarray(tails, dtype=np.int32),
            np.asarray(heads, dtype=np.int32),
            np.asarray(capacities, dtype=np.int64),
            np.asarray(costs, dtype=np.int64),
        )

    wanted = problem.slots > 0
    if cover_first:
        # the first place of an uncovered need is worth more than any total of scores
        bonus = SCALE * (min(supply, a) + 1)
        first = wanted & ~problem.covered
        arcs(np.zeros(first.sum()), need_node[first], np.ones(first.sum()), np.full(first.sum(), -bonus))
        rest = problem.slots - first
        more = rest > 0
        arcs(np.zeros(more.sum()), need_node[more], rest[more], np.zeros(more.sum()))
    else:
        arcs(np.zeros(wanted.sum()), need_node[wanted], problem.slots[wanted], np.zeros(wanted.sum()))
    candidate_arcs = arcs(need_node[problem.arc_need], target_node[problem.arc_target], np.ones(a), -problem.arc_score)
    places = np.where(problem.free < 0, supply, np.minimum(problem.free, supply))
    used = np.zeros(m, dtype=bool)
    used[problem.arc_target] = True
    open_ = used & (places > 0)
    arcs(target_node[open_], np.full(open_.sum(), sink), places[open_], np.zeros(open_.sum()))
    arcs(np.asarray([source]), np.asarray([sink]), np.asarray([supply]), np.asarray([0]))  # places left empty
    solver.set_nodes_supplies(np.asarray([source, sink], dtype=np.int32), np.asarray([supply, -supply], dtype=np.int64))
    status = solver.solve()
    if status != solver.OPTIMAL:
        raise AssignmentError(f"the min-cost flow solver did not find an optimal solution (status {status.name})")
    return solver.flows(candidate_arcs) > 0


def _flow_child(problem: Problem, cover_first: bool, connection: Any) -> None:
    try:
        connection.send(("ok", solve_min_cost_flow(problem, cover_first=cover_first)))
    except Exception as error:  # reported to the parent, which decides
        connection.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        connection.close()


def _flow_within(problem: Problem, cover_first: bool, seconds: float) -> np.ndarray | None:
    """Min-cost flow in a child process; None when it has not finished within ``seconds`` (it is killed)."""
    if seconds <= 0:
        return None
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_flow_child, args=(problem, cover_first, sender), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(seconds):
            return None
        kind, value = receiver.recv()
    except EOFError:
        kind, value = "error", f"the solver process ended without an answer (exit code {child.exitcode})"
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receiver.close()
    if kind == "error":
        raise AssignmentError(f"min-cost flow failed: {value}")
    return value


def solve(problem: Problem, *, cover_first: bool = False, deadline: float | None = None) -> Solution:
    """Greedy first (the fallback), then min-cost flow until ``deadline`` (a ``time.monotonic()`` value).

    Returns the flow's solution when it finishes in time, else the greedy one with a note saying so.
    """
    started = time.perf_counter()
    greedy = solve_greedy(problem, cover_first=cover_first)
    greedy_seconds = time.perf_counter() - started
    greedy_objective = problem.objective(greedy)
    seconds = {"greedy": round(greedy_seconds, 3)}
    if problem.n_arcs == 0:
        return Solution(greedy, "min-cost flow", 0, True, 0, "", seconds)
    started = time.perf_counter()
    if deadline is None:
        flow = solve_min_cost_flow(problem, cover_first=cover_first)
    else:
        flow = _flow_within(problem, cover_first, deadline - time.monotonic())
    seconds["min-cost flow"] = round(time.perf_counter() - started, 3)
    if flow is None:
        note = (
            "the time limit was reached before the min-cost flow finished (it cannot be interrupted); "
            "this is the greedy assignment, which may score below the optimum"
        )
        logger.warning("%s", note)
        problem.check(greedy)
        return Solution(greedy, "greedy", greedy_objective, False, greedy_objective, note, seconds)
    problem.check(flow)
    return Solution(flow, "min-cost flow", problem.objective(flow), True, greedy_objective, "", seconds)


# ------------------------------------------------------------------------------ alternates


def alternates(problem: Problem, chosen: np.ndarray, m: int) -> np.ndarray:
    """Up to ``m`` alternates per need: its best unchosen candidates whose target still has a free place.

    Returns the alternate arcs (indices into the arcs), sorted by need, then score (best first), then target.
    """
    if m <= 0 or problem.n_arcs == 0:
        return np.zeros(0, dtype=np.int64)
    used = np.bincount(problem.arc_target[chosen], minlength=len(problem.target_ids))
    spare = (problem.free < 0) | (used < problem.free)
    eligible = np.flatnonzero(~chosen & spare[problem.arc_target])
    order = eligible[
        np.lexsort((problem.arc_target[eligible], -problem.arc_score[eligible], problem.arc_need[eligible]))
    ]
    needs = problem.arc_need[order]
    starts = np.r_[0, np.flatnonzero(np.diff(needs)) + 1] if len(order) else np.zeros(0, dtype=np.int64)
    position = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return order[position < m]
