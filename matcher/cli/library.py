"""``matcher db``, ``import``, ``export`` and ``purge``: the database and its records; who acts from the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from matcher.cli import EXIT_USAGE

_STORE_KINDS = (
    "organisations",
    "needs",
    "experts",
    "resources",
    "projects",
    "decisions",
    "events",
    "attendees",
    "stages",
    "milestones",
)


@click.group()
def db() -> None:
    """Create and migrate the database ($DATABASE_URL, default instance/matcher.sqlite3)."""


@db.command("init")
def db_init() -> None:
    """Create the database, migrate it to the latest schema and fill it from data/ when it is empty."""
    from matcher.inputs.library import data_dir
    from matcher.store.db import current_revision, database_url, safe_url
    from matcher.store.kinds import counts
    from matcher.store.seed import ensure_database
    from matcher.store.transactions import transaction

    url = database_url()
    filled = ensure_database(url, data_dir())
    with transaction(url) as session:
        sizes = counts(session)
    click.echo(f"database {safe_url(url)} at schema revision {current_revision(url)}")
    listed = ", ".join(f"{sizes[k]} {k}" for k in _STORE_KINDS)
    if filled:
        click.echo(f"filled from {data_dir()}: {listed}, {sizes['open_engagements']} open engagements")
    else:
        click.echo(f"already holds data ({listed}); nothing filled")


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the latest schema (creating it if needed); data is not touched."""
    from matcher.store.db import current_revision, database_url, safe_url, upgrade
    from matcher.store.transactions import database_errors

    url = database_url()
    with database_errors(url):
        before = current_revision(url)
        upgrade(url)
        after = current_revision(url)
    if before == after:
        click.echo(f"database {safe_url(url)} is at schema revision {after}; nothing to do")
    else:
        click.echo(f"database {safe_url(url)} migrated from {before or 'empty'} to schema revision {after}")


@click.command("import")
@click.argument("kind", type=click.Choice(_STORE_KINDS))
@click.argument("file", type=click.Path(path_type=Path))
def import_command(kind: str, file: Path) -> None:
    """Import FILE (CSV, JSONL or XLSX) into KIND: upsert by id, all rows or none.

    An empty database is first created and filled from data/, as ``matcher db init`` does.
    """
    from matcher.inputs.library import data_dir
    from matcher.store.db import database_url
    from matcher.store.io import ImportRejectedError, import_file
    from matcher.store.seed import ensure_database

    url = database_url()
    ensure_database(url, data_dir())
    try:
        report = import_file(kind, file, url=url, actor=cli_actor())
    except ImportRejectedError as error:
        if len(error.problems) == 1:
            click.echo(f"matcher: {error.problems[0]}; nothing was imported", err=True)
            sys.exit(EXIT_USAGE)
        click.echo(f"matcher: {file}: {len(error.problems)} problem(s); nothing was imported:", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(str(report))


@click.command("export")
@click.argument("kind", type=click.Choice(_STORE_KINDS))
@click.argument("file", type=click.Path(path_type=Path))
def export_command(kind: str, file: Path) -> None:
    """Export the records of KIND to FILE (.csv, .jsonl or .xlsx); importing it back changes nothing."""
    from matcher.inputs.library import data_dir
    from matcher.store.db import database_url
    from matcher.store.io import export_file
    from matcher.store.seed import ensure_database

    url = database_url()
    ensure_database(url, data_dir())
    written = export_file(kind, file, url=url, actor=cli_actor())
    click.echo(f"exported {written} {kind} to {file}")


def cli_actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def store_url() -> str:
    from matcher.inputs.library import data_dir
    from matcher.store.db import database_url
    from matcher.store.seed import ensure_database

    url = database_url()
    ensure_database(url, data_dir())
    return url


@click.command()
@click.argument("kind", type=click.Choice(["organisations", "needs", "experts", "resources", "projects"]))
@click.argument("ids", nargs=-1, required=True)
def purge(kind: str, ids: tuple[str, ...]) -> None:
    """Erase the personal data of deleted records of KIND (on a person's request); audited.

    Each record must be deleted first (DELETE /v1/KIND/ID). Its row stays, so decisions keep their
    meaning; names become 已清除 and texts and contacts are emptied. Model versions trained before
    still hold the old texts: retrain (`matcher train`) and remove older versions from models/.
    """
    from matcher.store import audit
    from matcher.store.transactions import transaction

    with transaction(store_url()) as session:
        for record_id in ids:
            fields = audit.purge_record(session, kind, record_id)
            audit.record(
                session, actor=cli_actor(), action="purge", kind=kind, record_id=record_id, detail={"fields": fields}
            )
            click.echo(f"purged {kind} {record_id}: {', '.join(fields) or 'nothing left to erase'}")
