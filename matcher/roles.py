"""API keys and roles: who may do what.

A key is a random token (``mk_`` + 43 URL-safe characters, 256 bits) that a client sends as
``Authorization: Bearer <key>``; only its SHA-256 is stored, in the ``api_keys`` table (``matcher keys
create``) or in ``MATCHER_API_KEYS`` (``name:role:sha256`` entries separated by commas or spaces).

Roles and their permissions (:data:`ROLES`):

============  =====================================================================================
role          permissions
============  =====================================================================================
coordinator   ``read`` libraries, ``match``, ``feedback``, ``edit`` libraries, ``contacts`` (see experts'
              phone and e-mail), ``metrics``
analyst       ``read`` (need texts redacted, no contacts), ``match``, ``models`` (list), ``metrics``
admin         ``keys``, ``models``, ``activate`` model versions, ``audit`` (read the log), ``metrics``
============  =====================================================================================

"No keys configured" means: no row at all in ``api_keys`` (revoked ones count: once a key was made,
keyless access stays off) and no ``MATCHER_API_KEYS``. Only then does the server take keyless
requests from the loopback address as the local coordinator (see :mod:`matcher.web.access`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "LOCAL",
    "PERMISSIONS",
    "ROLES",
    "Identity",
    "KeyRing",
    "hash_token",
    "is_loopback",
    "new_token",
    "parse_env_keys",
]

PERMISSIONS = ("read", "match", "feedback", "edit", "contacts", "models", "activate", "keys", "audit", "metrics")
ROLES: dict[str, frozenset[str]] = {
    "coordinator": frozenset({"read", "match", "feedback", "edit", "contacts", "metrics"}),
    "analyst": frozenset({"read", "match", "models", "metrics"}),
    "admin": frozenset({"keys", "models", "activate", "audit", "metrics"}),
}
TOKEN_PREFIX = "mk_"
_TOKEN = re.compile(r"^[\x21-\x7e]{16,512}$")  # printable ASCII, no spaces
_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Identity:
    """Who a request comes from: a key (``key_id``, ``name``), or the keyless local coordinator."""

    role: str
    key_id: str | None
    name: str
    key_hash: str | None = None

    @property
    def permissions(self) -> frozenset[str]:
        return ROLES.get(self.role, frozenset())

    def may(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def actor(self) -> str:
        """How the audit log names this identity."""
        return f"key:{self.key_id}" if self.key_id else self.name


LOCAL = Identity(role="coordinator", key_id=None, name="local")


def new_token() -> str:
    """A new random API key (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(token: str) -> bool:
    return bool(_TOKEN.match(token))


def parse_env_keys(value: str | None) -> dict[str, Identity]:
    """``MATCHER_API_KEYS`` as ``{sha256: Identity}``; entries are ``name:role:sha256``.

    Raises
    ------
    ValueError
        Naming the entry that is malformed or has an unknown role.
    """
    keys: dict[str, Identity] = {}
    for entry in re.split(r"[,\s]+", (value or "").strip()):
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) != 3 or not parts[0] or parts[1] not in ROLES or not _HASH.match(parts[2].lower()):
            raise ValueError(
                f"MATCHER_API_KEYS: entry {entry[:40]!r} is not name:role:sha256 "
                f"(role one of {', '.join(ROLES)}; sha256 of the key as 64 hex digits)"
            )
        name, role, digest = parts[0], parts[1], parts[2].lower()
        keys[digest] = Identity(role=role, key_id=f"env:{name}", name=name, key_hash=digest)
    return keys


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` is a loopback IP (127.0.0.0/8, ::1) or ``localhost``."""
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


class KeyRing:
    """Resolves key hashes to identities: the environment's keys, then the database (cached).

    Parameters
    ----------
    env_keys : ``{sha256: Identity}`` from ``MATCHER_API_KEYS``.
    lookup : ``sha256 -> Identity | None`` reading the database (revoked keys give None).
    count : ``() -> int``, the number of keys in the database, revoked ones included.
    ttl : seconds a database answer is reused; a key revoked in another process stops working
        within this time (0: ask the database on every request).
    """

    def __init__(
        self,
        env_keys: dict[str, Identity],
        lookup: Callable[[str], Identity | None],
        count: Callable[[], int],
        ttl: float = 2.0,
    ) -> None:
        self.env_keys = env_keys
        self._lookup = lookup
        self._count = count
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Identity | None]] = {}
        self._configured: tuple[float, bool] | None = None

    def identity(self, key_hash: str) -> Identity | None:
        """The identity of a key hash, or None for an unknown or revoked key."""
        if key_hash in self.env_keys:
            return self.env_keys[key_hash]
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self._lookup(key_hash)
        if self.ttl > 0:
            with self._lock:
                if len(self._cache) > 10_000:  # unknown keys are cached too; keep memory bounded
                    self._cache.clear()
                self._cache[key_hash] = (now + self.ttl, found)
        return found

    def configured(self) -> bool:
        """Whether any key is configured (environment, or any row of ``api_keys``)."""
        if self.env_keys:
            return True
        now = time.monotonic()
        cached = self._configured
        if cached is not None and (cached[1] or cached[0] > now):
            return cached[1]  # rows are never deleted: once configured, always configured
        configured = self._count() > 0
        self._configured = (now + self.ttl, configured)
        return configured

    def forget(self) -> None:
        """Drop cached answers (after this process created or revoked a key)."""
        with self._lock:
            self._cache.clear()
        self._configured = None
