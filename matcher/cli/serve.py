"""``matcher serve``: the API and the web page with gunicorn; refuses an open address without API keys."""

from __future__ import annotations

import logging

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--timeout", default=60, show_default=True, type=click.IntRange(5, 3600), help="Worker timeout, s.")
def serve(host: str, port: int, workers: int, timeout: int) -> None:
    """Serve the API and the web page with gunicorn (JSON logs on stderr).

    Off the loopback address, API keys must be configured (`matcher keys create`, or MATCHER_API_KEYS);
    on it, while none is, keyless requests are served as the local coordinator.
    """
    from matcher.web.server import run

    _check_bind(host)
    from matcher.web.monitoring import configure_logging

    configure_logging(logging.INFO)
    run(host=host, port=port, workers=workers, timeout=timeout)


def _keys_configured() -> bool:
    """MATCHER_API_KEYS (checked here) or any row of the api_keys table."""
    from matcher.config import Settings
    from matcher.inputs.library import data_dir
    from matcher.roles import parse_env_keys
    from matcher.store.db import database_url
    from matcher.store.keys import count_keys
    from matcher.store.seed import ensure_database
    from matcher.store.transactions import transaction

    if parse_env_keys(Settings.from_env().api_keys):
        return True
    url = database_url()
    ensure_database(url, data_dir())
    with transaction(url) as session:
        return count_keys(session) > 0


def _check_bind(host: str) -> None:
    from matcher.config import Settings
    from matcher.roles import is_loopback, parse_env_keys

    if is_loopback(host):
        parse_env_keys(Settings.from_env().api_keys)  # a malformed entry stops the start here
        return
    if not _keys_configured():
        raise click.UsageError(
            f"refusing to serve on {host} without API keys: anyone who can reach it would be a coordinator. "
            "Create a key first (`matcher keys create --name NAME --role coordinator`, or set MATCHER_API_KEYS), "
            "or serve on 127.0.0.1"
        )
