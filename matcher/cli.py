"""The ``matcher`` command line; with ``create_app`` the only place that configures logging.

Every expected failure is one clear line on stderr and exit status 2; never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from matcher.errors import MatcherError

logger = logging.getLogger("matcher")

EXIT_USAGE = 2


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("jieba").setLevel(logging.WARNING)


def _read_params(path: Path | None) -> dict[str, Any]:
    """A ``--params`` file: a flat JSON object of ``get_params()`` keys."""
    if path is None:
        return {}
    try:
        params = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as error:
        raise click.BadParameter(f"{path}: file not found", param_hint="--params") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise click.BadParameter(f"{path}: not valid JSON ({error})", param_hint="--params") from error
    if not isinstance(params, dict):
        raise click.BadParameter(f"{path}: expected a JSON object of parameters", param_hint="--params")
    return params


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def cli(verbose: bool) -> None:
    """Match social-work needs to experts, resources and exemplary projects."""
    _configure_logging(verbose)


@cli.command()
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="JSON object of model parameters.")
@click.option("--no-activate", is_flag=True, help="Save the version without making it active.")
@click.option("--if-none-active", is_flag=True, help="Do nothing when an active version exists.")
def train(params_file: Path | None, no_activate: bool, if_none_active: bool) -> None:
    """Fit the matcher on the libraries and save a new model version in models/."""
    from matcher import persist
    from matcher.training import train_version

    active = persist.active_version()
    if if_none_active and active and (persist.models_dir() / active).is_dir():
        click.echo(f"model version {active} is active; nothing to do")
        return
    version = train_version(_read_params(params_file), activate=not no_activate)
    click.echo(f"saved model version {version}" + ("" if no_activate else " (active)"))


@cli.command()
@click.argument("text")
@click.option("--k", default=5, show_default=True, type=int, help="Results per target type (1-50).")
@click.option("--targets", default=None, help="Comma-separated target types: expert,resource,project.")
@click.option("--county", default=None, help="Keep targets that serve this county.")
@click.option("--json", "as_json", is_flag=True, help="Print the HTTP response body as JSON.")
def match(text: str, k: int, targets: str | None, county: str | None, as_json: bool) -> None:
    """Match a need typed as TEXT with the active model."""
    from pydantic import ValidationError

    from matcher import persist
    from matcher.library import data_dir
    from matcher.service import MatchRequest, MatchService

    payload: dict[str, Any] = {"text": text, "k": k}
    if targets:
        payload["targets"] = [t.strip() for t in targets.split(",") if t.strip()]
    if county:
        payload["filters"] = {"county": county}
    try:
        request = MatchRequest.model_validate(payload)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "text"
        raise click.UsageError(f"{field}: {first['msg']}") from error
    body = MatchService(persist.models_dir(), data_dir()).match(request)
    if as_json:
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    for target_type, results in body["results"].items():
        click.echo(f"== {target_type} ({len(results)})")
        for rank, result in enumerate(results, 1):
            reasons = result["reasons"]
            terms = "、".join(t["term"] for t in reasons["terms"]) or "-"
            tags = "、".join(reasons["tags"]) or "-"
            click.echo(f"{rank:>2}. {result['score']:.3f}  {result['id']}  {result['name']}  词: {terms}  标签: {tags}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API and the web page with gunicorn."""
    from matcher.server import run

    run(host=host, port=port, workers=workers)


