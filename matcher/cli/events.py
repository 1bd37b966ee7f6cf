"""``matcher events``: plan trainings, workshops and supervision rounds (see :mod:`matcher.jobs.planning`)."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import click

from matcher.matching.rank import WEAK_SCORE

__all__ = ["events"]

logger = logging.getLogger(__name__)


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").replace("，", ",").split(",") if v.strip())


@click.group()
def events() -> None:
    """Trainings, workshops and supervision rounds that serve several needs at once."""


@events.command("plan")
@click.option(
    "--from", "starts", type=click.DateTime(["%Y-%m-%d"]), help="First day of the period (default: tomorrow)."
)
@click.option("--to", "ends", type=click.DateTime(["%Y-%m-%d"]), help="Last day of the period (default: 4 weeks on).")
@click.option("--kinds", default=None, help="Comma-separated: training,workshop,supervision (default: all).")
@click.option("--counties", default=None, help="Comma-separated counties (default: all).")
@click.option(
    "--min-size", default=3, show_default=True, type=click.IntRange(2, 200), help="Needs per event, at least."
)
@click.option(
    "--max-size", default=12, show_default=True, type=click.IntRange(2, 200), help="Needs per event, at most."
)
@click.option("--threshold", default=WEAK_SCORE, show_default=True, type=click.FloatRange(0, 1), help="Least fit score.")
@click.option(
    "--time-limit", default=30.0, show_default=True, type=click.FloatRange(0.1, 3600), help="Optimiser time limit, s."
)
@click.option("--out", type=click.Path(path_type=Path), help="The plan as .json, .csv or .xlsx.")
@click.option("--commit", is_flag=True, help="Store the proposed events (planned) and their attendees (invited).")
def plan(
    starts, ends, kinds, counties, min_size, max_size, threshold, time_limit, out: Path | None, commit: bool
) -> None:
    """Propose events for the open needs of a period: groups, experts, venues and times."""
    from matcher.jobs.planning import PlanError, PlanOptions, commit_plan, plan_inputs, solve, write_plan
    from matcher.store.db import database_url

    if out is not None and out.suffix.lower() not in (".json", ".csv", ".xlsx"):
        raise PlanError(f"--out {out}: use .json, .csv or .xlsx")
    first = starts.date() if starts else date.today() + timedelta(days=1)
    options = PlanOptions(
        starts=first,
        ends=ends.date() if ends else first + timedelta(days=27),
        kinds=_list(kinds) or PlanOptions.kinds,
        counties=_list(counties),
        min_size=min_size,
        max_size=max_size,
        threshold=threshold,
        time_limit=time_limit,
    )
    options.check()
    url = database_url()
    result = solve(plan_inputs(database_url=url), options)
    click.echo(result.summary())
    for number, event in enumerate(result.events, start=1):
        click.echo(
            f"  {number:2}. {event['starts_at'][:16]} {event['title']} · {event['expert_ids'][0]} · "
            f"{event['venue_id']} · {len(event['needs'])} needs"
        )
    if out is not None:
        write_plan(result, out)
        click.echo(f"wrote {out}")
    if commit:
        ids = commit_plan(result.body(), url=url)
        click.echo(f"stored {len(ids)} planned events: {', '.join(ids)}")
