"""``matcher events plan``: group open needs into trainings, workshops and supervision rounds.

One event serves several needs at once: one expert gives one unit of capacity for the whole group,
where one-to-one help would take one unit per need. The planner

1. **gathers** (:func:`plan_inputs`) the open needs, the active model's base scores of every need
   against every expert (the weighted sum ``matcher gaps`` uses, :meth:`Matcher.score`), the
   experts' free capacity (open engagements and confirmed events counted), the venues with seats,
   and the events already planned in the period (their experts and venues are busy then);
2. **proposes candidates**: for each topic tag and county, the experts who may serve that county's
   needs with that tag (available, a free unit, serving the county, not of the need's organisation,
   fit at or above ``threshold``), the best ``experts_per_group`` of them by coverage;
3. **chooses** (:func:`solve`) with OR-Tools CP-SAT a maximum weighted coverage: which candidates
   become events, which needs each serves, and each event's half-day slot and venue, under the hard
   constraints: a need in one event at most; ``min_size`` ≤ needs ≤ ``max_size`` and ≤ the venue's
   seats; an expert's events ≤ their free capacity (one unit per event); no expert and no venue in
   two events at once, nor at a time they are already taken; the objective is the sum of the fit
   scores of the needs served;
4. **explains** every event (terms and tags the group shares, each need's score, why this expert
   and venue) and says in plain words why each other need was not grouped.

The solver stops at ``time_limit`` seconds and says so (the plan is then the best found). The plan
is ``{"events": [...], "unserved": [...]}`` (:data:`PLAN_EVENT_FIELDS`); :func:`write_plan` writes
it as JSON, or flat (one row per need of an event, then one per unserved need) as CSV/XLSX.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from matcher.documents.writer import write_table
from matcher.errors import LibraryError
from matcher.jobs.sources import load_active, open_needs
from matcher.matching.rank import WEAK_SCORE
from matcher.store.crud import create_record
from matcher.store.events import BUSY_STATUSES
from matcher.store.records import EVENT_TYPES, LOCAL_TZ, parse_timestamp, to_local_iso
from matcher.store.schema import Event, Resource, utcnow
from matcher.store.transactions import transaction
from matcher.text.segment import segment

logger = logging.getLogger(__name__)

__all__ = [
    "KIND_OF_TAG",
    "PLAN_EVENT_FIELDS",
    "PlanError",
    "PlanInputs",
    "PlanOptions",
    "PlanResult",
    "check_plan",
    "commit_plan",
    "plan_inputs",
    "plan_rows",
    "solve",
    "write_plan",
]

#: The keys of each event of a plan, in order (other tools read them).
PLAN_EVENT_FIELDS = (
    "kind",
    "title",
    "tags",
    "expert_ids",
    "venue_id",
    "resource_ids",
    "county",
    "starts_at",
    "ends_at",
    "seats",
    "needs",
    "reasons",
)
#: The kind of event a topic is taught in: supervision rounds for supervision and station work,
#: workshops for practice skills, trainings for the rest.
KIND_OF_TAG: dict[str, str] = {
    "专业督导": "supervision",
    "社工站运营": "supervision",
    "小组工作": "workshop",
    "个案管理": "workshop",
    "项目设计与评估": "workshop",
    "战略规划": "workshop",
}
KIND_LABELS = {"training": "主题培训", "workshop": "实务工作坊", "supervision": "督导"}
_SLOTS = ((9, 12), (14, 17))  # half days, local time
_SCALE = 1000  # scores are whole numbers for CP-SAT: thousandths


class PlanError(LibraryError):
    """Options a plan cannot be made from (a client's mistake: HTTP 400); the message starts with the option."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errors = [{"field": message.split(":", 1)[0].split(",")[0].strip(), "message": message}]


@dataclass(frozen=True)
class PlanOptions:
    """What to plan: the period (local dates, both included), kinds, counties, group sizes, time limit."""

    starts: date
    ends: date
    kinds: tuple[str, ...] = EVENT_TYPES
    counties: tuple[str, ...] = ()
    min_size: int = 3
    max_size: int = 12
    threshold: float = WEAK_SCORE  # a need fits an expert who is not a weak match for it
    time_limit: float = 30.0
    experts_per_group: int = 3
    max_slots: int = 20

    def check(self) -> None:
        """Raise :class:`PlanError` naming the option that is wrong."""
        if self.ends < self.starts:
            raise PlanError(f"period: ends {self.ends} is before starts {self.starts}")
        if (self.ends - self.starts).days > 366:
            raise PlanError("period: at most one year")
        unknown = [k for k in self.kinds if k not in EVENT_TYPES]
        if unknown or not self.kinds:
            raise PlanError(f"kinds: use {', '.join(EVENT_TYPES)}; got {', '.join(unknown) or 'none'}")
        if not 2 <= self.min_size <= self.max_size <= 200:
            raise PlanError(
                f"min_size, max_size: need 2 <= min_size <= max_size <= 200, got {self.min_size}, {self.max_size}"
            )
        if not 0 < self.time_limit <= 3600:
            raise PlanError(f"time_limit: from 0 to 3600 seconds, got {self.time_limit}")
        if not 0 <= self.threshold <= 1:
            raise PlanError(f"threshold: from 0 to 1, got {self.threshold}")


@dataclass
class PlanInputs:
    """What the planner works on; indices of ``scores`` follow ``needs`` rows and ``experts`` rows.

    needs : DataFrame ``need_id, org_id, county, tags (list), text``
    experts : DataFrame ``id, name, org_id, counties (list), specialties (list), free, available``
    scores : array of shape (n_needs, n_experts), the base fit scores
    venues : DataFrame ``id, name, county, seats`` (``county`` empty = district-wide)
    busy : ``(kind, id, starts_at, ends_at)`` with kind ``expert`` or ``venue``, aware datetimes
    """

    needs: pd.DataFrame
    experts: pd.DataFrame
    scores: np.ndarray
    venues: pd.DataFrame
    busy: list[tuple[str, str, datetime, datetime]] = field(default_factory=list)
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # derived arrays (eligibility)


@dataclass
class PlanResult:
    """A plan, how the solver ended, and how long it took."""

    events: list[dict[str, Any]]
    unserved: list[dict[str, str]]
    status: str
    stopped_at_limit: bool
    seconds: float

    def body(self) -> dict[str, Any]:
        """The plan as other tools read it: ``{"events", "unserved"}``."""
        return {"events": self.events, "unserved": self.unserved}

    def summary(self) -> str:
        """The plan in plain words, for the CLI and the page."""
        served = sum(len(e["needs"]) for e in self.events)
        lines = [f"{len(self.events)} events serving {served} needs; {len(self.unserved)} needs not grouped"]
        if self.stopped_at_limit:
            lines.append(
                f"the optimiser stopped at its time limit after {self.seconds:.1f} s: the best plan found, not proven best"
            )
        reasons = Counter(item["reason"].split(":")[0] for item in self.unserved)
        lines.extend(f"  {count} × {reason}" for reason, count in reasons.most_common())
        return "\n".join(lines)


@dataclass(frozen=True)
class _Candidate:
    tag: str
    kind: str
    county: str
    expert: int  # row of inputs.experts
    needs: tuple[int, ...]  # rows of inputs.needs, best first
    venues: tuple[int, ...]  # rows of inputs.venues
    slots: tuple[int, ...]  # indices of the period's slots


# --------------------------------------------------------------------------- inputs


def plan_inputs(
    *,
    database_url: str | None = None,
    models_dir: str | os.PathLike | None = None,
    data_dir: Any = None,
    service: Any = None,
) -> PlanInputs:
    """The open needs, experts, scores, venues and busy times, from the database and the active model.

    With ``service`` (the web app's :class:`~matcher.service.match.MatchService`) its model and libraries
    are used; otherwise the active model of ``models_dir`` and the database at ``database_url``.
    """
    if service is not None:
        model, _ = service.model()
        libs = service.libraries()
        url = service.database_url
        frame = open_needs(libs)
    else:
        sources = load_active(database_url=database_url, models_dir=models_dir, data_dir=data_dir)
        model, libs, frame = sources.model, sources.libraries, sources.needs
        url = database_url
    targets = model.targets("expert")
    scores = model.score(frame, "expert") if len(frame) else np.zeros((0, len(targets)))
    experts = libs.experts.set_index("id")
    load = libs.load()
    free = [int(experts.at[i, "capacity"]) - int(load.get(i, 0)) if i in experts.index else 0 for i in targets["id"]]
    expert_frame = pd.DataFrame(
        {
            "id": targets["id"].to_numpy(),
            "name": targets["name"].to_numpy(),
            "org_id": [o if isinstance(o, str) and o else None for o in targets["org_id"]],
            "counties": [list(c) for c in targets["counties"]],
            "specialties": [list(experts.at[i, "specialties"]) if i in experts.index else [] for i in targets["id"]],
            "free": free,
            "available": targets["available"].to_numpy(dtype=bool),
        }
    )
    needs = pd.DataFrame(
        {
            "need_id": frame["id"].to_numpy(),
            "org_id": frame["org_id"].to_numpy(),
            "county": [c[0] if c else "" for c in frame["counties"]],
            "tags": [list(t) for t in frame["tags"]],
            "text": frame["text"].to_numpy(),
        }
    )
    venues, busy = _stored_venues_and_busy(url)
    return PlanInputs(needs, expert_frame, np.asarray(scores, dtype=float), venues, busy)


def _stored_venues_and_busy(url: str | None) -> tuple[pd.DataFrame, list]:
    with transaction(url) as session:
        rows = session.execute(
            select(Resource.id, Resource.name, Resource.county, Resource.seats)
            .where(Resource.type == "venue", Resource.deleted_at.is_(None), Resource.seats.is_not(None))
            .order_by(Resource.id)
        ).all()
        events = session.scalars(
            select(Event).where(Event.deleted_at.is_(None), Event.status.in_(BUSY_STATUSES)).order_by(Event.id)
        ).all()
        busy = []
        for event in events:
            busy.extend(("expert", e, event.starts_at, event.ends_at) for e in event.expert_ids or [])
            if event.venue_id:
                busy.append(("venue", event.venue_id, event.starts_at, event.ends_at))
    venues = pd.DataFrame(rows, columns=["id", "name", "county", "seats"])
    venues["county"] = venues["county"].fillna("")
    return venues, busy


# --------------------------------------------------------------------------- candidates


def _slots(options: PlanOptions) -> list[tuple[datetime, datetime]]:
    """Half-day slots on working days of the period, local time, at most ``max_slots``."""
    slots = []
    day = options.starts
    while day <= options.ends and len(slots) < options.max_slots:
        if day.weekday() < 5:
            for start, end in _SLOTS:
                slots.append(
                    (
                        datetime(day.year, day.month, day.day, start, tzinfo=LOCAL_TZ),
                        datetime(day.year, day.month, day.day, end, tzinfo=LOCAL_TZ),
                    )
                )
        day += timedelta(days=1)
    return slots[: options.max_slots]


def _free(busy: list, kind: str, id_: str, slot: tuple[datetime, datetime]) -> bool:
    return not any(k == kind and i == id_ and s < slot[1] and slot[0] < e for k, i, s, e in busy)


def eligibility(inputs: PlanInputs, threshold: float) -> np.ndarray:
    """Which expert may serve which need in an event, shape (n_needs, n_experts) of bool (cached).

    The matcher's hard rules: the expert is available with a free unit of capacity, serves the need's
    county (or every county), is not of the need's organisation, and fits at ``threshold`` or more.
    """
    key = ("eligible", threshold)
    if key not in inputs.cache:
        experts = inputs.experts
        ok = inputs.scores >= threshold
        ok &= (experts["available"].to_numpy(dtype=bool) & (experts["free"].to_numpy() > 0))[None, :]
        county = inputs.needs["county"].to_numpy(dtype=object)
        org = inputs.needs["org_id"].to_numpy(dtype=object)
        for e, (counties, own) in enumerate(zip(experts["counties"], experts["org_id"], strict=True)):
            if counties:
                ok[:, e] &= np.isin(county, list(counties))
            if own:
                ok[:, e] &= org != own
        inputs.cache[key] = ok
    return inputs.cache[key]


def _eligible(inputs: PlanInputs, need: int, expert: int, threshold: float) -> bool:
    return bool(eligibility(inputs, threshold)[need, expert])


def _candidates(inputs: PlanInputs, options: PlanOptions, slots: list) -> list[_Candidate]:
    needs = inputs.needs
    candidates = []
    groups: dict[tuple[str, str], list[int]] = {}
    for row, (county, tags) in enumerate(zip(needs["county"], needs["tags"], strict=True)):
        if not county or (options.counties and county not in options.counties):
            continue
        for tag in tags:
            if KIND_OF_TAG.get(tag, "training") in options.kinds:
                groups.setdefault((tag, county), []).append(row)
    for (tag, county), rows in sorted(groups.items()):
        if len(rows) < options.min_size:
            continue
        venues = tuple(
            int(v)
            for v in np.flatnonzero(
                ((inputs.venues["county"] == county) | (inputs.venues["county"] == "")).to_numpy()
                & (inputs.venues["seats"].to_numpy(dtype=float) >= options.min_size)
            )
        )
        venues = tuple(
            sorted(venues, key=lambda v: (inputs.venues.at[v, "county"] != county, -inputs.venues.at[v, "seats"]))
        )[:3]
        if not venues:
            continue
        ranked = []
        allowed = eligibility(inputs, options.threshold)[rows]  # (len(rows), n_experts)
        for expert in np.flatnonzero(allowed.sum(axis=0) >= options.min_size):
            expert = int(expert)
            served = [r for r, ok in zip(rows, allowed[:, expert], strict=True) if ok]
            served.sort(key=lambda r: (-inputs.scores[r, expert], needs.at[r, "need_id"]))
            served = served[: 2 * options.max_size]
            cover = float(sum(inputs.scores[r, expert] for r in served[: options.max_size]))
            ranked.append((-cover, inputs.experts.at[expert, "id"], expert, tuple(served)))
        for _, _, expert, served in sorted(ranked)[: options.experts_per_group]:
            expert_id = inputs.experts.at[expert, "id"]
            usable = tuple(
                s
                for s in range(len(slots))
                if _free(inputs.busy, "expert", expert_id, slots[s])
                and any(_free(inputs.busy, "venue", inputs.venues.at[v, "id"], slots[s]) for v in venues)
            )
            if usable:
                kind = KIND_OF_TAG.get(tag, "training")
                candidates.append(_Candidate(tag, kind, county, expert, served, venues, usable))
    return candidates


# --------------------------------------------------------------------------- the optimisation


def solve(inputs: PlanInputs, options: PlanOptions) -> PlanResult:
    """The plan of maximum total fit under the hard constraints (see the module docstring)."""
    from ortools.sat.python import cp_model

    options.check()
    started = time.perf_counter()
    slots = _slots(options)
    candidates = _candidates(inputs, options, slots)
    model = cp_model.CpModel()
    use = [model.new_bool_var(f"use{c}") for c in range(len(candidates))]
    take: dict[tuple[int, int], Any] = {}
    place: dict[tuple[int, int, int], Any] = {}
    by_need: dict[int, list] = {}
    by_expert: dict[int, list[int]] = {}
    by_expert_slot: dict[tuple[str, int], list] = {}
    by_venue_slot: dict[tuple[str, int], list] = {}
    objective = []
    for c, candidate in enumerate(candidates):
        expert_id = inputs.experts.at[candidate.expert, "id"]
        by_expert.setdefault(candidate.expert, []).append(c)
        for n in candidate.needs:
            var = model.new_bool_var(f"take{c}_{n}")
            take[(c, n)] = var
            model.add_implication(var, use[c])
            by_need.setdefault(n, []).append(var)
            objective.append(round(float(inputs.scores[n, candidate.expert]) * _SCALE) * var)
        size = sum(take[(c, n)] for n in candidate.needs)
        model.add(size >= options.min_size * use[c])
        model.add(size <= options.max_size * use[c])
        seats, placed = [], []
        for s in candidate.slots:
            for v in candidate.venues:
                venue_id = inputs.venues.at[v, "id"]
                if not _free(inputs.busy, "venue", venue_id, slots[s]):
                    continue
                var = model.new_bool_var(f"place{c}_{s}_{v}")
                place[(c, s, v)] = var
                placed.append(var)
                seats.append(int(inputs.venues.at[v, "seats"]) * var)
                by_expert_slot.setdefault((expert_id, s), []).append(var)
                by_venue_slot.setdefault((venue_id, s), []).append(var)
        model.add(sum(placed) == use[c])
        model.add(size <= sum(seats))
    for variables in by_need.values():
        model.add_at_most_one(variables)
    for expert, chosen in by_expert.items():
        model.add(sum(use[c] for c in chosen) <= int(inputs.experts.at[expert, "free"]))
    for variables in (*by_expert_slot.values(), *by_venue_slot.values()):
        model.add_at_most_one(variables)
    model.maximize(sum(objective) - sum(use))  # ties: fewer events, so fewer capacity units
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(options.time_limit)
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    code = solver.solve(model)
    seconds = time.perf_counter() - started
    status = solver.status_name(code)
    stopped = code == cp_model.FEASIBLE or (code == cp_model.UNKNOWN and bool(candidates))
    events: list[dict[str, Any]] = []
    served: set[int] = set()
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        for c, candidate in enumerate(candidates):
            if not solver.boolean_value(use[c]):
                continue
            rows = [n for n in candidate.needs if solver.boolean_value(take[(c, n)])]
            (s, v) = next((s, v) for (cc, s, v), var in place.items() if cc == c and solver.boolean_value(var))
            served.update(rows)
            events.append(_event(inputs, candidate, rows, slots[s], v, options))
    events.sort(key=lambda e: (e["starts_at"], e["venue_id"] or "", e["expert_ids"]))
    unserved = _unserved(inputs, options, served, candidates)
    if stopped:
        logger.warning("the event optimiser stopped at its time limit (%.1f s)", options.time_limit)
    logger.info("planned %d events for %d needs in %.2f s (%s)", len(events), len(served), seconds, status)
    return PlanResult(events, unserved, status, stopped, seconds)


# --------------------------------------------------------------------------- explanations


def _shared_terms(texts: Sequence[str], limit: int = 6) -> list[str]:
    """Words (two characters or more) found in at least two of the texts, most widespread first."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update({w for w in segment(text) if len(w) > 1 and not w.isdigit()})
    shared = [(n, w) for w, n in counts.items() if n >= 2]
    return [w for n, w in sorted(shared, key=lambda item: (-item[0], item[1]))[:limit]]


def _event(
    inputs: PlanInputs,
    candidate: _Candidate,
    rows: list[int],
    slot: tuple[datetime, datetime],
    venue: int,
    options: PlanOptions,
) -> dict[str, Any]:
    expert = inputs.experts.iloc[candidate.expert]
    venue_row = inputs.venues.iloc[venue]
    scores = [round(float(inputs.scores[n, candidate.expert]), 6) for n in rows]
    group_tags = Counter(t for n in rows for t in inputs.needs.at[n, "tags"])
    shared_tags = [t for t, k in sorted(group_tags.items(), key=lambda i: (-i[1], i[0])) if k >= 2]
    place = "district-wide" if not venue_row["county"] else f"in {venue_row['county']}"
    specialties = [t for t in expert["specialties"] if t in group_tags]
    reasons = {
        "terms": _shared_terms([inputs.needs.at[n, "text"] for n in rows]),
        "tags": shared_tags,
        "expert": (
            f"{expert['name']} ({expert['id']}) covers the group best: mean fit {np.mean(scores):.3f} over {len(rows)} needs"
            + (f", specialties {'、'.join(specialties)}" if specialties else "")
            + (f", serves {candidate.county}" if expert["counties"] else ", serves every county")
            + f", {int(expert['free'])} unit(s) of capacity free; the event uses one"
        ),
        "venue": (
            f"{venue_row['name']} ({venue_row['id']}) seats {int(venue_row['seats'])} ≥ {len(rows)} attendees, "
            f"{place}, free at that time"
        ),
    }
    seats = int(min(int(venue_row["seats"]), max(options.max_size, len(rows))))
    label = (
        "巡回" if candidate.kind == "supervision" and candidate.tag.endswith("督导") else KIND_LABELS[candidate.kind]
    )
    return {
        "kind": candidate.kind,
        "title": f"{candidate.tag}{label}（{candidate.county}）",
        "tags": [candidate.tag],
        "expert_ids": [str(expert["id"])],
        "venue_id": str(venue_row["id"]),
        "resource_ids": [],
        "county": candidate.county,
        "starts_at": to_local_iso(slot[0]),
        "ends_at": to_local_iso(slot[1]),
        "seats": seats,
        "needs": [
            {
                "need_id": str(inputs.needs.at[n, "need_id"]),
                "org_id": str(inputs.needs.at[n, "org_id"] or ""),
                "score": s,
            }
            for n, s in sorted(zip(rows, scores, strict=True), key=lambda i: (-i[1], inputs.needs.at[i[0], "need_id"]))
        ],
        "reasons": reasons,
    }


def _unserved(
    inputs: PlanInputs, options: PlanOptions, served: set[int], candidates: list[_Candidate]
) -> list[dict[str, str]]:
    """Why each need of the plan's scope was not grouped, in plain words."""
    needs = inputs.needs
    has_venue = {
        c
        for c in set(needs["county"])
        if any(
            (v_county in ("", c)) and seats >= options.min_size
            for v_county, seats in zip(inputs.venues["county"], inputs.venues["seats"], strict=True)
        )
    }
    in_candidate = {n for c in candidates for n in c.needs}
    result = []
    for row in range(len(needs)):
        county = needs.at[row, "county"]
        if row in served or (options.counties and county not in options.counties):
            continue
        tags = [t for t in needs.at[row, "tags"] if KIND_OF_TAG.get(t, "training") in options.kinds]
        experts = np.flatnonzero(eligibility(inputs, options.threshold)[row])
        if not county:
            reason = "no county: its organisation has no county, so no event can be placed for it"
        elif not tags:
            reason = "no topic: it has no tag of the kinds planned"
        elif not len(experts):
            best = float(inputs.scores[row].max()) if inputs.scores.shape[1] else 0.0
            reason = (
                f"no expert covers it: no available expert with a free unit serving {county} fits it "
                f"at {options.threshold} or more (best fit of any expert, eligible or not: {best:.3f})"
            )
        elif county not in has_venue:
            reason = f"no venue in {county}: no venue there (or district-wide) seats {options.min_size} or more"
        elif row not in in_candidate:
            reason = (
                f"too few similar needs: fewer than {options.min_size} open needs in {county} share a tag "
                "with it and an expert who fits them all; leave it to matcher assign"
            )
        else:
            reason = (
                "not chosen: the groups it could join were full, or their experts' capacity or free times "
                "went to groups that fit better; leave it to matcher assign"
            )
        result.append({"need_id": str(needs.at[row, "need_id"]), "reason": reason})
    return result


# --------------------------------------------------------------------------- checking a plan


def check_plan(plan: dict[str, Any], inputs: PlanInputs, options: PlanOptions) -> list[str]:
    """Every broken hard constraint of ``plan`` (an empty list for a valid plan); tests and benchmarks use it."""
    problems: list[str] = []
    need_row = {n: i for i, n in enumerate(inputs.needs["need_id"])}
    expert_row = {e: i for i, e in enumerate(inputs.experts["id"])}
    venues = inputs.venues.set_index("id")
    seen: Counter[str] = Counter()
    units: Counter[str] = Counter()
    times: list[tuple[str, str, datetime, datetime, int]] = []
    for number, event in enumerate(plan["events"]):
        label = f"event {number + 1}"
        start, end = parse_timestamp(event["starts_at"]), parse_timestamp(event["ends_at"])
        if end <= start:
            problems.append(f"{label}: ends before it starts")
        size = len(event["needs"])
        if not options.min_size <= size <= options.max_size:
            problems.append(f"{label}: {size} needs, outside {options.min_size}-{options.max_size}")
        if event["seats"] < size:
            problems.append(f"{label}: {event['seats']} seats < {size} attendees")
        venue = event["venue_id"]
        if venue not in venues.index:
            problems.append(f"{label}: unknown venue {venue}")
        else:
            if int(venues.at[venue, "seats"]) < size:
                problems.append(f"{label}: venue {venue} seats fewer than {size}")
            if venues.at[venue, "county"] not in ("", event["county"]):
                problems.append(f"{label}: venue {venue} is not in {event['county']}")
            times.append(("venue", venue, start, end, number))
        for expert_id in event["expert_ids"]:
            units[expert_id] += 1
            times.append(("expert", expert_id, start, end, number))
            e = expert_row.get(expert_id)
            if e is None:
                problems.append(f"{label}: unknown expert {expert_id}")
                continue
            for item in event["needs"]:
                n = need_row[item["need_id"]]
                if not _eligible(inputs, n, e, options.threshold):
                    problems.append(f"{label}: expert {expert_id} may not serve need {item['need_id']}")
                if abs(item["score"] - inputs.scores[n, e]) > 1e-6:
                    problems.append(f"{label}: need {item['need_id']} score {item['score']} is not the base score")
        for item in event["needs"]:
            seen[item["need_id"]] += 1
            if inputs.needs.at[need_row[item["need_id"]], "county"] != event["county"]:
                problems.append(f"{label}: need {item['need_id']} is not in {event['county']}")
    problems.extend(f"need {n} is in {k} events" for n, k in seen.items() if k > 1)
    for expert_id, used in units.items():
        if expert_id in expert_row and used > inputs.experts.at[expert_row[expert_id], "free"]:
            problems.append(
                f"expert {expert_id}: {used} events > {inputs.experts.at[expert_row[expert_id], 'free']} free units"
            )
    for i, (kind, id_, start, end, number) in enumerate(times):
        for other_kind, other_id, other_start, other_end, other in times[i + 1 :]:
            if kind == other_kind and id_ == other_id and number != other and start < other_end and other_start < end:
                problems.append(f"{kind} {id_} is in events {number + 1} and {other + 1} at once")
        if any(k == kind and b == id_ and s < end and start < e for k, b, s, e in inputs.busy):
            problems.append(f"{kind} {id_} is already taken at the time of event {number + 1}")
    served = {item["need_id"] for e in plan["events"] for item in e["needs"]}
    problems.extend(
        f"need {u['need_id']} is both served and unserved" for u in plan["unserved"] if u["need_id"] in served
    )
    return problems


# --------------------------------------------------------------------------- files and the database


def plan_rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan flat: one row per need of each event, then one per unserved need (CSV/XLSX)."""
    rows = []
    for number, event in enumerate(plan["events"], start=1):
        reasons = event["reasons"]
        flat = {
            "event": number,
            **{k: event[k] for k in ("kind", "title", "county", "starts_at", "ends_at", "seats", "venue_id")},
            "tags": ";".join(event["tags"]),
            "expert_ids": ";".join(event["expert_ids"]),
            "resource_ids": ";".join(event["resource_ids"]),
            "terms": ";".join(reasons.get("terms", [])),
            "reasons": " / ".join(str(reasons[k]) for k in ("expert", "venue") if k in reasons),
        }
        for need in event["needs"]:
            rows.append({**flat, **need, "reason": ""})
    blank = dict.fromkeys(PLAN_COLUMNS, "")
    rows.extend({**blank, "need_id": u["need_id"], "reason": u["reason"]} for u in plan["unserved"])
    return [{c: row.get(c, "") for c in PLAN_COLUMNS} for row in rows]


PLAN_COLUMNS = (
    "event",
    *PLAN_EVENT_FIELDS[: PLAN_EVENT_FIELDS.index("needs")],  # the event's own fields, then one need a row
    "need_id",
    "org_id",
    "score",
    "terms",
    "reasons",
    "reason",
)


def write_plan(result: PlanResult, path: Path) -> None:
    """``.json``: the plan body; ``.csv`` / ``.xlsx``: :func:`plan_rows`."""
    if path.suffix.lower() == ".json":
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(result.body(), ensure_ascii=False, indent=2) + "\n")
        os.replace(tmp, path)
        return
    if path.suffix.lower() not in (".csv", ".xlsx"):
        raise PlanError(f"out: {path}: use .json, .csv or .xlsx")
    write_table(plan_rows(result.body()), PLAN_COLUMNS, path, sheet="plan")


def commit_plan(
    plan: dict[str, Any],
    *,
    url: str | None = None,
    prefix: str | None = None,
    audit: Callable[[str, str, Any], None] | None = None,
) -> list[str]:
    """Store a plan's events (``planned``) and their attendees (``invited``) in one transaction.

    Every event and attendee is checked as the API checks it (a stale plan raises ConflictError and
    nothing is written). ``audit(kind, id, session)`` is called for each record created, in the same
    transaction. Returns the new event ids.
    """
    stamp = prefix or f"V{utcnow().strftime('%Y%m%d%H%M%S')}"
    ids = []
    with transaction(url) as session:
        for number, event in enumerate(plan["events"], start=1):
            event_id = f"{stamp}-{number:02d}"
            record = {k: event[k] for k in PLAN_EVENT_FIELDS if k not in ("needs", "reasons")}
            record.update(id=event_id, status="planned", description=_describe(event))
            create_record(session, "events", record)
            if audit is not None:
                audit("events", event_id, session)
            for k, need in enumerate(event["needs"], start=1):
                attendee = {
                    "id": f"{event_id}-{k:02d}",
                    "event_id": event_id,
                    "org_id": need["org_id"],
                    "need_id": need["need_id"],
                }
                create_record(session, "attendees", attendee)
                if audit is not None:
                    audit("attendees", attendee["id"], session)
            ids.append(event_id)
    return ids


def _describe(event: dict[str, Any]) -> str:
    reasons = event.get("reasons") or {}
    terms = "、".join(reasons.get("terms", []))
    return f"共同关注：{terms}" if terms else ""
