"""The ``matcher assign`` job: needs and libraries in; an assignment, its reasons and loads out.

Stages, each reported as it starts:

1. **load**: the database's open needs and libraries with the active model (its target index in step
   with the database, as the API's: :func:`matcher.jobs.sources.load_active`), or a matcher fitted on files;
2. **candidates**: the top N eligible targets of each need, scored chunk by chunk
   (:func:`matcher.jobs.chunks.score_chunks`) by :meth:`Matcher.match` (the API's scores and hard rules: available, a free place, not of the need's
   organisation), minus the conflicts of interest of the conflicts file and the pairs below the
   minimum score; forced pairs are applied first;
3. **feasibility**: demand against supply per category and county, in plain words
   (:mod:`matcher.jobs.assign.feasibility`);
4. **solve**: greedy, then min-cost flow (:mod:`matcher.jobs.assign.solver`); a time limit falls back to greedy;
5. **write**: the assignment (CSV or Parquet) with alternates, the needs left short and why, each
   target's load, and a summary; with ``commit``, the pairs are booked as engagements first
   (:mod:`matcher.jobs.assign.booking`), all or nothing.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from matcher.inputs.frames import table_needs_frame, table_targets_frame
from matcher.jobs.assign.booking import Booking, book
from matcher.jobs.assign.feasibility import FeasibilityReport, check_feasibility
from matcher.jobs.assign.pairs import read_conflicts, read_forced
from matcher.jobs.assign.solver import SCALE, AssignmentError, Problem, Solution, alternates, solve, solve_greedy
from matcher.jobs.batch import fit_matcher, read_inputs
from matcher.jobs.chunks import CHUNK_SIZE, chunk_bounds, chunk_step, score_chunks
from matcher.jobs.executors import Engine, EngineError, make_engine
from matcher.jobs.output import write_frame, write_json
from matcher.jobs.sources import load_active
from matcher.matching.estimator import Matcher
from matcher.rules import conflict_of_interest, free_places
from matcher.text.privacy import redact

logger = logging.getLogger(__name__)

__all__ = [
    "ASSIGNMENT_COLUMNS",
    "AssignInputs",
    "AssignOptions",
    "AssignReport",
    "run_assign",
    "side_files",
]

ASSIGNMENT_COLUMNS = ("need_id", "target_type", "target_id", "role", "rank", "score")
ASSIGNMENT_SCHEMA = pa.schema(
    [
        pa.field("need_id", pa.string(), nullable=False),
        pa.field("target_type", pa.string(), nullable=False),
        pa.field("target_id", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
    ]
)
_UNASSIGNED_SCHEMA = pa.schema(
    [
        pa.field("need_id", pa.string(), nullable=False),
        pa.field("target_type", pa.string(), nullable=False),
        pa.field("wanted", pa.int32(), nullable=False),
        pa.field("assigned", pa.int32(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
_LOADS_SCHEMA = pa.schema(
    [
        pa.field("target_type", pa.string(), nullable=False),
        pa.field("target_id", pa.string(), nullable=False),
        pa.field("available", pa.bool_(), nullable=False),
        pa.field("capacity", pa.int32(), nullable=True),
        pa.field("load_before", pa.int32(), nullable=False),
        pa.field("assigned", pa.int32(), nullable=False),
        pa.field("load_after", pa.int32(), nullable=False),
    ]
)
STAGES = ("load", "candidates", "feasibility", "solve", "write")
_NOUN = {"expert": "experts", "resource": "resources"}


@dataclass
class AssignOptions:
    """What to assign and how.

    Attributes
    ----------
    per_need : int
        Experts per need, at most (``d``).
    resources_per_need : int
        Resources per need, at most (assigned separately; 0: none).
    candidates : int
        Candidate targets per need (``N``): the graph's arcs.
    alternates : int
        Alternates listed per need (``m``): its best candidates not assigned that still have a free place.
    min_score : float
        Pairs scoring below this are never assigned (forced pairs excepted).
    cover_first : bool
        Give every need one target before any need gets a second.
    time_limit : float or None
        Seconds for the whole job; past it, the best result so far (greedy) is written.
    """

    per_need: int = 1
    resources_per_need: int = 0
    candidates: int = 20
    alternates: int = 3
    min_score: float = 0.0
    cover_first: bool = False
    time_limit: float | None = None

    def check(self) -> None:
        for name in ("per_need", "resources_per_need", "candidates", "alternates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise AssignmentError(f"{name.replace('_', '-')} must be a whole number of 0 or more, got {value!r}")
        if self.per_need + self.resources_per_need == 0:
            raise AssignmentError("nothing to assign: per-need and resources-per-need are both 0")
        if self.candidates < max(self.per_need, self.resources_per_need):
            raise AssignmentError(
                f"candidates ({self.candidates}) must be at least the places per need "
                f"({max(self.per_need, self.resources_per_need)})"
            )
        if not (isinstance(self.min_score, int | float) and math.isfinite(self.min_score)):
            raise AssignmentError(f"min-score must be a number, got {self.min_score!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise AssignmentError(f"time-limit must be a positive number of seconds, got {self.time_limit!r}")

    def places(self) -> dict[str, int]:
        return {t: n for t, n in (("expert", self.per_need), ("resource", self.resources_per_need)) if n > 0}


@dataclass(frozen=True)
class AssignInputs:
    """What to assign: the database's open needs with the active model, or files; and the side files.

    Attributes
    ----------
    needs_file : path or None
        A needs file; None: the open needs of the database, with the active model.
    target_files : dict of target type to path, or None
        With ``needs_file``: the files the matcher is fitted on (``{"expert": path, ...}``).
    params : dict or None
        With ``needs_file``: the matcher's parameters.
    conflicts : path or None
        A conflicts file (:func:`matcher.jobs.assign.pairs.read_conflicts`).
    forced : path or None
        A forced-assignments file (:func:`matcher.jobs.assign.pairs.read_forced`).
    database_url, models_dir, data_dir
        Without ``needs_file``: where the database, the model versions and the seed data are
        (defaults: ``DATABASE_URL``, ``MATCHER_MODELS_DIR``, ``MATCHER_DATA_DIR``).
    """

    needs_file: str | os.PathLike[str] | None = None
    target_files: Mapping[str, str | os.PathLike[str]] | None = None
    params: dict[str, Any] | None = None
    conflicts: str | os.PathLike[str] | None = None
    forced: str | os.PathLike[str] | None = None
    database_url: str | None = None
    models_dir: str | os.PathLike[str] | None = None
    data_dir: str | os.PathLike[str] | None = None


@dataclass
class TypeResult:
    """The outcome for one target type."""

    target_type: str
    needs: int
    wanted: int
    assigned: int
    forced: int
    needs_full: int
    needs_partial: int
    needs_none: int
    objective: float
    greedy_objective: float | None
    method: str
    optimal: bool
    note: str
    arcs: int
    feasibility: FeasibilityReport
    seconds: dict[str, float]

    def summary(self) -> str:
        noun = _NOUN[self.target_type]
        line = (
            f"{noun}: {self.assigned} assigned to {self.needs_full + self.needs_partial} of {self.needs} needs "
            f"(objective {self.objective:.6f}, {self.method}{', optimal' if self.optimal else ''}"
        )
        if self.greedy_objective is not None and self.method != "greedy":
            line += f"; greedy {self.greedy_objective:.6f}"
        line += ")"
        short = self.needs_partial + self.needs_none
        if short:
            line += f"; {short} need{'s' if short != 1 else ''} short of {_NOUN[self.target_type]}"
        return line


class TypePlan(NamedTuple):
    """The plan for one target type (:func:`_plan`): its outcome and what the output files are written from."""

    result: TypeResult
    problem: Problem
    solution: Solution
    spare: np.ndarray  # arcs of the alternates
    forced_rows: pd.DataFrame  # need_id, target_id, score
    unassigned: pd.DataFrame  # need_id, target_type, wanted, assigned, reason


@dataclass
class AssignReport:
    """What an assignment run did."""

    out: Path
    files: list[Path]
    results: dict[str, TypeResult]
    booked: int = 0
    time_limit_reached: bool = False
    notes: list[str] = field(default_factory=list)
    model_version: str | None = None

    def lines(self) -> list[str]:
        lines = [r.summary() for r in self.results.values()]
        lines.extend(self.notes)
        if self.booked:
            lines.append(f"booked {self.booked} engagements in the database")
        lines.append("wrote " + ", ".join(str(p) for p in self.files))
        return lines


def side_files(out: Path) -> dict[str, Path]:
    """The files written beside the assignment ``out``: ``unassigned``, ``loads`` (same format), ``summary``."""
    stem, suffix = out.stem, out.suffix if out.suffix.lower() in (".csv", ".parquet") else ".csv"
    return {
        "unassigned": out.with_name(f"{stem}.unassigned{suffix}"),
        "loads": out.with_name(f"{stem}.loads{suffix}"),
        "summary": out.with_name(f"{stem}.summary.json"),
    }


# ------------------------------------------------------------------------------ the job


@dataclass
class _Loaded:
    """The model and the needs to assign (with the model version and database in the database mode)."""

    model: Matcher
    needs: pd.DataFrame  # id, text, tags, counties, org_id
    model_version: str | None
    database_url: str | None


class _Stages:
    """Reports each stage as it starts, and times it."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def start(self, name: str, detail: str = "") -> None:
        self.stop()
        message = f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name}" + (f": {detail}" if detail else "")
        logger.info("%s", message)
        if self.progress is not None:
            self.progress(message)
        self._current = (name, time.perf_counter())

    def stop(self) -> None:
        if self._current is not None:
            name, started = self._current
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 3)
            self._current = None

    def say(self, message: str) -> None:
        logger.info("%s", message)
        if self.progress is not None:
            self.progress(message)


