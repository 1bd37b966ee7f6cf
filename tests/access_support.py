"""Helpers of the access tests: a private copy of the trained database, with one key per role."""

from __future__ import annotations

import sqlite3
from pathlib import Path

ROLES = ("coordinator", "analyst", "admin")


def copy_database(url: str, target: Path) -> str:
    """A consistent copy of a SQLite database (WAL included), as a new URL."""
    source = sqlite3.connect(url.removeprefix("sqlite:///"))
    copy = sqlite3.connect(target)
    with copy:
        source.backup(copy)
    source.close()
    copy.close()
    return f"sqlite:///{target}"


def make_keys(url: str) -> dict[str, str]:
    """One key per role in the database at ``url``: ``{role: token}``."""
    from matcher.store import keys
    from matcher.store.transactions import transaction

    tokens = {}
    with transaction(url) as session:
        for role in ROLES:
            tokens[role], _ = keys.create_key(session, f"test {role}", role, created_by="tests")
    return tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
