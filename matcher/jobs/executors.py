"""Where the chunks of a batch job run: in this process, in local worker processes, or on a Dask cluster.

An engine maps one function over numbered work items, handing every call the same large shared
object (the fitted model) that is sent to each worker once, not once per item. Results come back
as they finish, numbered, so the caller can store them in any order and assemble them in item order:
the output does not depend on the engine or on the number of workers.

* :class:`LocalEngine` ``workers=1``: in this process, one item after another (the default);
* :class:`LocalEngine` ``workers=N``: N worker processes on this machine (forked, so the model is
  shared copy-on-write rather than copied);
* :class:`DaskEngine`: the workers of a Dask distributed cluster (``dask[distributed]``); the model is
  scattered to every worker once, items go as tasks, at most ``2 × workers`` in flight.

At most a few items are in flight at a time, so memory stays bounded by the chunk size whatever the
number of items.

Why not ``joblib.Parallel`` (checked against joblib 1.6): none of its backends gives all of this at once.

* Its only fork-based backend (``multiprocessing``) cannot return results as they finish
  (``supports_return_generator = False``: the whole list at the end), so finished chunks could not
  be stored one by one for ``--resume``, nor memory stay bounded by the chunk; and it pickles the
  arguments of every task, so the model would be copied to the workers once per chunk.
* The default backend (``loky``) starts workers by spawning, not forking: the model would be
  pickled into every worker instead of shared copy-on-write (with ``gc.freeze`` keeping its pages
  shared), its workers outlive the run in a reusable pool, and ``Parallel`` offers no worker
  initializer for ``PR_SET_PDEATHSIG`` (workers that end when the parent is killed) or the one BLAS
  thread per worker.
* Its ``dask`` backend could stand in for :class:`DaskEngine`, but a second executor would still be
  needed for the local workers, so the two engines stay here, behind one interface.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

from threadpoolctl import threadpool_limits

from matcher.config import Settings
from matcher.errors import MatcherError

logger = logging.getLogger(__name__)

__all__ = ["ENGINES", "DaskEngine", "Engine", "EngineError", "LocalEngine", "make_engine"]

ENGINES = ("local", "dask")

Task = Callable[[Any, Any], Any]  # task(shared, item) -> result


class EngineError(MatcherError, ValueError):
    """An engine cannot start: a bad option, a missing package, an unreachable scheduler."""


class Engine(Protocol):
    """Runs ``task(shared, item)`` for every ``(number, item)``; yields ``(number, result)`` as they finish."""

    def run(self, task: Task, shared: Any, items: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]: ...

    def describe(self) -> dict[str, Any]: ...


# ------------------------------------------------------------------------------ local

_SHARED: Any = None  # the shared object inside a local worker process


def _die_with(parent: int) -> None:
    """End this worker when ``parent`` dies, even by SIGKILL (Linux: ``PR_SET_PDEATHSIG``)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the call
        os._exit(1)


def _init_worker(shared: Any, parent: int | None = None) -> None:
    global _SHARED
    _SHARED = shared
    if parent is not None:
        _die_with(parent)
    threadpool_limits(1)  # one BLAS thread per worker process: the workers already share the cores


def _call_in_worker(task: Task, item: Any) -> Any:
    return task(_SHARED, item)


class LocalEngine:
    """Items in this process (``workers=1``) or in ``workers`` local processes.

    Parameters
    ----------
    workers : int
        Processes to use; 1 runs everything in the calling process.
    """

    def __init__(self, workers: int = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise EngineError(f"workers must be a whole number of 1 or more, got {workers!r}")
        self.workers = workers

    def describe(self) -> dict[str, Any]:
        return {"engine": "local", "workers": self.workers}

    def run(self, task: Task, shared: Any, items: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        if self.workers == 1:
            for number, item in items:
                yield number, task(shared, item)
            return
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=_init_worker, initargs=(shared, os.getpid())
        ) as pool:
            yield from _bounded(lambda item: pool.submit(_call_in_worker, task, item), items, 2 * self.workers)


def _bounded(
    submit: Callable[[Any], Future], items: Iterable[tuple[int, Any]], limit: int
) -> Iterator[tuple[int, Any]]:
    """Keep at most ``limit`` futures in flight; yield ``(number, result)`` in completion order."""
    pending: dict[Future, int] = {}
    source = iter(items)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < limit:
                try:
                    number, item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pending[submit(item)] = number
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=pending.__getitem__):
                yield pending.pop(future), future.result()
    finally:
        for future in pending:
            future.cancel()


