"""``matcher report``: the bureau's report of a period as a workbook."""

from __future__ import annotations

from pathlib import Path

import click

from matcher.cli.library import store_url


@click.command()
@click.option("--period", required=True, help="A quarter (2026Q3), a month (2026-07) or a year (2026).")
@click.option("--county", default=None, help="Only this county's organisations (e.g. 雄县).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The workbook to write (.xlsx).")
def report(period: str, county: str | None, out: Path) -> None:
    """The bureau report (工作报表) of a period, with the previous period beside it, as XLSX."""
    from matcher.documents.bureau import bureau_report, parse_period, report_workbook
    from matcher.documents.writer import atomic_file
    from matcher.store.transactions import transaction

    if out.suffix.lower() != ".xlsx":
        raise click.UsageError(f"--out {out}: the report is a workbook; use a .xlsx file name")
    parse_period(period)  # a bad period is refused before the database is opened
    url = store_url()
    with transaction(url) as session:
        body = bureau_report(session, period, county)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:
        tmp.write_bytes(report_workbook(body))
    figures = sum(len(t["rows"]) for t in body["tables"])
    where = body["county"] or "all counties"
    click.echo(
        f"report {body['period']['label']} ({body['period']['start']} to {body['period']['end']}, {where}), "
        f"previous {body['previous']['label']}: {len(body['tables'])} tables, {figures} figures; wrote {out}"
    )