def run_assign(
    out: str | os.PathLike[str] | None,
    *,
    options: AssignOptions | None = None,
    inputs: AssignInputs | None = None,
    commit: bool = False,
    check: bool = False,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    show_bar: bool | None = None,
) -> AssignReport:
    """Assign targets to needs (see the module docstring); returns what was done.

    Without ``inputs.needs_file`` the open needs of the database are assigned with the active model;
    with it, a matcher is fitted on ``inputs.target_files`` and ``commit`` is refused. With ``check``
    the job stops after the feasibility report and writes nothing (``out`` may be None). Candidates
    are scored in ``workers`` local processes; ``progress`` is told each stage as it starts;
    ``show_bar``: the scoring progress bar on stderr (None: when stderr is a terminal).

    Raises
    ------
    AssignmentError
        Bad options or input files, forced pairs that break a rule.
    matcher.errors.ConflictError
        ``commit``: the libraries changed since the plan was made; nothing was booked.
    """
    options = options or AssignOptions()
    inputs = inputs or AssignInputs()
    options.check()
    stages = _Stages(progress)
    deadline = time.monotonic() + options.time_limit if options.time_limit else None
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out_path = Path(os.fspath(out)) if out is not None else None
    if out_path is None and not check:
        raise AssignmentError("an output file is required (unless checking only)")
    if commit and inputs.needs_file is not None:
        raise AssignmentError("--commit books engagements in the database: it cannot be used with --needs files")
    if out_path is not None:
        _check_out(out_path)
    try:
        engine = make_engine("local", workers=workers)
    except EngineError as error:
        raise AssignmentError(str(error)) from error
    conflict_pairs = read_conflicts(inputs.conflicts) if inputs.conflicts is not None else None
    forced_pairs = read_forced(inputs.forced) if inputs.forced is not None else None

    stages.start("load", "the libraries and the model")
    loaded = _load(inputs)
    places = {t: n for t, n in options.places().items() if t in loaded.model.index_}
    for target_type in options.places():
        if target_type not in places:
            raise AssignmentError(f"there are no {_NOUN[target_type]} to assign (the library has none)")
    needs = loaded.needs
    stages.say(
        f"{len(needs)} needs to assign"
        + (f" with model version {loaded.model_version}" if loaded.model_version else "")
    )

    stages.start("candidates", f"the {options.candidates} best eligible targets of each of {len(needs)} needs")
    candidates, scored = _score(loaded.model, needs, list(places), options.candidates, engine, deadline, show_bar)
    time_up = len(scored) < len(needs)
    notes = []
    if time_up:
        notes.append(
            f"the time limit of {options.time_limit:g} s was reached while scoring candidates: "
            f"{len(scored)} of {len(needs)} needs were scored; the others are left unassigned"
        )
        stages.say(notes[-1])

    plans: dict[str, TypePlan] = {}
    for target_type, per_need in places.items():
        plan = _plan(
            target_type,
            per_need,
            loaded,
            candidates.loc[candidates["target_type"] == target_type],
            scored,
            options,
            conflict_pairs if target_type == "expert" else None,
            forced_pairs if target_type == "expert" else None,
            stages,
            deadline,
            check,
        )
        plans[target_type] = plan
        if plan.result.note and plan.result.note not in notes:
            notes.append(plan.result.note)
    results = {t: plan.result for t, plan in plans.items()}
    if check:
        stages.stop()
        return AssignReport(out=out_path or Path(), files=[], results=results, notes=notes)

    assert out_path is not None
    stages.start("write", str(out_path))
    rows = _assignment_rows(plans, needs)
    booked = 0
    if commit:
        chosen = rows.loc[rows["role"] != "alternate"]
        bookings = [
            Booking(r.need_id, r.target_type, r.target_id, int(r.rank), float(r.score)) for r in chosen.itertuples()
        ]
        booked = book(
            bookings, url=loaded.database_url or "", model_version=loaded.model_version, comment="matcher assign"
        )
        stages.say(f"booked {booked} engagements")
    files = side_files(out_path)
    write_frame(rows, out_path, ASSIGNMENT_SCHEMA)
    unassigned = pd.concat([p.unassigned for p in plans.values()], ignore_index=True)
    unassigned["reason"] = [redact(r) for r in unassigned["reason"]]
    write_frame(unassigned, files["unassigned"], _UNASSIGNED_SCHEMA)
    write_frame(_loads(plans, loaded.model), files["loads"], _LOADS_SCHEMA)
    stages.stop()
    report = AssignReport(
        out=out_path,
        files=[out_path, files["unassigned"], files["loads"], files["summary"]],
        results=results,
        booked=booked,
        time_limit_reached=time_up or any(r.method == "greedy" for r in results.values()),
        notes=notes,
        model_version=loaded.model_version,
    )
    summary = {
        "started_at": started_at,
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": "files" if inputs.needs_file is not None else "database",
        "model_version": loaded.model_version,
        "options": options.__dict__,
        "needs": len(needs),
        "time_limit_reached": report.time_limit_reached,
        "notes": [redact(n) for n in notes],
        "booked": booked,
        "results": {
            t: {
                **{k: v for k, v in r.__dict__.items() if k not in ("feasibility", "target_type")},
                "feasible": r.feasibility.feasible,
                "feasibility": [f.as_dict() for f in r.feasibility.findings],
            }
            for t, r in results.items()
        },
        "stage_seconds": stages.seconds,
        "files": {"assignment": out_path.name, **{k: p.name for k, p in files.items()}},
    }
    write_json(files["summary"], summary)
    return report


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise AssignmentError(f"{out}: the output is a folder, not a file")
    if not out.parent.is_dir():
        raise AssignmentError(f"{out}: the output folder {out.parent} does not exist")


