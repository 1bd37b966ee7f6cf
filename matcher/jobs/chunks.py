"""The chunked scoring loop: needs scored a chunk at a time on an engine, with a progress bar and resume.

Both jobs that score whole libraries (``matcher batch`` and the candidates of ``matcher assign``)
run the same loop (:func:`score_chunks`): the needs cut into chunks whose dense score matrices stay
near :data:`CELLS_PER_CHUNK` cells (:func:`chunk_step`, :func:`chunk_bounds`), each chunk a call of a task on an engine
(:mod:`matcher.jobs.executors`), results yielded as they finish, numbered, so the output does not
depend on the engine or the number of workers. Before forking local workers, what every worker
would build for itself is built once and frozen out of the garbage collector (:func:`prepare_fork`).

The score table of ``matcher batch`` (:func:`score_to_file`) keeps each finished chunk in
``OUT.parts/`` (:class:`PartStore`) with ``state.json``, what the run was made of; ``--resume``
keeps the chunks of an interrupted run with the same inputs, and refuses, naming what changed,
when they differ. The output is assembled in chunk order and appears by one rename.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from matcher.errors import BatchError
from matcher.jobs.executors import Engine, EngineError, LocalEngine, Task, make_engine
from matcher.jobs.output import PARQUET_SCHEMA, arrow_scores, write_json, writing
from matcher.matching.estimator import Matcher
from matcher.text.processes import usable_cores
from matcher.text.segment import segmenter

logger = logging.getLogger(__name__)

__all__ = [
    "CELLS_PER_CHUNK",
    "CHUNK_SIZE",
    "ChunkOptions",
    "Outcome",
    "PartStore",
    "chunk_bounds",
    "chunk_step",
    "parts_dir",
    "prepare_fork",
    "score_chunk",
    "score_chunks",
    "score_to_file",
]

#: Needs scored at a time, at most; fewer on large libraries so that one chunk's dense score
#: matrices stay near ``CELLS_PER_CHUNK`` cells.
CHUNK_SIZE = 500
CELLS_PER_CHUNK = 2_000_000


@dataclass(frozen=True)
class ChunkOptions:
    """How the chunks of a score table are run.

    Attributes
    ----------
    chunk_size : int
        Needs scored at a time, at most.
    progress : bool or None
        Show a progress bar on stderr; None: when stderr is a terminal.
    resume : bool
        Reuse the chunks an interrupted run with the same inputs left in ``OUT.parts/``.
    engine, workers, scheduler
        Where the chunks run (see :func:`matcher.jobs.executors.make_engine`): ``local`` with
        ``workers`` processes (None: one per usable core), or ``dask`` on the cluster whose
        scheduler is at ``scheduler``.
    """

    chunk_size: int = CHUNK_SIZE
    progress: bool | None = None
    resume: bool = False
    engine: str = "local"
    workers: int | None = None
    scheduler: Any = None

    def make_engine(self) -> Engine:
        """The engine named by ``engine``; the local one with ``workers`` processes (None: one per usable core).

        Raises
        ------
        BatchError
            An unknown engine, bad workers, or a scheduler given to the local engine.
        """
        workers = usable_cores() if self.workers is None else self.workers
        try:
            return make_engine(self.engine, workers=workers, scheduler=self.scheduler)
        except EngineError as error:
            raise BatchError(str(error)) from error


def chunk_step(largest: int, chunk_size: int = CHUNK_SIZE) -> int:
    """Needs per chunk against at most ``largest`` targets of a type: at most ``chunk_size``, fewer so that
    a chunk's dense score matrices stay near :data:`CELLS_PER_CHUNK` cells (memory grows with the chunk,
    not with the number of needs)."""
    return max(1, min(chunk_size, CELLS_PER_CHUNK // largest))


def chunk_bounds(needs: int, step: int) -> list[tuple[int, int]]:
    """Row ranges ``(start, stop)`` of the chunks of ``needs`` needs, ``step`` at a time."""
    return [(start, min(start + step, needs)) for start in range(0, needs, step)]


def score_chunks(
    task: Task,
    model: Matcher,
    needs: pd.DataFrame,
    bounds: list[tuple[int, int]],
    args: tuple[Any, ...],
    *,
    engine: Engine,
    done: set[int] | frozenset[int] = frozenset(),
    progress: bool | None = None,
    desc: str = "matching",
) -> Iterator[tuple[int, Any]]:
    """``task(model, (needs[chunk], *args))`` for every chunk of ``bounds`` not in ``done``, on ``engine``.

    Yields ``(chunk number, result)`` as the chunks finish (in any order), after advancing the progress
    bar (``progress`` None: shown when stderr is a terminal). Local workers are forked only for more
    than one chunk, after :func:`prepare_fork`; close the generator (or exhaust it) to stop the workers.
    """
    pending = ((n, (needs.iloc[a:b], *args)) for n, (a, b) in enumerate(bounds) if n not in done)
    frozen = False
    if isinstance(engine, LocalEngine) and engine.workers > 1:
        if len(bounds) - len(done) <= 1:  # one chunk: no process to start (the same rows)
            engine = LocalEngine(1)
        else:
            frozen = prepare_fork(model)
    show = sys.stderr.isatty() if progress is None else progress
    try:
        with tqdm(
            total=len(needs),
            initial=sum(b - a for n, (a, b) in enumerate(bounds) if n in done),
            desc=desc,
            unit="need",
            file=sys.stderr,
            disable=not show,
        ) as bar:
            results = engine.run(task, model, pending)
            try:
                for number, result in results:
                    bar.update(bounds[number][1] - bounds[number][0])
                    yield number, result
            finally:
                close: Callable[[], None] | None = getattr(results, "close", None)
                if close is not None:
                    close()
    finally:
        if frozen:
            gc.unfreeze()


# ------------------------------------------------------------------------ the score table


@dataclass
class Outcome:
    """What :func:`score_to_file` did: rows written, needs with a row, chunks (resumed), seconds."""

    rows: int
    matched: int
    chunks: int
    resumed: int
    chunk_size: int
    match_seconds: float
    write_seconds: float


def score_chunk(model: Matcher, task: tuple[pd.DataFrame, int]) -> pa.Table:
    """Score one chunk of needs (:meth:`Matcher.match_columns`): its rows as an Arrow table."""
    needs, k = task
    return arrow_scores(model.match_columns(needs, k=k, chunk_size=max(1, len(needs))))


def parts_dir(out: Path) -> Path:
    """The folder of finished chunks kept beside ``out`` until the output is complete: ``OUT.parts/``."""
    return out.with_name(out.name + ".parts")


def score_to_file(
    model: Matcher,
    needs: pd.DataFrame,
    out: Path,
    *,
    k: int,
    options: ChunkOptions,
    engine: Engine,
    identity: dict[str, Any],
    before_commit: Callable[[], None] | None = None,
) -> Outcome:
    """Score ``needs`` chunk by chunk into ``OUT.parts/``, then assemble ``out`` from the parts in order.

    Each finished chunk is a Parquet file in ``OUT.parts/`` (with ``state.json``: ``identity``, ``k``,
    the chunks and digests of the needs and targets); with ``options.resume`` the chunks already
    there are kept when the state matches and refused with the reason when it does not. The output
    appears by one rename when complete (after ``before_commit``); the parts are removed then.

    Raises
    ------
    BatchError
        A resume with other inputs, a chunk folder that cannot be created, an engine that fails.
    """
    step = chunk_step(max(model.n_targets_.values()), options.chunk_size)
    bounds = chunk_bounds(len(needs), step)
    state = {
        **identity,
        "k": k,
        "chunk_size": step,
        "chunks": len(bounds),
        "needs": len(needs),
        "needs_sha256": needs_digest(needs),
        "targets_sha256": targets_digest(model),
    }
    store = PartStore(parts_dir(out), state, resume=options.resume)
    done = store.done()
    started = time.perf_counter()
    finished = len(done)
    try:
        chunks = score_chunks(
            score_chunk, model, needs, bounds, (k,), engine=engine, done=done, progress=options.progress
        )
        for number, table in chunks:
            store.put(number, table)
            finished += 1
    except EngineError as error:
        raise BatchError(str(error)) from error
    except BaseException:
        if finished > len(done):
            logger.warning(
                "kept %d of %d finished chunks in %s: run again with --resume to continue",
                finished,
                len(bounds),
                store.folder,
            )
        raise
    matched = time.perf_counter()
    need_ids: set[str] = set()
    with writing(out) as writer:
        for number in range(len(bounds)):
            table = store.get(number)
            writer.write_table(table)
            need_ids.update(table.column("need_id").unique().to_pylist())
        if before_commit is not None:
            before_commit()
    store.remove()
    return Outcome(
        rows=writer.rows,
        matched=len(need_ids),
        chunks=len(bounds),
        resumed=len(done),
        chunk_size=step,
        match_seconds=matched - started,
        write_seconds=time.perf_counter() - matched,
    )


def prepare_fork(model: Matcher) -> bool:
    """Build what every scoring process would otherwise build for itself, so the forks share it.

    The segmenter, the character vocabulary's n-gram codes and each type's dense copy of the common
    terms (:meth:`matcher.matching.index.TypeIndex.dense_common`): built once here, shared copy-on-write by the workers.
    Then the heap the fit freed goes back to the system (glibc ``malloc_trim``), and the objects alive
    now are frozen out of the garbage collector (``gc.freeze``): a collection in a worker would
    otherwise write to every object's header and copy the model's pages into each worker. Returns
    True (the caller unfreezes them when the workers are done).
    """
    segmenter()
    vectorizer = model.vectorizer_
    if hasattr(vectorizer, "prepare_transform"):
        vectorizer.prepare_transform()
    for index in model.index_.values():
        index.dense_common()
    gc.collect()
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL(None).malloc_trim(0)
    gc.freeze()
    return True


class PartStore:
    """``OUT.parts/``: ``state.json`` and one Parquet file per finished chunk (``00012.parquet``)."""

    STATE = "state.json"

    def __init__(self, folder: Path, state: dict[str, Any], *, resume: bool) -> None:
        self.folder = folder
        self.state = state
        self._resumed = False
        saved = self._saved_state()
        if saved is not None and resume:
            different = [key for key in state if saved.get(key) != state[key]]
            if different:
                raise BatchError(_resume_refusal(folder, different, saved, state))
            self._resumed = True
            return
        if resume:
            logger.info("%s: no interrupted run to resume; starting from the first chunk", folder)
        elif folder.exists():
            logger.warning("%s: discarding the chunks of an earlier run (use --resume to continue it)", folder)
        if folder.exists():
            shutil.rmtree(folder)
        try:
            folder.mkdir()
        except OSError as error:
            raise BatchError(f"{folder}: cannot create the chunk folder: {error.strerror or error}") from error
        write_json(folder / self.STATE, state)

    def _saved_state(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / self.STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _path(self, number: int) -> Path:
        return self.folder / f"{number:05d}.parquet"

    def done(self) -> set[int]:
        """Numbers of the chunks already finished (only when resuming)."""
        if not self._resumed:
            return set()
        numbers = set()
        for path in self.folder.glob("*.parquet"):
            if path.stem.isdigit() and int(path.stem) < self.state["chunks"]:
                numbers.add(int(path.stem))
        if numbers:
            logger.info("resuming: %d of %d chunks already done", len(numbers), self.state["chunks"])
        return numbers

    def put(self, number: int, table: pa.Table) -> None:
        path = self._path(number)
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp, compression="zstd", compression_level=1)
        os.replace(tmp, path)

    def get(self, number: int) -> pa.Table:
        table = pq.read_table(self._path(number))
        return pa.Table.from_arrays([c.combine_chunks() for c in table.columns], schema=PARQUET_SCHEMA)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _resume_refusal(folder: Path, keys: list[str], saved: dict[str, Any], state: dict[str, Any]) -> str:
    described = {
        "mode": "source (files or database)",
        "model_version": "model version",
        "params": "parameters",
        "fit_sample": "fit sample",
        "k": "k",
        "chunk_size": "chunk size",
        "chunks": "number of chunks",
        "needs": "number of needs",
        "needs_sha256": "needs",
        "targets_sha256": "targets (texts, capacity, load or availability)",
    }
    changes = []
    for key in keys:
        if key.endswith("_sha256"):
            changes.append(f"different {described.get(key, key)}")
        else:
            changes.append(f"{described.get(key, key)} {saved.get(key)!r} then, {state[key]!r} now")
    return (
        f"cannot resume: {folder} holds the chunks of a run with other inputs ({'; '.join(changes)}); "
        "run without --resume to start over"
    )


def needs_digest(needs: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    columns = [c for c in ("id", "text", "tags", "counties", "org_id") if c in needs.columns]
    for row in needs.loc[:, columns].itertuples(index=False):
        values = [list(v) if isinstance(v, list | tuple | np.ndarray) else v for v in row]
        digest.update(json.dumps(values, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
    return digest.hexdigest()


def targets_digest(model: Matcher) -> str:
    digest = hashlib.sha256()
    for target_type in model.target_types_:
        frame = model.targets(target_type)
        digest.update(target_type.encode() + b"\0")
        for target_id, fingerprint in zip(frame["id"], frame["fingerprint"], strict=True):
            digest.update(f"{target_id}\t{fingerprint}\n".encode())
    return digest.hexdigest()
