"""Engines, sessions and migrations: ``DATABASE_URL`` or the embedded SQLite file.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with ``BEGIN IMMEDIATE``
so that concurrent writers queue instead of failing or interleaving (read-then-write checks such as
"does this expert have capacity left" stay correct). PostgreSQL uses row locks for the same checks.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from matcher.config import Settings

logger = logging.getLogger(__name__)

__all__ = ["database_url", "dispose_engines", "engine_for", "is_sqlite", "safe_url", "session_scope", "upgrade"]

#: Engines kept open at once; the least recently used one beyond is disposed.
MAX_ENGINES = 8


def database_url() -> str:
    """``$DATABASE_URL`` (``postgres://`` forms sent to psycopg 3), or the embedded SQLite file ``./instance/matcher.sqlite3``."""
    return Settings.from_env().database_url


def safe_url(url: str) -> str:
    """``url`` as it may be shown or logged: the password hidden (``postgresql://user:***@host/db``)."""
    return make_url(url).render_as_string(hide_password=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _configure_sqlite(engine)
    else:
        connect_args = {"connect_timeout": 5} if url.startswith("postgresql") and "connect_timeout" not in url else {}
        engine = create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_timeout=10, connect_args=connect_args
        )
    return engine


class _Engines:
    """The open engines of this process, one per URL, with their session factories.

    At most ``size`` are kept: the least recently used one beyond is disposed (its pooled
    connections closed; connections checked out at that moment close when they are returned).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._open: OrderedDict[str, tuple[Engine, sessionmaker[Session]]] = OrderedDict()

    def get(self, url: str) -> tuple[Engine, sessionmaker[Session]]:
        with self._lock:
            found = self._open.get(url)
            if found is not None:
                self._open.move_to_end(url)
                return found
            engine = _create_engine(url)
            found = self._open[url] = (engine, sessionmaker(engine, expire_on_commit=False))
            dropped = [self._open.popitem(last=False)[1][0] for _ in range(len(self._open) - self.size)]
        for old in dropped:
            old.dispose()
        return found

    def dispose(self, url: str | None = None) -> None:
        with self._lock:
            if url is None:
                dropped = [engine for engine, _ in self._open.values()]
                self._open.clear()
            else:
                found = self._open.pop(url, None)
                dropped = [found[0]] if found else []
        for engine in dropped:
            engine.dispose()


_engines = _Engines(MAX_ENGINES)


def engine_for(url: str) -> Engine:
    """The engine of ``url``: one per URL per process, open until :func:`dispose_engines` (or evicted)."""
    return _engines.get(url)[0]


def dispose_engines(url: str | None = None) -> None:
    """Close the engine of ``url`` (every engine when None); the next use of the URL opens a new one."""
    _engines.dispose(url)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's begin event emit BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _enable_wal(cursor: sqlite3.Cursor, attempts: int = 100) -> None:
    """Switch a new database file to WAL mode (persistent), waiting while another process creates it.

    The switch needs an exclusive lock and does not wait on SQLite's busy handler, so processes that
    open a brand-new file at once (gunicorn workers) retry here instead of failing.
    """
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.1)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error."""
    session = _engines.get(url or database_url())[1]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("matcher.store") / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` with the Alembic migrations."""
    url = url or database_url()
    config = _alembic_config(url)
    with engine_for(url).connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


def current_revision(url: str | None = None) -> str | None:
    """The schema revision the database is at, or None for an empty database."""
    with engine_for(url or database_url()).connect() as connection:
        if "alembic_version" not in inspect(connection).get_table_names():
            return None
        return MigrationContext.configure(connection).get_current_revision()
