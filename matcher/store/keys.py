"""API keys and page sessions in the database (tables of migration ``0002``).

Only SHA-256 hashes of keys and of session tokens are stored. Pure SQLAlchemy, no Flask; every
function works inside the caller's transaction (:func:`matcher.store.transactions.transaction`).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from matcher.errors import ConflictError, NotFoundError
from matcher.roles import ROLES, Identity, hash_token, new_token
from matcher.store.records import to_local_iso
from matcher.store.schema import ApiKey, WebSession, utcnow

__all__ = [
    "count_keys",
    "create_key",
    "create_session",
    "delete_session",
    "find_key",
    "find_session",
    "key_item",
    "list_keys",
    "revoke_key",
]


def key_item(key: ApiKey) -> dict[str, Any]:
    """A key as shown to admins: never the token or its hash."""
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "created_at": to_local_iso(key.created_at),
        "created_by": key.created_by,
        "revoked_at": to_local_iso(key.revoked_at),
    }


def create_key(session: Session, name: str, role: str, *, created_by: str = "") -> tuple[str, dict[str, Any]]:
    """Make a key; returns ``(token, item)``. The token is shown once and stored only as its hash."""
    if role not in ROLES:
        raise ValueError(f"role: must be one of {', '.join(ROLES)}, got {role!r}")
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise ValueError("name: must be 1 to 100 characters")
    token = new_token()
    key = ApiKey(
        id="k_" + secrets.token_hex(5),
        name=name,
        role=role,
        key_hash=hash_token(token),
        created_at=utcnow(),
        created_by=created_by[:100],
    )
    session.add(key)
    session.flush()
    return token, key_item(key)


def list_keys(session: Session) -> list[dict[str, Any]]:
    """Every key, oldest first, revoked ones included."""
    return [key_item(k) for k in session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))]


def revoke_key(session: Session, key_id: str) -> dict[str, Any]:
    """Revoke a key (it stays listed); its page sessions end. :class:`NotFoundError`, :class:`ConflictError`."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"there is no key with id {key_id!r}")
    if key.revoked_at is not None:
        raise ConflictError(f"key {key_id} is already revoked")
    key.revoked_at = utcnow()
    session.execute(delete(WebSession).where(WebSession.key_hash == key.key_hash))
    session.flush()
    return key_item(key)


def find_key(session: Session, key_hash: str) -> Identity | None:
    """The identity of a live key with this hash, or None."""
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
    if key is None or key.revoked_at is not None:
        return None
    return Identity(role=key.role, key_id=key.id, name=key.name, key_hash=key.key_hash)


def count_keys(session: Session) -> int:
    """Keys in the table, revoked ones included."""
    return session.scalar(select(func.count()).select_from(ApiKey)) or 0


# --------------------------------------------------------------------------- page sessions


def create_session(session: Session, key_hash: str, *, hours: float) -> tuple[str, str]:
    """A page session for a key; returns ``(cookie token, CSRF token)``. Expired sessions are removed."""
    now = utcnow()
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            id=hash_token(token),
            key_hash=key_hash,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    session.flush()
    return token, csrf


def find_session(session: Session, token: str) -> tuple[str, str] | None:
    """``(key hash, CSRF token)`` of a live page session, or None."""
    row = session.get(WebSession, hash_token(token))
    if row is None or row.expires_at <= utcnow():
        return None
    return row.key_hash, row.csrf_token


def delete_session(session: Session, token: str) -> None:
    """End a page session (nothing happens for an unknown one)."""
    session.execute(delete(WebSession).where(WebSession.id == hash_token(token)))
