"""Event planning: every hard constraint on generated instances, the optimum by brute force on small
ones, the time limit, explanations, the plan files, and the plan over the stored libraries and HTTP."""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from matcher.jobs.planning import (
    PLAN_EVENT_FIELDS,
    PlanError,
    PlanInputs,
    PlanOptions,
    check_plan,
    plan_rows,
    solve,
    write_plan,
)
from matcher.store.records import LOCAL_TZ

COUNTIES = ("雄县", "容城县", "安新县")
TAGS = ("小组工作", "个案管理", "政策解读", "专业督导")
WEEK = {"starts": date(2030, 3, 4), "ends": date(2030, 3, 8)}  # Monday to Friday: ten half days


def generated(seed: int, n_needs: int = 40, n_experts: int = 8, n_venues: int = 4, busy: int = 3) -> PlanInputs:
    """A random instance: needs in three counties with one or two tags, experts, venues, busy times."""
    rng = np.random.default_rng(seed)
    needs = pd.DataFrame(
        {
            "need_id": [f"N{i:03d}" for i in range(n_needs)],
            "org_id": [f"O{rng.integers(0, 12):02d}" for _ in range(n_needs)],
            "county": [COUNTIES[rng.integers(0, 3)] for _ in range(n_needs)],
            "tags": [sorted(set(rng.choice(TAGS, size=rng.integers(1, 3)).tolist())) for _ in range(n_needs)],
            "text": [f"需要{TAGS[i % 4]}方面的培训和督导" for i in range(n_needs)],
        }
    )
    experts = pd.DataFrame(
        {
            "id": [f"E{i:02d}" for i in range(n_experts)],
            "name": [f"专家{i}" for i in range(n_experts)],
            "org_id": [f"O{rng.integers(0, 12):02d}" if rng.random() < 0.3 else None for _ in range(n_experts)],
            "counties": [[] if rng.random() < 0.4 else [COUNTIES[rng.integers(0, 3)]] for _ in range(n_experts)],
            "specialties": [[TAGS[rng.integers(0, 4)]] for _ in range(n_experts)],
            "free": rng.integers(0, 3, size=n_experts).tolist(),
            "available": (rng.random(n_experts) < 0.9).tolist(),
        }
    )
    venues = pd.DataFrame(
        {
            "id": [f"R{i:02d}" for i in range(n_venues)],
            "name": [f"场地{i}" for i in range(n_venues)],
            "county": [("", *COUNTIES)[rng.integers(0, 4)] for _ in range(n_venues)],
            "seats": rng.integers(3, 15, size=n_venues).tolist(),
        }
    )
    scores = rng.random((n_needs, n_experts)) * 0.8
    taken = []
    for _ in range(busy):
        day = int(rng.integers(4, 9))
        hour = (9, 14)[rng.integers(0, 2)]
        kind, frame = ("expert", experts) if rng.random() < 0.5 else ("venue", venues)
        who = frame["id"].iloc[rng.integers(0, len(frame))]
        taken.append(
            (
                kind,
                who,
                datetime(2030, 3, day, hour, tzinfo=LOCAL_TZ),
                datetime(2030, 3, day, hour + 3, tzinfo=LOCAL_TZ),
            )
        )
    return PlanInputs(needs, experts, scores, venues, taken)


@pytest.mark.parametrize("seed", range(12))
def test_plans_of_generated_instances_break_no_constraint(seed) -> None:
    inputs = generated(seed)
    options = PlanOptions(**WEEK, min_size=2 + seed % 3, max_size=4 + seed % 5, threshold=0.2, time_limit=10)
    result = solve(inputs, options)
    assert not result.stopped_at_limit
    body = result.body()
    assert check_plan(body, inputs, options) == []
    served = {n["need_id"] for e in body["events"] for n in e["needs"]}
    # every need is either served or explained, never both
    assert served | {u["need_id"] for u in body["unserved"]} == set(inputs.needs["need_id"])
    assert all(u["reason"] for u in body["unserved"])
    for event in body["events"]:
        assert tuple(event) == PLAN_EVENT_FIELDS
        assert event["reasons"]["expert"] and event["reasons"]["venue"]


def test_the_check_finds_broken_constraints() -> None:
    inputs = generated(3)
    options = PlanOptions(**WEEK, min_size=2, max_size=6, threshold=0.2, time_limit=10)
    body = solve(inputs, options).body()
    assert len(body["events"]) >= 2
    broken = json.loads(json.dumps(body))
    first, second = broken["events"][:2]
    second.update(starts_at=first["starts_at"], ends_at=first["ends_at"], venue_id=first["venue_id"])
    first["seats"] = 1
    second["needs"].append(first["needs"][0])
    problems = " | ".join(check_plan(broken, inputs, options))
    assert "at once" in problems and "seats" in problems and "in 2 events" in problems


