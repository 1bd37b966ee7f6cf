"""The settings of a matcher process, resolved from the environment in one place.

Every environment variable the package reads is named here and read by :meth:`Settings.from_env`,
nowhere else. The entry points (``create_app``, the CLI's commands) resolve the settings when they
start; library functions whose argument was left out (``persist.models_dir()``,
``library.data_dir()``, ``db.database_url()``…) resolve them when called, so a variable set before
the call (an operator's shell, a test's ``monkeypatch.setenv``) is the one used.

==============================  =============================================================
``MATCHER_MODELS_DIR``          the model folder (default ``models``)
``MATCHER_DATA_DIR``            the embedded libraries that fill an empty database (``data``)
``DATABASE_URL``                the database (default the SQLite file :data:`DEFAULT_SQLITE`)
``MATCHER_API_KEYS``            ``name:role:sha256`` entries (:func:`matcher.roles.parse_env_keys`)
``MATCHER_SIGNING_KEY``         the key model versions are signed with (:mod:`matcher.matching.persist`)
``MATCHER_SEGMENTER``           ``jieba`` forces jieba over jieba-rs (:mod:`matcher.text.segment`)
``DASK_SCHEDULER_ADDRESS``      the Dask scheduler of ``--engine dask`` (:mod:`matcher.jobs.executors`)
``MATCHER_WORKER_THREADS``      BLAS/OpenMP threads per server worker (default 1; :mod:`matcher.web.server`)
``PROMETHEUS_MULTIPROC_DIR``    the metrics of every server worker (set by :mod:`matcher.web.server`)
other ``MATCHER_*``             options of the web app (``MATCHER_SESSION_COOKIE_SECURE=true``…), parsed
                                as JSON where they are JSON, as Flask's ``from_prefixed_env`` does
==============================  =============================================================
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "API_KEYS_ENV",
    "DASK_SCHEDULER_ENV",
    "DATABASE_URL_ENV",
    "DATA_DIR_ENV",
    "DEFAULT_SQLITE",
    "METRICS_DIR_ENV",
    "MODELS_DIR_ENV",
    "SEGMENTER_ENV",
    "SIGNING_KEY_ENV",
    "WORKER_THREADS_ENV",
    "Settings",
]

MODELS_DIR_ENV = "MATCHER_MODELS_DIR"
DATA_DIR_ENV = "MATCHER_DATA_DIR"
DATABASE_URL_ENV = "DATABASE_URL"
API_KEYS_ENV = "MATCHER_API_KEYS"
SIGNING_KEY_ENV = "MATCHER_SIGNING_KEY"
SEGMENTER_ENV = "MATCHER_SEGMENTER"
DASK_SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
WORKER_THREADS_ENV = "MATCHER_WORKER_THREADS"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The embedded database when ``DATABASE_URL`` is unset (relative to the working directory).
DEFAULT_SQLITE = "instance/matcher.sqlite3"

_PREFIX = "MATCHER_"
#: The ``MATCHER_*`` variables that are settings of their own, not web options.
_NAMED = frozenset({MODELS_DIR_ENV, DATA_DIR_ENV, API_KEYS_ENV, SIGNING_KEY_ENV, SEGMENTER_ENV, WORKER_THREADS_ENV})


def _database_url(given: str | None) -> str:
    """``given``, with the bare ``postgres://`` forms sent to psycopg 3; else the embedded SQLite file."""
    if not given:
        return f"sqlite:///{DEFAULT_SQLITE}"
    for prefix in ("postgres://", "postgresql://"):
        if given.startswith(prefix):
            return "postgresql+psycopg://" + given[len(prefix) :]
    return given


def _threads(given: str | None) -> int:
    """``MATCHER_WORKER_THREADS``: a whole number of 1 or more (default 1); anything else is named."""
    if not given or not given.strip():
        return 1
    try:
        value = int(given)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{WORKER_THREADS_ENV} must be a whole number of 1 or more, got {given[:40]!r}")
    return value


def _web_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """The other ``MATCHER_*`` variables as config keys (prefix removed, ``A__B`` nested), JSON-parsed where JSON."""
    options: dict[str, Any] = {}
    for name in sorted(environ):
        if not name.startswith(_PREFIX) or name in _NAMED:
            continue
        value: Any = environ[name]
        with contextlib.suppress(ValueError):
            value = json.loads(value)
        *parents, tail = name.removeprefix(_PREFIX).split("__")
        target = options
        for parent in parents:
            target = target.setdefault(parent, {})
        target[tail] = value
    return options


@dataclass(frozen=True)
class Settings:
    """What a process runs with; :meth:`from_env` reads it from the environment.

    Attributes
    ----------
    models_dir : the model folder.
    data_dir : the embedded sample libraries.
    database_url : a SQLAlchemy URL (``postgres://`` forms already turned into ``postgresql+psycopg://``).
    api_keys : the raw ``MATCHER_API_KEYS`` (parsed and checked by :func:`matcher.roles.parse_env_keys`).
    signing_key : the model signing key, or None.
    segmenter : ``"jieba"`` to force jieba, else ``""`` (the fastest installed segmenter).
    dask_scheduler : the Dask scheduler address, or None (a local cluster).
    worker_threads : BLAS/OpenMP threads per server worker.
    metrics_dir : the Prometheus multiprocess directory, or None (one process).
    web : the other ``MATCHER_*`` variables, as Flask config keys.
    """

    models_dir: Path = Path("models")
    data_dir: Path = Path("data")
    database_url: str = f"sqlite:///{DEFAULT_SQLITE}"
    api_keys: str | None = None
    signing_key: str | None = None
    segmenter: str = ""
    dask_scheduler: str | None = None
    worker_threads: int = 1
    metrics_dir: Path | None = None
    web: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in ``environ`` (default ``os.environ``, read now); empty variables count as unset."""
        env = os.environ if environ is None else environ
        metrics = env.get(METRICS_DIR_ENV)
        return cls(
            models_dir=Path(env.get(MODELS_DIR_ENV) or "models"),
            data_dir=Path(env.get(DATA_DIR_ENV) or "data"),
            database_url=_database_url(env.get(DATABASE_URL_ENV)),
            api_keys=env.get(API_KEYS_ENV),
            signing_key=env.get(SIGNING_KEY_ENV),
            segmenter=env.get(SEGMENTER_ENV, "").strip().lower(),
            dask_scheduler=env.get(DASK_SCHEDULER_ENV) or None,
            worker_threads=_threads(env.get(WORKER_THREADS_ENV)),
            metrics_dir=Path(metrics) if metrics else None,
            web=_web_options(env),
        )