def _load(inputs: AssignInputs) -> _Loaded:
    """The model and the needs: fitted on the files given, or the active model synced with the database."""
    if inputs.needs_file is not None:
        if not inputs.target_files:
            raise AssignmentError("give the experts file (and resources file) with the needs file")
        need_table, tables = read_inputs(inputs.needs_file, inputs.target_files)
        return _Loaded(fit_matcher(table_targets_frame(tables), inputs.params), table_needs_frame(need_table), None, None)
    if inputs.params:
        raise AssignmentError("--params goes with --needs files: the database mode uses the active model")
    sources = load_active(database_url=inputs.database_url, models_dir=inputs.models_dir, data_dir=inputs.data_dir)
    return _Loaded(sources.model, sources.needs, sources.model_version, sources.database_url)


def _candidate_chunk(model: Matcher, task: tuple[pd.DataFrame, int, list[str]]) -> pd.DataFrame:
    needs, k, types = task
    rows = model.match(needs, k=k, target_types=types, chunk_size=max(1, len(needs)))
    return rows.loc[:, ["need_id", "target_type", "target_id", "score"]]


def _score(
    model: Matcher,
    needs: pd.DataFrame,
    types: list[str],
    k: int,
    engine: Engine,
    deadline: float | None,
    show_bar: bool | None,
) -> tuple[pd.DataFrame, set[str]]:
    """Candidate pairs of every need (top ``k`` eligible per type); stops at the deadline between chunks."""
    bounds = chunk_bounds(len(needs), chunk_step(max(model.n_targets_[t] for t in types), CHUNK_SIZE))
    parts: dict[int, pd.DataFrame] = {}
    scored: set[str] = set()
    chunks = score_chunks(
        _candidate_chunk, model, needs, bounds, (k, types), engine=engine, progress=show_bar, desc="scoring"
    )
    with closing(chunks):
        for number, frame in chunks:
            parts[number] = frame
            start, stop = bounds[number]
            scored.update(needs["id"].iloc[start:stop])
            if deadline is not None and time.monotonic() > deadline:
                break
    columns = ["need_id", "target_type", "target_id", "score"]
    frame = pd.concat([parts[n] for n in sorted(parts)], ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return frame, scored


def _free_places(targets: pd.DataFrame) -> dict[str, int | None]:
    free: dict[str, int | None] = {}
    for target_id, capacity, load, available in targets[["id", "capacity", "load", "available"]].itertuples(
        index=False
    ):
        places = free_places(None if capacity is None or pd.isna(capacity) else int(capacity), int(load))
        if not available:
            free[target_id] = 0
        elif places == math.inf:
            free[target_id] = None
        else:
            free[target_id] = max(0, int(places))
    return free


def _plan(
    target_type: str,
    per_need: int,
    loaded: _Loaded,
    candidates: pd.DataFrame,
    scored: set[str],
    options: AssignOptions,
    conflicts: pd.DataFrame | None,
    forced: pd.DataFrame | None,
    stages: _Stages,
    deadline: float | None,
    check: bool,
) -> TypePlan:
    """Conflicts, minimum score and forced pairs applied; feasibility; solve. One target type."""
    model, needs = loaded.model, loaded.needs
    targets = model.targets(target_type)
    free = _free_places(targets)
    need_org = dict(zip(needs["id"], needs["org_id"], strict=True))
    raw_count = candidates.groupby("need_id").size().to_dict()

    # conflicts of interest from the conflicts file (affiliation is already a hard rule of matching)
    banned: set[tuple[str, str]] = set()
    if conflicts is not None and len(conflicts):
        by_org = defaultdict(set)
        for expert_id, org_id in conflicts[["expert_id", "org_id"]].itertuples(index=False):
            by_org[org_id].add(expert_id)
        banned = {(n, e) for n, org in need_org.items() if org in by_org for e in by_org[org]}
        keep = [(n, t) not in banned for n, t in zip(candidates["need_id"], candidates["target_id"], strict=True)]
        candidates = candidates.loc[keep]
    after_conflicts = candidates.groupby("need_id").size().to_dict()
    lost = [n for n, c in raw_count.items() if c and not after_conflicts.get(n)]
    candidates = candidates.loc[candidates["score"] >= options.min_score]

    # forced pairs: validated, they take their places first
    forced_rows = _forced(forced, target_type, model, needs, free, banned) if forced is not None else pd.DataFrame()
    forced_count = forced_rows.groupby("need_id").size().to_dict() if len(forced_rows) else {}
    forced_load = forced_rows.groupby("target_id").size().to_dict() if len(forced_rows) else {}
    slots = {n: max(0, per_need - forced_count.get(n, 0)) if n in scored else 0 for n in needs["id"]}
    left = {t: (None if f is None else f - forced_load.get(t, 0)) for t, f in free.items()}
    if len(forced_rows):
        forced_keys = set(zip(forced_rows["need_id"], forced_rows["target_id"], strict=True))
        keep = [(n, t) not in forced_keys for n, t in zip(candidates["need_id"], candidates["target_id"], strict=True)]
        candidates = candidates.loc[keep]

    stages.start("feasibility", _NOUN[target_type])
    pool = targets.assign(free=[left.get(t) for t in targets["id"]])
    report = check_feasibility(
        needs,
        pool,
        slots,
        target_type=target_type,
        candidates=candidates.groupby("need_id").size().to_dict(),
        lost_to_conflicts=lost,
        min_score=options.min_score,
    )
    for line in report.lines("en"):
        stages.say(f"{_NOUN[target_type]}: {line}")

    problem = Problem.build(
        needs["id"].tolist(),
        targets["id"].tolist(),
        candidates,
        slots=slots,
        free=left,
        covered=set(forced_count),
    )
    empty = np.zeros(problem.n_arcs, dtype=bool)
    if check:
        solution = Solution(empty, "none (check only)", 0, False)
    else:
        stages.start("solve", f"{_NOUN[target_type]}: min-cost flow over {problem.n_arcs} candidate pairs")
        if deadline is not None and time.monotonic() >= deadline:
            chosen = solve_greedy(problem, cover_first=options.cover_first)
            note = "the time limit was reached before solving: this is the greedy assignment"
            solution = Solution(chosen, "greedy", problem.objective(chosen), False, problem.objective(chosen), note)
        else:
            solution = solve(problem, cover_first=options.cover_first, deadline=deadline)
    spare = alternates(problem, solution.chosen, options.alternates)
    unassigned = _reasons(
        problem, solution.chosen, per_need, forced_count, raw_count, lost, scored, options, target_type
    )
    assigned = np.bincount(problem.arc_need[solution.chosen], minlength=len(problem.need_ids))
    total = assigned + np.asarray([forced_count.get(n, 0) for n in problem.need_ids], dtype=np.int64)
    forced_score = float(forced_rows["score"].sum()) if len(forced_rows) else 0.0
    result = TypeResult(
        target_type=target_type,
        needs=len(needs),
        wanted=per_need * len(needs),
        assigned=int(total.sum()),
        forced=len(forced_rows),
        needs_full=int((total >= per_need).sum()),
        needs_partial=int(((total > 0) & (total < per_need)).sum()),
        needs_none=int((total == 0).sum()),
        objective=round(solution.objective / SCALE + forced_score, 6),
        greedy_objective=None
        if solution.greedy_objective is None
        else round(solution.greedy_objective / SCALE + forced_score, 6),
        method=solution.method,
        optimal=solution.optimal,
        note=solution.note,
        arcs=problem.n_arcs,
        feasibility=report,
        seconds=solution.seconds,
    )
    return TypePlan(result, problem, solution, spare, forced_rows, unassigned)


def _forced(
    forced: pd.DataFrame,
    target_type: str,
    model: Matcher,
    needs: pd.DataFrame,
    free: dict[str, int | None],
    banned: set[tuple[str, str]],
) -> pd.DataFrame:
    """The forced pairs with their scores; every pair that breaks a rule is an error, all listed."""
    targets = model.targets(target_type).set_index("id")
    need_rows = needs.set_index("id")
    problems = []
    taken: dict[str, int] = defaultdict(int)
    for need_id, expert_id, row in forced[["need_id", "expert_id", "row"]].itertuples(index=False):
        where = f"forced row {row} ({need_id}, {expert_id})"
        if need_id not in need_rows.index:
            problems.append(f"{where}: need {need_id} is not among the needs to assign (unknown, or not open)")
            continue
        if expert_id not in targets.index:
            problems.append(f"{where}: there is no {target_type} {expert_id}")
            continue
        target = targets.loc[expert_id]
        if not bool(target["available"]):
            problems.append(f"{where}: {target_type} {expert_id} is not available")
        org = need_rows.loc[need_id, "org_id"]
        if conflict_of_interest(target["org_id"], org) or (need_id, expert_id) in banned:
            problems.append(f"{where}: {target_type} {expert_id} has a conflict of interest with need {need_id}")
        taken[expert_id] += 1
    for expert_id, count in sorted(taken.items()):
        places = free.get(expert_id)
        if places is not None and count > places:
            problems.append(f"{target_type} {expert_id} is forced onto {count} needs but has {places} free places")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise AssignmentError("forced assignments cannot be honoured: " + "; ".join(problems[:5]) + more)
    scores = []
    for need_id, group in forced.groupby("need_id", sort=False):
        row = model.score(need_rows.loc[[need_id]].reset_index(), target_type)[0]
        column = {t: i for i, t in enumerate(targets.index)}
        scores.extend((need_id, e, float(row[column[e]])) for e in group["expert_id"])
    return pd.DataFrame(scores, columns=["need_id", "target_id", "score"])


def _reasons(
    problem: Problem,
    chosen: np.ndarray,
    per_need: int,
    forced_count: dict[str, int],
    raw_count: dict[str, int],
    lost: list[str],
    scored: set[str],
    options: AssignOptions,
    target_type: str,
) -> pd.DataFrame:
    """One row per need left short: ``need_id, target_type, wanted, assigned, reason``."""
    noun = _NOUN[target_type]
    lost_set = set(lost)
    assigned = np.bincount(problem.arc_need[chosen], minlength=len(problem.need_ids))
    arcs_of = np.bincount(problem.arc_need, minlength=len(problem.need_ids))
    starts = np.r_[0, np.cumsum(arcs_of)]
    rows = []
    for row, need_id in enumerate(problem.need_ids):
        got = int(assigned[row]) + forced_count.get(need_id, 0)
        if got >= per_need:
            continue
        if need_id not in scored:
            reason = "not scored: the time limit was reached first"
        elif not raw_count.get(need_id):
            reason = f"no eligible {noun[:-1]} shares anything with this need (available, with a free place, not of its organisation)"
        elif need_id in lost_set:
            reason = f"every candidate {noun[:-1]} has a conflict of interest with its organisation"
        elif not arcs_of[row] and not got:
            reason = f"no candidate scores at least the minimum score {options.min_score:g}"
        else:
            arcs = np.arange(starts[row], starts[row + 1])
            others = arcs[~chosen[arcs]]
            parts = []
            if arcs_of[row] + forced_count.get(need_id, 0) < per_need:
                parts.append(f"only {arcs_of[row]} candidate{'s' if arcs_of[row] != 1 else ''} above the minimum score")
            if len(others):
                ids = ", ".join(problem.target_ids[problem.arc_target[others[:3]]])
                more = ", …" if len(others) > 3 else ""
                parts.append(f"its other candidates ({ids}{more}) are fully booked by other needs")
            reason = "; ".join(parts) or "its candidates are fully booked by other needs"
        rows.append((need_id, target_type, per_need, got, reason))
    return pd.DataFrame(rows, columns=["need_id", "target_type", "wanted", "assigned", "reason"])


def _assignment_rows(plans: dict[str, TypePlan], needs: pd.DataFrame) -> pd.DataFrame:
    """Assigned (and forced) pairs then alternates, per need in input order and type in canonical order."""
    records: dict[tuple[str, str], list[tuple[str, str, float]]] = defaultdict(list)
    for target_type, plan in plans.items():
        problem, solution, spare, forced_rows = plan.problem, plan.solution, plan.spare, plan.forced_rows
        if len(forced_rows):
            for need_id, target_id, score in forced_rows[["need_id", "target_id", "score"]].itertuples(index=False):
                records[(need_id, target_type)].append(("forced", target_id, score))
        for arc in np.flatnonzero(solution.chosen):
            key = (problem.need_ids[problem.arc_need[arc]], target_type)
            records[key].append(
                ("assigned", problem.target_ids[problem.arc_target[arc]], problem.arc_score[arc] / SCALE)
            )
        for arc in spare:
            key = (problem.need_ids[problem.arc_need[arc]], target_type)
            records[key].append(
                ("alternate", problem.target_ids[problem.arc_target[arc]], problem.arc_score[arc] / SCALE)
            )
    rows = []
    for need_id in needs["id"]:
        for target_type in plans:
            items = records.get((need_id, target_type), [])
            chosen = sorted((i for i in items if i[0] != "alternate"), key=lambda i: (-i[2], i[1]))
            spare = sorted((i for i in items if i[0] == "alternate"), key=lambda i: (-i[2], i[1]))
            for group in (chosen, spare):
                for rank, (role, target_id, score) in enumerate(group, 1):
                    rows.append((need_id, target_type, target_id, role, rank, round(float(score), 6)))
    return pd.DataFrame(rows, columns=list(ASSIGNMENT_COLUMNS))


def _loads(plans: dict[str, TypePlan], model: Matcher) -> pd.DataFrame:
    """Every target's load: ``target_type, target_id, available, capacity, load_before, assigned, load_after``."""
    frames = []
    for target_type, plan in plans.items():
        problem, solution, forced_rows = plan.problem, plan.solution, plan.forced_rows
        targets = model.targets(target_type)
        counts = np.bincount(problem.arc_target[solution.chosen], minlength=len(problem.target_ids))
        if len(forced_rows):
            extra = forced_rows.groupby("target_id").size()
            index = {t: i for i, t in enumerate(problem.target_ids)}
            for target_id, count in extra.items():
                counts[index[target_id]] += count
        capacity = targets["capacity"]
        frames.append(
            pd.DataFrame(
                {
                    "target_type": target_type,
                    "target_id": targets["id"].astype(str),
                    "available": targets["available"].astype(bool),
                    "capacity": pd.array(capacity, dtype="Int64"),
                    "load_before": targets["load"].astype(int),
                    "assigned": counts.astype(int),
                    "load_after": targets["load"].astype(int) + counts.astype(int),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