def _best_by_brute_force(inputs: PlanInputs, options: PlanOptions, slots: list) -> int:
    """The best objective over every assignment of needs to (expert, tag) groups and of slots and venues."""
    from matcher.jobs.planning import KIND_OF_TAG, _eligible, _free

    needs = inputs.needs
    choices = []
    for n in range(len(needs)):
        options_n = [None]
        for e in range(len(inputs.experts)):
            if _eligible(inputs, n, e, options.threshold):
                options_n.extend((e, t) for t in needs.at[n, "tags"] if KIND_OF_TAG.get(t, "training") in options.kinds)
        choices.append(options_n)
    best = 0
    for pick in itertools.product(*choices):
        groups: dict[tuple, list[int]] = {}
        for n, choice in enumerate(pick):
            if choice is not None:
                groups.setdefault((*choice, needs.at[n, "county"]), []).append(n)
        if any(not options.min_size <= len(m) <= options.max_size for m in groups.values()):
            continue
        per_expert = {}
        for e, _, _ in groups:
            per_expert[e] = per_expert.get(e, 0) + 1
        if any(k > inputs.experts.at[e, "free"] for e, k in per_expert.items()):
            continue
        value = sum(round(float(inputs.scores[n, k[0]]) * 1000) for k, m in groups.items() for n in m) - len(groups)
        if value <= best:
            continue
        keys = list(groups)
        places = []
        for e, _, county in keys:
            places.append(
                [
                    (s, v)
                    for s in range(len(slots))
                    for v in range(len(inputs.venues))
                    if inputs.venues.at[v, "county"] in ("", county)
                    and inputs.venues.at[v, "seats"] >= len(groups[(e, _, county)])
                    and _free(inputs.busy, "expert", inputs.experts.at[e, "id"], slots[s])
                    and _free(inputs.busy, "venue", inputs.venues.at[v, "id"], slots[s])
                ]
            )
        for placing in itertools.product(*places):
            experts_at = [(keys[i][0], s) for i, (s, _) in enumerate(placing)]
            venues_at = list(placing)
            if len(set(experts_at)) == len(experts_at) and len(set(venues_at)) == len(venues_at):
                best = value
                break
    return best


@pytest.mark.parametrize("seed", range(6))
def test_small_plans_are_optimal_by_brute_force(seed) -> None:
    from matcher.jobs.planning import _slots

    inputs = generated(100 + seed, n_needs=7, n_experts=2, n_venues=2, busy=2)
    inputs.experts["free"] = [1 + seed % 2, 2]
    inputs.experts["available"] = True
    inputs.needs["county"] = [COUNTIES[i % 2] for i in range(7)]
    inputs.venues["county"] = ["", COUNTIES[seed % 2]]
    inputs.venues["seats"] = [3, 2 + seed % 3]
    options = PlanOptions(
        starts=date(2030, 3, 4), ends=date(2030, 3, 4), min_size=2, max_size=3, threshold=0.15, time_limit=20
    )
    result = solve(inputs, options)
    assert check_plan(result.body(), inputs, options) == []
    value = sum(round(n["score"] * 1000) for e in result.events for n in e["needs"]) - len(result.events)
    assert value == _best_by_brute_force(inputs, options, _slots(options))
    assert result.events  # each of these instances has events to choose


def test_the_time_limit_is_kept_and_reported() -> None:
    inputs = generated(7, n_needs=400, n_experts=60, n_venues=12, busy=10)
    inputs.experts["free"] = 3
    options = PlanOptions(
        starts=date(2030, 3, 4), ends=date(2030, 3, 29), min_size=2, max_size=8, threshold=0.1, time_limit=0.5
    )
    result = solve(inputs, options)
    assert result.stopped_at_limit
    assert "time limit" in result.summary()
    assert check_plan(result.body(), inputs, options) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ends": date(2030, 3, 1)}, "period"),
        ({"kinds": ("party",)}, "kinds"),
        ({"min_size": 5, "max_size": 4}, "min_size"),
        ({"time_limit": 0}, "time_limit"),
    ],
)
def test_bad_options_name_the_option(change, field) -> None:
    with pytest.raises(PlanError) as error:
        solve(generated(0), PlanOptions(**{**WEEK, **change}))
    assert error.value.errors[0]["field"] == field


def test_unserved_needs_say_why_in_plain_words() -> None:
    inputs = generated(1)
    inputs.scores[0, :] = 0.0  # nobody fits need 0
    inputs.venues = inputs.venues.loc[inputs.venues["county"].isin(["容城县"])].reset_index(drop=True)
    options = PlanOptions(**WEEK, min_size=2, max_size=6, threshold=0.2, time_limit=10)
    reasons = {u["need_id"]: u["reason"] for u in solve(inputs, options).unserved}
    assert reasons["N000"].startswith("no expert covers it")
    elsewhere = inputs.needs.loc[inputs.needs["county"] == "雄县", "need_id"]
    assert any(reasons.get(n, "").startswith("no venue in 雄县") for n in elsewhere)