# ------------------------------------------------------------------------------- dask


class DaskEngine:
    """Items as tasks on the Dask distributed cluster whose scheduler is at ``scheduler``.

    Parameters
    ----------
    scheduler : str
        The scheduler's address, e.g. ``tcp://10.0.0.5:8786`` (or a ``distributed.Client`` for tests).
    timeout : float
        Seconds to wait for the scheduler.

    The workers must have the same version of ``matcher`` installed (they import the task function).
    """

    def __init__(self, scheduler: Any, timeout: float = 30.0) -> None:
        if not scheduler:
            raise EngineError("--engine dask needs --scheduler ADDRESS (the Dask scheduler, e.g. tcp://host:8786)")
        self.scheduler = scheduler
        self.timeout = timeout
        self.workers = 0

    def describe(self) -> dict[str, Any]:
        address = self.scheduler if isinstance(self.scheduler, str) else getattr(self.scheduler, "scheduler", None)
        return {"engine": "dask", "scheduler": str(getattr(address, "address", address)), "workers": self.workers}

    def _client(self) -> tuple[Any, bool]:
        try:
            from distributed import Client
        except ImportError as error:
            raise EngineError(
                "--engine dask needs the dask[distributed] package: pip install 'dask[distributed]'"
            ) from error
        if isinstance(self.scheduler, Client):
            return self.scheduler, False
        try:
            return Client(self.scheduler, timeout=self.timeout, set_as_default=False), True
        except (OSError, TimeoutError, ValueError) as error:
            raise EngineError(f"cannot reach the Dask scheduler at {self.scheduler}: {error}") from error

    def run(self, task: Task, shared: Any, items: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        client, owned = self._client()
        try:
            self.workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
            logger.info("Dask cluster at %s: %d workers", client.scheduler.address, self.workers)
            remote = client.scatter(shared, broadcast=True, hash=False)
            submit = lambda item: client.submit(task, remote, item, pure=False)  # noqa: E731
            yield from _bounded_dask(client, submit, items, 2 * self.workers)
        finally:
            if owned:
                client.close()


def _bounded_dask(
    client: Any, submit: Callable[[Any], Any], items: Iterable[tuple[int, Any]], limit: int
) -> Iterator[tuple[int, Any]]:
    from distributed import as_completed

    source = iter(items)
    numbers: dict[str, int] = {}
    first = []
    for number, item in source:
        future = submit(item)
        numbers[future.key] = number
        first.append(future)
        if len(first) >= limit:
            break
    if not first:
        return
    window = as_completed(first, loop=client.loop)
    try:
        for future in window:
            number = numbers.pop(future.key)
            result = future.result()
            future.release()
            following = next(source, None)
            if following is not None:
                added = submit(following[1])
                numbers[added.key] = following[0]
                window.add(added)
            yield number, result
    finally:
        window.clear()


def make_engine(name: str = "local", *, workers: int = 1, scheduler: Any = None) -> Engine:
    """The engine called ``name`` (``local`` or ``dask``).

    Raises
    ------
    EngineError
        An unknown engine, a scheduler given to the local engine, or a dask engine without one.
    """
    if name == "local":
        if scheduler:
            raise EngineError("--scheduler goes with --engine dask")
        return LocalEngine(workers)
    if name == "dask":
        return DaskEngine(scheduler or Settings.from_env().dask_scheduler)
    raise EngineError(f"unknown engine {name!r}; use one of {', '.join(ENGINES)}")