@cli.command()
@click.option(
    "--needs", "needs_file", required=True, type=click.Path(path_type=Path), help="Needs file (CSV, JSONL or XLSX)."
)
@click.option("--experts", required=True, type=click.Path(path_type=Path), help="Experts file.")
@click.option("--resources", type=click.Path(path_type=Path), help="Resources file.")
@click.option("--projects", type=click.Path(path_type=Path), help="Projects file.")
@click.option("--k", default=10, show_default=True, type=click.IntRange(min=1), help="Rows per need and target type.")
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="JSON object of model parameters.")
@click.option("--out", type=click.Path(path_type=Path), help="Score table: .csv, or .parquet for Parquet.")
@click.option("--check", is_flag=True, help="Only validate the inputs and report; write nothing.")
@click.option(
    "--skip-invalid",
    "rejects_file",
    metavar="REJECTS.csv",
    type=click.Path(path_type=Path),
    help="Skip invalid rows, listing them in this CSV file.",
)
def batch(
    needs_file: Path,
    experts: Path,
    resources: Path | None,
    projects: Path | None,
    k: int,
    params_file: Path | None,
    out: Path | None,
    check: bool,
    rejects_file: Path | None,
) -> None:
    """Score every need of a file against expert, resource and project files; write the score table."""
    from matcher.batch import check_inputs, run_batch

    files = {"expert": experts, "resource": resources, "project": projects}
    targets = {target_type: path for target_type, path in files.items() if path is not None}
    params = _read_params(params_file)
    if check:
        report = check_inputs(needs_file, targets, params=params, out=out)
        for line in report.lines():
            click.echo(line)
        if not report.ok:
            sys.exit(EXIT_USAGE)
        return
    if out is None:
        raise click.UsageError("--out is required (unless --check is given)")
    result = run_batch(needs_file, targets, out, k=k, params=params, skip_invalid=rejects_file)
    click.echo(result.summary())


_STORE_KINDS = ("organisations", "needs", "experts", "resources", "projects", "decisions")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@cli.group()
def db() -> None:
    """Create and migrate the database ($DATABASE_URL, default instance/matcher.sqlite3)."""


@db.command("init")
def db_init() -> None:
    """Create the database, migrate it to the latest schema and fill it from data/ when it is empty."""
    from matcher.library import data_dir
    from matcher.store.db import current_revision, database_url
    from matcher.store.repository import counts, ensure_database, transaction

    url = database_url()
    filled = ensure_database(url, data_dir())
    with transaction(url) as session:
        sizes = counts(session)
    click.echo(f"database {_safe_url(url)} at schema revision {current_revision(url)}")
    listed = ", ".join(f"{sizes[k]} {k}" for k in _STORE_KINDS)
    if filled:
        click.echo(f"filled from {data_dir()}: {listed}, {sizes['open_engagements']} open engagements")
    else:
        click.echo(f"already holds data ({listed}); nothing filled")


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the latest schema (creating it if needed); data is not touched."""
    from matcher.store.db import current_revision, database_url, upgrade
    from matcher.store.repository import database_errors

    url = database_url()
    with database_errors(url):
        before = current_revision(url)
        upgrade(url)
        after = current_revision(url)
    if before == after:
        click.echo(f"database {_safe_url(url)} is at schema revision {after}; nothing to do")
    else:
        click.echo(f"database {_safe_url(url)} migrated from {before or 'empty'} to schema revision {after}")


@cli.command("import")
@click.argument("kind", type=click.Choice(_STORE_KINDS))
@click.argument("file", type=click.Path(path_type=Path))
def import_command(kind: str, file: Path) -> None:
    """Import FILE (CSV, JSONL or XLSX) into KIND: upsert by id, all rows or none.

    An empty database is first created and filled from data/, as ``matcher db init`` does.
    """
    from matcher.library import data_dir
    from matcher.store.db import database_url
    from matcher.store.repository import ImportRejectedError, ensure_database, import_file

    url = database_url()
    ensure_database(url, data_dir())
    try:
        report = import_file(kind, file, url=url)
    except ImportRejectedError as error:
        click.echo(f"matcher: {file}: {len(error.problems)} problem(s); nothing was imported:", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(str(report))


@cli.command("export")
@click.argument("kind", type=click.Choice(_STORE_KINDS))
@click.argument("file", type=click.Path(path_type=Path))
def export_command(kind: str, file: Path) -> None:
    """Export the records of KIND to FILE (.csv, .jsonl or .xlsx); importing it back changes nothing."""
    from matcher.library import data_dir
    from matcher.store.db import database_url
    from matcher.store.repository import ensure_database, export_file

    url = database_url()
    ensure_database(url, data_dir())
    written = export_file(kind, file, url=url)
    click.echo(f"exported {written} {kind} to {file}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``matcher`` console script."""
    try:
        cli.main(args=argv, prog_name="matcher", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as error:
        click.echo(f"matcher: {error.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except (MatcherError, ValueError, OSError) as error:
        click.echo(f"matcher: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as error:
        logger.debug("unexpected error", exc_info=True)
        click.echo(f"matcher: internal error: {type(error).__name__}: {error}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