def test_plan_files_json_csv_xlsx(tmp_path) -> None:
    import openpyxl

    inputs = generated(2)
    inputs.needs.loc[0, "text"] = "=HYPERLINK(1)"
    result = solve(inputs, PlanOptions(**WEEK, min_size=2, max_size=6, threshold=0.2, time_limit=10))
    write_plan(result, tmp_path / "plan.json")
    assert json.loads((tmp_path / "plan.json").read_text(encoding="utf-8")) == result.body()
    write_plan(result, tmp_path / "plan.csv")
    lines = (tmp_path / "plan.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 1 + len(plan_rows(result.body()))
    write_plan(result, tmp_path / "plan.xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "plan.xlsx").active
    assert sheet.max_row == len(lines)
    with pytest.raises(PlanError):
        write_plan(result, tmp_path / "plan.txt")


# ---------------------------------------------------------------- the stored libraries and HTTP

VENUE = {"id": "R9001", "type": "venue", "name": "测试培训教室", "county": "", "seats": 40}


@pytest.fixture
def client(make_app, db_url):
    client = make_app(DATABASE_URL=db_url).test_client()
    assert client.post("/v1/resources", json=VENUE).status_code == 201
    return client


def test_plan_over_http_commits_events_that_hold_capacity(client, db_url) -> None:
    from matcher.store import libraries, transactions

    body = {"starts": "2030-03-04", "ends": "2030-03-15", "min_size": 2, "max_size": 10, "threshold": 0.25}
    response = client.post("/v1/events/plan", json=body)
    assert response.status_code == 200, response.get_json()
    plan = response.get_json()
    assert plan["events"], plan["summary"]
    taken = [(e["venue_id"], e["starts_at"]) for e in plan["events"]]
    taken += [(x, e["starts_at"]) for e in plan["events"] for x in e["expert_ids"]]
    assert len(taken) == len(set(taken))  # no venue or expert in two events at once
    needs = [n["need_id"] for e in plan["events"] for n in e["needs"]]
    assert len(needs) == len(set(needs))
    committed = client.post("/v1/events/plan", json={**body, "commit": True}).get_json()
    assert len(committed["event_ids"]) == len(committed["events"])
    first = client.get(f"/v1/events/{committed['event_ids'][0]}").get_json()
    assert first["status"] == "planned"
    attendees = client.get(f"/v1/attendees?event_id={first['id']}&per_page=100").get_json()
    assert attendees["total"] == len(committed["events"][0]["needs"])
    expert_id = first["expert_ids"][0]
    before = client.get(f"/v1/experts/{expert_id}").get_json()
    with transactions.transaction(db_url) as session:
        load_before = libraries.load_libraries_db(session).load().get(expert_id, 0)
    if load_before < before["capacity"]:
        assert client.put(f"/v1/events/{first['id']}", json={**first, "status": "confirmed"}).status_code == 200
        with transactions.transaction(db_url) as session:
            assert libraries.load_libraries_db(session).load().get(expert_id, 0) == load_before + 1
    sheet = client.get(f"/v1/events/{first['id']}/signin.xlsx")
    assert sheet.status_code == 200 and sheet.data[:2] == b"PK"


def test_plan_errors_are_problems(client) -> None:
    bad = client.post("/v1/events/plan", json={"starts": "2030-03-04", "ends": "2030-03-01"})
    assert bad.status_code == 400 and bad.content_type == "application/problem+json"
    assert client.post("/v1/events/plan", json={"starts": "x"}).status_code == 400
    assert (
        client.post("/v1/events/plan", json={"starts": "2030-03-04", "ends": "2030-03-05", "x": 1}).status_code == 400
    )


def test_cli_plan_writes_the_plan_and_refuses_bad_options(cli_env, tmp_path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "matcher.cli", "events", "plan", "--from", "2030-03-04", "--to", "2030-03-08"]
        return subprocess.run([*command, *args], env=cli_env, capture_output=True, text=True, timeout=300)

    bad = run("--out", str(tmp_path / "plan.txt"))
    assert bad.returncode == 2 and "use .json, .csv or .xlsx" in bad.stderr and "Traceback" not in bad.stderr
    wrong_kind = run("--kinds", "party")
    assert wrong_kind.returncode == 2 and "kinds" in wrong_kind.stderr
    done = run("--min-size", "2", "--time-limit", "5", "--out", str(tmp_path / "plan.json"))
    assert done.returncode == 0, done.stderr
    plan = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    assert set(plan) == {"events", "unserved"}
    assert all(tuple(event) == PLAN_EVENT_FIELDS for event in plan["events"])
    assert "needs not grouped" in done.stdout
