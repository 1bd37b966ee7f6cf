"""Run the WSGI application under gunicorn (``matcher serve``).

* ``workers`` sync worker processes, each with its own copy of the model; each follows
  ``models/ACTIVE`` per request, so an activation reaches every worker without a restart. Each
  worker runs its numerical libraries on one thread (``MATCHER_WORKER_THREADS``).
* Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary directory unless
  the operator set one) is emptied at start, each worker writes its samples there, a worker's
  files are marked dead when it exits, and ``/metrics`` sums them.
* Request lines up to 8190 bytes (gunicorn's maximum; its default 4094 would refuse the documented
  500-character ``q`` with an HTML 414): the app refuses query strings over its own limit as
  problem+json 414 (:data:`matcher.web.payload.MAX_QUERY_STRING`).
* Logs: gunicorn's own lines and the app's are JSON (:class:`matcher.web.monitoring.JsonFormatter`);
  the app writes the access lines (with request ids), so gunicorn's access log is off.
* A worker that exits closes its app (:func:`matcher.web.close_app`: its database connections).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from threadpoolctl import threadpool_limits

from matcher.config import METRICS_DIR_ENV, Settings
from matcher.web import close_app, create_app
from matcher.web.monitoring import JsonFormatter

__all__ = ["run"]


class _JsonLogger(glogging.Logger):
    """gunicorn's logger with JSON lines on stderr."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())


def _post_fork(server: Any, worker: Any) -> None:
    """One BLAS/OpenMP thread per worker (``$MATCHER_WORKER_THREADS``, default 1).

    numpy's OpenBLAS and scikit-learn's OpenMP start one thread per core in every process; with a
    worker per core, those threads would compete for the cores with the other workers'. The workers
    are the parallelism.
    """
    threadpool_limits(limits=Settings.from_env().worker_threads)


def _worker_exit(server: Any, worker: Any) -> None:
    """Release what the worker's app holds (its database connections)."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        close_app(app)


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess  # here: after PROMETHEUS_MULTIPROC_DIR is set (see monitoring)

    multiprocess.mark_process_dead(worker.pid)


class _Server(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return create_app()


def _metrics_dir() -> tuple[Path, bool]:
    """The multiprocess metrics directory, emptied; and whether this run made it (and removes it)."""
    given = Settings.from_env().metrics_dir
    if given:
        path = given
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return path, False
    path = Path(tempfile.mkdtemp(prefix="matcher-metrics-"))
    os.environ[METRICS_DIR_ENV] = str(path)  # read by the workers' apps and prometheus_client
    return path, True


def run(*, host: str = "127.0.0.1", port: int = 8000, workers: int = 2, timeout: int = 60) -> None:
    """Serve ``create_app()`` on ``host:port`` with ``workers`` gunicorn workers until stopped."""
    metrics, made = _metrics_dir()  # before any worker imports prometheus_client
    try:
        _Server(
            {
                "bind": f"{host}:{port}",
                "workers": workers,
                "timeout": timeout,
                "graceful_timeout": 30,
                "limit_request_line": 8190,  # gunicorn's longest: a 500-character q (4.5 KB encoded) reaches the app
                "accesslog": None,
                "logger_class": _JsonLogger,
                "post_fork": _post_fork,
                "child_exit": _child_exit,
                "worker_exit": _worker_exit,
            }
        ).run()
    finally:
        if made:
            shutil.rmtree(metrics, ignore_errors=True)
