"""The ``matcher`` command line: the group, logging set-up and the one mapping of errors to exit codes.

With ``create_app`` the only place that configures logging. Every expected failure is one clear line
on stderr and exit status 2; never a traceback. The commands live in one module per command group:
:mod:`~matcher.cli.models` (train, match, models), :mod:`~matcher.cli.jobs` (batch, assign),
:mod:`~matcher.cli.quality` (evaluate, gaps, tune, labels), :mod:`~matcher.cli.report`,
:mod:`~matcher.cli.library` (db, import, export, purge), :mod:`~matcher.cli.keys`,
:mod:`~matcher.cli.serve` and :mod:`~matcher.cli.events`.
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


def read_params(path: Path | None) -> dict[str, Any]:
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


def _add_commands() -> None:
    """Attach each command group's commands (their modules import this one's shared pieces, so not at its top)."""
    from matcher.cli import events, jobs, keys, library, models, quality, report, serve

    for command in (
        models.train,
        models.match,
        models.models,
        jobs.batch,
        jobs.assign,
        quality.evaluate,
        quality.gaps,
        quality.tune,
        quality.labels,
        report.report,
        library.db,
        library.import_command,
        library.export_command,
        library.purge,
        keys.keys,
        serve.serve,
        events.events,
    ):
        cli.add_command(command)


_add_commands()


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
        click.echo(f"matcher: internal error: {_describe_error(error)}", err=True)
        sys.exit(1)


def _describe_error(error: Exception) -> str:
    """An unexpected error in one line; a database error by its type only (its text holds SQL and values)."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(error, SQLAlchemyError):
        orig = getattr(error, "orig", None)
        return f"database error {type(orig or error).__name__}"
    return f"{type(error).__name__}: {error}".splitlines()[0]


if __name__ == "__main__":
    main()
