"""Transactions on the libraries' database: the transaction helper, database errors translated, the revision.

Every function that takes a ``session`` in the store works inside the caller's transaction (see
:func:`transaction`); every write bumps ``Revision.value`` (row 1) in that same transaction
(:func:`bump_revision`), so caches keyed by :func:`revision` see each change exactly once. Functions
that take a ``url`` open and commit their own transaction.

Concurrency: SQLite transactions start with ``BEGIN IMMEDIATE`` (one writer at a time). An unreachable
database is :class:`~matcher.errors.DatabaseUnavailableError` (:func:`database_errors`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from matcher.errors import DatabaseUnavailableError
from matcher.store.db import database_url, engine_for, session_scope
from matcher.store.schema import Revision

__all__ = [
    "bump_revision",
    "database_errors",
    "peek_revision",
    "revision",
    "transaction",
    "translate_db_errors",
]


def _describe(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"the SQLite database {parsed.database or ':memory:'}"
    port = parsed.port or {"postgresql": 5432, "mysql": 3306}.get(parsed.get_backend_name(), "")
    name = f" {parsed.database!r}" if parsed.database else ""
    return f"the {parsed.get_backend_name()} database{name} at {parsed.host or 'localhost'}:{port}"


@contextmanager
def database_errors(url: str | None = None) -> Iterator[None]:
    """Turn SQLAlchemy ``OperationalError``/``InterfaceError`` into :class:`DatabaseUnavailableError`.

    The message names the host and port (or the SQLite file) and the driver's reason, never the password.
    """
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        first = reason[0] if reason else type(error).__name__
        raise DatabaseUnavailableError(f"cannot use {_describe(url or database_url())}: {first}") from error


F = TypeVar("F", bound=Callable[..., Any])


def translate_db_errors(function: F) -> F:
    """Decorator form of :func:`database_errors` for functions with a ``url`` keyword argument."""

    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        url = signature.bind_partial(*args, **kwargs).arguments.get("url")
        with database_errors(url):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextmanager
def transaction(url: str | None = None) -> Iterator[Session]:
    """A session in one transaction (commit on success, rollback on error), database errors translated."""
    with database_errors(url), session_scope(url) as session:
        yield session


# =========================================================================== revision


def revision(session: Session) -> int:
    """The libraries' revision: bumped by every write (0 for a database never written)."""
    return session.scalar(select(Revision.value).where(Revision.id == 1)) or 0


def peek_revision(url: str | None = None) -> int:
    """The libraries' revision, read without a transaction (no write lock on SQLite): for caches.

    One ``SELECT`` on a pooled connection; :class:`DatabaseUnavailableError` when unreachable.
    """
    url = url or database_url()
    engine = engine_for(url)
    raw = None
    try:
        with database_errors(url):
            raw = engine.raw_connection()
            cursor = raw.cursor()
            try:
                cursor.execute("SELECT value FROM revision WHERE id = 1")
                row = cursor.fetchone()
            finally:
                cursor.close()
            raw.rollback()  # end the implicit transaction of drivers that open one (psycopg)
    except engine.dialect.loaded_dbapi.Error as error:  # raw connections raise the driver's errors
        if raw is not None:
            raw.invalidate(error)  # never hand this connection out again
        reason = str(error).strip().splitlines()
        raise DatabaseUnavailableError(
            f"cannot use {_describe(url)}: {reason[0] if reason else type(error).__name__}"
        ) from error
    finally:
        if raw is not None:
            raw.close()
    return int(row[0]) if row and row[0] is not None else 0


def bump_revision(session: Session) -> None:
    """Bump the libraries' revision in ``session``'s transaction: every write to the libraries calls it."""
    result = session.execute(update(Revision).where(Revision.id == 1).values(value=Revision.value + 1))
    if result.rowcount == 0:
        session.add(Revision(id=1, value=1))
    session.flush()
