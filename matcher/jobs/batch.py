"""``matcher batch``: fit on user-supplied target files, score every need of a file, write the score table.

The run never reads or changes ``models/``: the matcher is fitted in memory on the given files
(default parameters, or those given) and every need is scored by :meth:`Matcher.match`, the same
scoring as the HTTP path (:meth:`Matcher.recommend`). The output is written to a temporary file in
the output's folder and moved into place only when everything succeeded, so a failed run leaves no
output behind and an earlier output untouched.

Output: CSV (UTF-8 with BOM, ``\\n`` line ends, scores with 6 decimals) or Parquet (fixed schema) with
columns ``need_id, target_type, target_id, rank, score``; the same inputs give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import math
import operator
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from matcher.documents.writer import CsvRows
from matcher.errors import MatcherError
from matcher.inputs.files import Table, TableError, read_table, write_rejects
from matcher.inputs.library import TARGET_COLUMNS, TARGET_TYPES, data_dir, load_taxonomy
from matcher.jobs.executors import Engine, EngineError, LocalEngine, make_engine
from matcher.matching.estimator import MATCH_COLUMNS, Matcher, build_matcher
from matcher.text.privacy import index_text
from matcher.text.redact import redact
from matcher.text.segment import parallelism, segmenter, usable_cores

logger = logging.getLogger(__name__)

__all__ = [
    "PARQUET_SCHEMA",
    "BatchError",
    "BatchReport",
    "CheckReport",
    "FileCheck",
    "check_inputs",
    "fit_matcher",
    "manifest_path",
    "match_to_file",
    "needs_frame",
    "parts_dir",
    "read_inputs",
    "run_batch",
    "run_batch_db",
    "run_batch_model",
    "score_table",
    "targets_frame",
    "write_matches",
]

#: The Parquet schema of the score table.
PARQUET_SCHEMA = pa.schema(
    [
        pa.field("need_id", pa.string(), nullable=False),
        pa.field("target_type", pa.string(), nullable=False),
        pa.field("target_id", pa.string(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
    ]
)
#: Needs scored at a time, at most; fewer on large libraries so that one chunk's dense score
#: matrices stay near ``_CELLS_PER_CHUNK`` cells.
CHUNK_SIZE = 500
_CELLS_PER_CHUNK = 2_000_000
#: Targets added to the index at a time after a sampled fit (``fit_sample``).
FIT_CHUNK = 50_000
#: The test-only hook: seconds to sleep after each finished chunk (a test kills the run there).
PAUSE_ENV = "MATCHER_TEST_BATCH_PAUSE"
_ROLES = {"expert": "experts", "resource": "resources", "project": "projects"}


class BatchError(MatcherError, ValueError):
    """A batch run cannot start or finish: bad arguments, parameters or output path."""


@dataclass
class BatchReport:
    """What a batch run did.

    Attributes
    ----------
    out : Path
        The score table written.
    needs : int
        Needs scored.
    targets : dict of str to int
        Targets fitted, per target type.
    rows : int
        Rows written.
    unmatched : int
        Needs with no eligible target of any type.
    rejected : int
        Invalid input rows skipped (only with ``skip_invalid``).
    rejects : Path or None
        Where the rejected rows were written.
    resumed, chunks : int
        Chunks reused from an interrupted run, and chunks in all.
    model_version : str or None
        The model version (database mode; None when fitted on files).
    manifest : Path or None
        The run manifest (database mode).
    """

    out: Path
    needs: int
    targets: dict[str, int]
    rows: int
    unmatched: int = 0
    rejected: int = 0
    rejects: Path | None = None
    resumed: int = 0
    chunks: int = 0
    model_version: str | None = None
    manifest: Path | None = None

    def summary(self) -> str:
        """One line for the terminal."""
        targets = ", ".join(f"{n} {_ROLES[t] if n != 1 else t}" for t, n in self.targets.items())
        needs = _count(self.needs, "open need" if self.model_version else "need")
        model = f" with model version {self.model_version}" if self.model_version else ""
        line = f"wrote {_count(self.rows, 'row')} for {needs} ({targets}){model} to {self.out}"
        if self.resumed:
            line += f" (resumed: {self.resumed} of {_count(self.chunks, 'chunk')} reused)"
        if self.unmatched:
            line += f"; {_count(self.unmatched, 'need')} without any match"
        if self.rejects is not None:
            line += f"; {_count(self.rejected, 'invalid row')} skipped, listed in {self.rejects}"
        if self.manifest is not None:
            line += f"; manifest {self.manifest}"
        return line


@dataclass
class FileCheck:
    """The result of validating one input file.

    Attributes
    ----------
    role : str
        ``needs``, ``experts``, ``resources`` or ``projects``.
    path : str
        The path as given.
    valid, invalid : int or None
        Valid and invalid rows; None when the file cannot be read at all.
    problems : list of str
        One line per problem, naming the file, row and column.
    ignored_columns : list of str
        Columns that are not part of the contract (or not used for this role).
    """

    role: str
    path: str
    valid: int | None
    invalid: int | None
    problems: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every row is valid."""
        return not self.problems


@dataclass
class CheckReport:
    """The result of :func:`check_inputs`: one :class:`FileCheck` per file and other problems."""

    files: list[FileCheck]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every input is valid."""
        return not self.problems and all(f.ok for f in self.files)

    def lines(self) -> list[str]:
        """The report as printed by ``matcher batch --check``."""
        lines = []
        for check in self.files:
            if check.valid is None:
                lines.append(f"{check.role}: {check.path}: cannot be used")
            else:
                lines.append(
                    f"{check.role}: {check.path}: {_count(check.valid, 'valid row')}, "
                    f"{_count(check.invalid or 0, 'invalid row')}"
                )
            lines.extend(f"  {problem}" for problem in check.problems)
            if check.ignored_columns:
                lines.append(f"  ignored columns: {', '.join(check.ignored_columns)}")
        lines.extend(self.problems)
        bad = sum(not f.ok for f in self.files)
        if self.ok:
            lines.append(f"all {len(self.files)} files are valid")
        elif bad:
            lines.append(f"{bad} of {len(self.files)} files have problems")
        return lines


# ------------------------------------------------------------------------------ inputs


def read_inputs(
    needs: str | os.PathLike[str], targets: Mapping[str, str | os.PathLike[str]], *, skip_invalid: bool = False
) -> tuple[Table, dict[str, Table]]:
    """Read and validate the needs file and the target files (in canonical type order).

    Raises
    ------
    TableError
        The first file that cannot be used, with its problems.
    """
    _check_types(targets)
    need_table = read_table(needs, skip_invalid=skip_invalid)
    tables = {t: read_table(targets[t], skip_invalid=skip_invalid) for t in TARGET_TYPES if t in targets}
    return need_table, tables


def needs_frame(table: Table) -> pd.DataFrame:
    """The needs of a table as the model's needs frame: ``id, text, tags, counties, org_id``.

    A need without tags (no ``tags`` column, or an empty cell) gets None: the model infers its tags,
    as ``POST /v1/match`` does for free text sent without ``tags``.
    """
    frame = table.frame
    return pd.DataFrame(
        {
            "id": frame["id"].astype(object),
            "text": frame["text"].map(index_text).astype(object),  # personal data never matched on
            "tags": pd.Series([list(t) if len(t) else None for t in frame["tags"]], dtype=object),
            "counties": frame["counties"],
            "org_id": frame["org_id"],
            "org_name": frame["org_name"],  # the need's own organisation: never matched as a target's name
        }
    ).reset_index(drop=True)


def targets_frame(tables: Mapping[str, Table]) -> pd.DataFrame:
    """The targets of the tables (target type -> table) as one frame of ``TARGET_COLUMNS``.

    Each target has one text; a blank capacity means unlimited; ``load`` is 0. Columns absent from a
    file hold their defaults (no tags, no counties, no organisation, unlimited, available).
    """
    _check_types(tables)
    parts = []
    for target_type in TARGET_TYPES:
        if target_type not in tables:
            continue
        frame = tables[target_type].frame.reset_index(drop=True)
        parts.append(
            pd.DataFrame(
                {
                    "target_type": [target_type] * len(frame),
                    "id": frame["id"].astype(object),
                    "name": frame["name"].astype(object),
                    "texts": [[index_text(text)] for text in frame["text"]],  # personal data never indexed
                    "tags": frame["tags"],
                    "counties": frame["counties"],
                    "org_id": frame["org_id"],
                    "capacity": pd.array(frame["capacity"], dtype="Int64"),
                    "load": np.zeros(len(frame), dtype=int),
                    "available": frame["available"].astype(bool),
                }
            )
        )
    if not parts:
        raise BatchError("no target files: give at least one of experts, resources and projects")
    return pd.concat(parts, ignore_index=True).loc[:, list(TARGET_COLUMNS)]


def _check_types(targets: Mapping[str, object]) -> None:
    unknown = sorted(set(targets) - set(TARGET_TYPES))
    if unknown:
        raise BatchError(f"unknown target type {unknown[0]!r}; expected one of {TARGET_TYPES}")


# -------------------------------------------------------------------------- parameters


def _matcher(params: Mapping[str, Any] | None) -> Matcher:
    """An unfitted matcher with ``params``; errors name the parameter."""
    params = dict(params or {})
    try:
        matcher = build_matcher(params)
    except ValueError as error:
        raise BatchError(f"parameters: {error}") from error
    defaults = build_matcher().get_params(deep=True)
    for key, value in params.items():
        problem = _param_problem(defaults[key], value)
        if problem:
            raise BatchError(f"parameters: {key!r} {problem}, got {value!r}")
    return matcher


def _param_problem(default: Any, value: Any) -> str | None:
    """Why a JSON ``value`` cannot replace a parameter whose default is ``default`` (None if it can)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(default, int | float):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return None if number and math.isfinite(value) else "must be a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "must be a string"
    if isinstance(default, tuple):
        whole = isinstance(value, list | tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if whole and len(value) == len(default):
            return None
        return f"must be a list of {len(default)} whole numbers"
    if default is None:
        return None if value is None or isinstance(value, int | float | str) else "must be a number, string or null"
    return "cannot be set in a parameters file"


def fit_matcher(
    targets: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    *,
    fit_sample: int | None = None,
    workers: int | None = None,
) -> Matcher:
    """A matcher with ``params`` (flat ``get_params`` keys) fitted on a targets frame.

    The fit normalises (and, with jieba, segments) many texts in up to ``workers`` forked processes
    (None: one per usable core; 1: none); the model is the same whatever their number.

    With ``fit_sample``, a library larger than that learns its vocabulary and term weights from a
    seeded random sample of ``fit_sample`` targets; the others are then added with the fitted
    vocabulary (:meth:`Matcher.update_targets`), :data:`FIT_CHUNK` at a time. Every target is indexed
    and scored; terms seen only outside the sample are not features. Peak memory then grows with the
    sample and the chunk, not with the library.

    Raises
    ------
    BatchError
        Naming the unknown or invalid parameter, or why the matcher cannot be fitted.
    """
    matcher = _matcher(params)
    if fit_sample is not None:
        fit_sample = _positive(fit_sample, "fit_sample")
    try:
        with parallelism(workers):
            return _fit(matcher, targets, fit_sample)
    except (ValueError, TypeError) as error:
        with_params = " with these parameters" if params else ""
        raise BatchError(f"cannot fit the matcher on the target files{with_params}: {error}") from error


def _fit(matcher: Matcher, targets: pd.DataFrame, fit_sample: int | None) -> Matcher:
    if fit_sample is None or len(targets) <= fit_sample:
        return matcher.fit(targets)
    chosen = np.sort(np.random.default_rng(0).choice(len(targets), size=fit_sample, replace=False))
    rest = np.setdiff1d(np.arange(len(targets)), chosen)
    logger.info("fitting the vocabulary on %d of %d targets, then adding the others", fit_sample, len(targets))
    model = matcher.fit(targets.iloc[chosen])
    for start in range(0, len(rest), FIT_CHUNK):
        model.update_targets(targets.iloc[rest[start : start + FIT_CHUNK]])
    return model


# ------------------------------------------------------------------------------ output


class _MatchWriter:
    """Streams score rows to a temporary file beside ``path``; :meth:`commit` moves it into place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parquet = path.suffix.lower() == ".parquet"
        try:
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as error:
            raise BatchError(f"{path}: cannot write in {path.parent}: {error.strerror or error}") from error
        self.tmp = Path(name)
        self.rows = 0
        self._text: TextIO | None = None
        self._parquet: pq.ParquetWriter | None = None
        try:
            if self.parquet:
                os.close(fd)
                self._parquet = pq.ParquetWriter(
                    self.tmp,
                    PARQUET_SCHEMA,
                    compression="zstd",
                    compression_level=3,
                    use_dictionary=True,
                    write_statistics=True,
                    version="2.6",
                    data_page_version="1.0",
                )
            else:
                self._text = os.fdopen(fd, "w", encoding="utf-8-sig", newline="")
                self._csv = CsvRows(self._text, float_format=".6f")
                self._csv.writerow(MATCH_COLUMNS)
        except BaseException:
            self.discard()
            raise

    def write(self, frame: pd.DataFrame) -> None:
        """Append the rows of a score table frame."""
        self.write_table(score_table(frame))

    def write_table(self, table: pa.Table) -> None:
        """Append the rows of a score table with :data:`PARQUET_SCHEMA` (one row group per call)."""
        if self._parquet is not None:
            self._parquet.write_table(table)
        else:
            need_ids, target_types, target_ids, ranks, scores = (c.to_pylist() for c in table.columns)
            self._csv.writerows(zip(need_ids, target_types, target_ids, ranks, scores, strict=True))
        self.rows += table.num_rows

    def commit(self) -> None:
        """Close the temporary file and move it to ``path``."""
        try:
            if self._parquet is not None:
                if not self.rows:  # an empty file still carries the schema
                    self._parquet.write_table(PARQUET_SCHEMA.empty_table())
                self._parquet.close()
            else:
                assert self._text is not None
                self._text.flush()
                os.fsync(self._text.fileno())
                self._text.close()
            os.chmod(self.tmp, self.path.stat().st_mode & 0o777 if self.path.exists() else 0o644)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close and remove the temporary file."""
        for handle in (self._parquet, self._text):
            if handle is not None:
                try:
                    handle.close()
                except Exception:  # already failing; the temporary file goes anyway
                    logger.debug("closing %s failed", self.tmp, exc_info=True)
        self.tmp.unlink(missing_ok=True)


def score_table(frame: pd.DataFrame) -> pa.Table:
    """A score table frame (``need_id, target_type, target_id, rank, score``) as Arrow, :data:`PARQUET_SCHEMA`."""
    missing = [c for c in MATCH_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"the score table lacks the columns {missing}")
    return _arrow({c: frame[c].to_numpy() for c in MATCH_COLUMNS})


def _arrow(columns: Mapping[str, np.ndarray]) -> pa.Table:
    """Score table columns (arrays named as :data:`MATCH_COLUMNS`) as Arrow, :data:`PARQUET_SCHEMA`."""
    arrays = []
    for name in ("need_id", "target_type", "target_id"):
        values = columns[name]
        try:
            array = pa.array(values, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all strings: as str() writes them
            array = None
        if array is None or array.null_count:
            array = pa.array([str(v) for v in values], type=pa.string())
        arrays.append(array)
    arrays.append(pa.array(np.asarray(columns["rank"], dtype=np.int64).astype(np.int32), type=pa.int32()))
    arrays.append(pa.array(np.asarray(columns["score"], dtype=np.float64) + 0.0, type=pa.float64()))  # no -0.0
    return pa.Table.from_arrays(arrays, schema=PARQUET_SCHEMA)


@contextmanager
def _writing(path: Path) -> Iterator[_MatchWriter]:
    """A :class:`_MatchWriter` committed when the block succeeds and discarded when it fails."""
    writer = _MatchWriter(path)
    try:
        yield writer
    except BaseException:
        writer.discard()
        raise
    writer.commit()


def write_matches(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a score table atomically: Parquet when ``path`` ends in ``.parquet``, else CSV.

    Parameters
    ----------
    frame : DataFrame with columns ``need_id, target_type, target_id, rank, score``
        Written in its row order.
    path : str or os.PathLike
        The output file; replaced via a temporary file in the same folder, left as it was on failure.
    """
    target = Path(os.fspath(path))
    _check_output(target)
    with _writing(target) as writer:
        writer.write(frame)


def _check_output(out: Path, inputs: list[Path] | None = None, *, what: str = "output", csv_only: bool = False) -> None:
    """Fail early when ``out`` cannot be written or would overwrite an input."""
    if out.is_dir():
        raise BatchError(f"{out}: the {what} is a folder, not a file")
    folder = out.parent
    if not folder.is_dir():
        raise BatchError(f"{out}: the {what} folder {folder} does not exist")
    resolved = out.resolve()
    for path in inputs or []:
        if path.resolve() == resolved:
            raise BatchError(f"{out}: the {what} file is also an input file")
    if not csv_only and out.suffix.lower() not in (".csv", ".parquet"):
        logger.warning("%s: writing CSV (name the file .parquet for Parquet)", out)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# -------------------------------------------------------------------------------- runs


def fit_tagger(model: Matcher, needs: pd.DataFrame) -> Matcher:
    """Fit ``model``'s tag classifier on the tagged needs of ``needs`` and the taxonomy of ``data/``.

    Only when some need has no tags (its ``tags`` are None) and some target has tags (else the tag part of
    every score is 0 whatever the need's tags). Without a taxonomy (no ``taxonomy.csv`` in
    :func:`matcher.inputs.library.data_dir`) nothing is fitted and those needs are matched without tags (logged).
    """
    if not needs["tags"].isna().any() or not model.tag_vocabulary_:  # nothing to infer, or no target has tags
        return model
    taxonomy = load_taxonomy()
    if taxonomy is None:
        logger.warning("no taxonomy.csv in %s: needs without tags are matched without tags", data_dir())
        return model
    try:
        return model.fit_tagger(needs, taxonomy)
    except ValueError as error:
        raise BatchError(f"cannot fit the tag classifier: {error}") from error


def run_batch(
    needs: str | os.PathLike[str],
    targets: Mapping[str, str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    k: int = 10,
    params: Mapping[str, Any] | None = None,
    skip_invalid: str | os.PathLike[str] | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: bool | None = None,
    resume: bool = False,
    engine: str = "local",
    workers: int | None = None,
    scheduler: Any = None,
    fit_sample: int | None = None,
) -> BatchReport:
    """Fit on the target files, score every need and write the top ``k`` per need and target type.

    Parameters
    ----------
    needs : path
        The needs file (CSV, JSONL or XLSX; see :func:`matcher.inputs.files.read_table`).
    targets : mapping of target type to path
        ``{"expert": ..., "resource": ..., "project": ...}``, at least one.
    out : path
        The score table: Parquet when it ends in ``.parquet``, else CSV.
    k : int
        Rows per need and target type, at most (fewer when fewer targets are eligible).
    params : mapping, optional
        Matcher parameters (flat ``get_params`` keys, nested with ``__``).
    skip_invalid : path, optional
        Skip invalid rows and list them in this CSV file instead of failing.
    chunk_size : int
        Needs scored at a time, at most.
    progress : bool, optional
        Show a progress bar on stderr; default: when stderr is a terminal.
    resume : bool
        Reuse the chunks an interrupted run with the same inputs left in ``OUT.parts/``.
    engine, workers, scheduler
        Where the chunks run (see :func:`matcher.jobs.executors.make_engine`): ``local`` with ``workers``
        processes, or ``dask`` on the cluster whose scheduler is at ``scheduler``.
    fit_sample : int, optional
        Learn the vocabulary from a sample of this many targets (see :func:`fit_matcher`).

    Returns
    -------
    BatchReport

    Raises
    ------
    TableError
        An input file is invalid (naming the file, row and column).
    BatchError
        Bad ``k``, parameters, output path, engine, or a resume with different inputs.
    """
    k = _positive(k, "k")
    chunk_size = _positive(chunk_size, "chunk_size")
    _check_types(targets)
    if not targets:
        raise BatchError("no target files: give at least one of experts, resources and projects")
    out = Path(os.fspath(out))
    rejects = Path(os.fspath(skip_invalid)) if skip_invalid is not None else None
    inputs = [Path(os.fspath(p)) for p in (needs, *targets.values())]
    _check_output(out, inputs)
    if rejects is not None:
        if rejects.resolve() == out.resolve():
            raise BatchError(f"{rejects}: the rejects file is also the output file")
        _check_output(rejects, inputs, what="rejects", csv_only=True)
    _matcher(params)  # bad parameters fail before the files are read
    if fit_sample is not None:
        fit_sample = _positive(fit_sample, "fit_sample")
    runner = _engine(engine, workers, scheduler)

    need_table, tables = read_inputs(needs, targets, skip_invalid=rejects is not None)
    need_rows = needs_frame(need_table)
    fit_workers = runner.workers if isinstance(runner, LocalEngine) else None
    model = fit_matcher(targets_frame(tables), params, fit_sample=fit_sample, workers=fit_workers)
    fit_tagger(model, need_rows)
    all_tables = [need_table, *tables.values()]

    def write_rejects_file() -> None:
        if rejects is not None:
            write_rejects([_redacted(t) for t in all_tables], rejects)

    identity = {"mode": "files", "params": _jsonable(dict(params or {})), "fit_sample": fit_sample}
    outcome = _run_chunks(
        model,
        need_rows,
        out,
        k=k,
        chunk_size=chunk_size,
        engine=runner,
        resume=resume,
        progress=progress,
        identity=identity,
        before_commit=write_rejects_file,
    )
    report = BatchReport(
        out=out,
        needs=len(need_rows),
        targets={t: int(n) for t, n in model.n_targets_.items()},
        rows=outcome.rows,
        unmatched=len(need_rows) - outcome.matched,
        rejected=sum(len(t.rejects) for t in all_tables),
        rejects=rejects,
        resumed=outcome.resumed,
        chunks=outcome.chunks,
    )
    logger.info("%s", report.summary())
    return report


def run_batch_db(
    out: str | os.PathLike[str],
    *,
    k: int = 10,
    database_url: str | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: bool | None = None,
    resume: bool = False,
    engine: str = "local",
    workers: int | None = None,
    scheduler: Any = None,
) -> BatchReport:
    """Score every open need of the database with the active model and write the score table.

    The libraries come from the database (created, migrated and filled on first use, as every
    command does); the model is the active version of ``models_dir``, its target index brought in
    step with the database exactly as the HTTP service does (:meth:`Matcher.sync_targets`), so that
    deleted, unavailable and fully booked targets are left out and a need's rows are those
    ``POST /v1/match {"need_id": ...}`` returns (with the same ``k``). Needs are those with status
    ``open``, in id order. A run manifest is written beside the output: ``OUT.manifest.json``.

    Parameters are those of :func:`run_batch`; ``database_url`` defaults to ``DATABASE_URL``,
    ``models_dir`` to ``MATCHER_MODELS_DIR`` (``./models``), ``data_dir`` to ``MATCHER_DATA_DIR``.

    Raises
    ------
    BatchError
        Bad arguments or output path, or a resume with different inputs.
    matcher.errors.ModelError
        No active model, or a corrupt one.
    matcher.errors.DatabaseUnavailableError
        The database cannot be reached.
    """
    from matcher.inputs.library import data_dir as default_data_dir
    from matcher.inputs.library import needs_frame as stored_needs
    from matcher.inputs.library import targets_frame as stored_targets
    from matcher.matching import persist
    from matcher.store.db import database_url as default_url
    from matcher.store.repository import ensure_database, load_libraries_db, revision, transaction

    started = time.perf_counter()
    started_at = _utc_now()
    k = _positive(k, "k")
    chunk_size = _positive(chunk_size, "chunk_size")
    out = Path(os.fspath(out))
    _check_output(out)
    runner = _engine(engine, workers, scheduler)
    url = database_url or default_url()
    root = Path(os.fspath(models_dir)) if models_dir is not None else persist.models_dir()

    model, model_manifest = persist.load(root=root)  # no model: fail before touching the database
    ensure_database(url, data_dir if data_dir is not None else default_data_dir())
    with transaction(url) as session:
        library_revision = revision(session)
        libs = load_libraries_db(session)
    loaded = time.perf_counter()
    model.sync_targets(stored_targets(libs))
    open_ids = libs.needs.loc[libs.needs["status"] == "open", "id"].tolist()
    needs = stored_needs(libs, open_ids)
    synced = time.perf_counter()
    version = str(model_manifest.get("version"))
    logger.info("matching %d open needs with model version %s", len(needs), version)
    identity = {"mode": "database", "model_version": version}
    outcome = _run_chunks(
        model,
        needs,
        out,
        k=k,
        chunk_size=chunk_size,
        engine=runner,
        resume=resume,
        progress=progress,
        identity=identity,
    )
    report = BatchReport(
        out=out,
        needs=len(needs),
        targets={t: int(n) for t, n in model.n_targets_.items()},
        rows=outcome.rows,
        unmatched=len(needs) - outcome.matched,
        resumed=outcome.resumed,
        chunks=outcome.chunks,
        model_version=version,
        manifest=manifest_path(out),
    )
    finished = time.perf_counter()
    manifest = {
        "output": out.name,
        "format": "parquet" if out.suffix.lower() == ".parquet" else "csv",
        "output_sha256": _sha256(out),
        "source": "database",
        "database": _safe_url(url),
        "library_revision": library_revision,
        "model_version": version,
        "model_params": model_manifest.get("params", {}),
        "parameters": {"k": k, "chunk_size": outcome.chunk_size, "target_types": list(model.target_types_)},
        "engine": runner.describe(),
        "segmenter": segmenter(),
        "counts": {
            "needs": report.needs,
            "targets": report.targets,
            "rows": report.rows,
            "needs_without_match": report.unmatched,
            "chunks": outcome.chunks,
            "chunks_resumed": outcome.resumed,
        },
        "timings_seconds": {
            "load": round(loaded - started, 3),
            "sync_targets": round(synced - loaded, 3),
            "match": round(outcome.match_seconds, 3),
            "write": round(outcome.write_seconds, 3),
            "total": round(finished - started, 3),
        },
        "needs_per_second": round(len(needs) / outcome.match_seconds, 1) if outcome.match_seconds > 0 else None,
        "started_at": started_at,
        "finished_at": _utc_now(),
    }
    _write_json(manifest_path(out), manifest)
    logger.info("%s", report.summary())
    return report


def match_to_file(
    model: Matcher,
    needs: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    k: int = 10,
    chunk_size: int = CHUNK_SIZE,
    progress: bool | None = False,
    resume: bool = False,
    engine: str = "local",
    workers: int | None = None,
    scheduler: Any = None,
) -> BatchReport:
    """Score a needs frame with a fitted matcher into a score table file, as ``matcher batch`` does.

    The Python entry point for a model already in memory (a notebook, a benchmark): the same chunks,
    engines, ``OUT.parts/`` and resume, and byte-identical output, as :func:`run_batch`.

    Parameters
    ----------
    model : Matcher
        A fitted matcher.
    needs : DataFrame with ``id, text`` and optionally ``tags, counties, org_id``
        Scored in row order.
    """
    k = _positive(k, "k")
    chunk_size = _positive(chunk_size, "chunk_size")
    out = Path(os.fspath(out))
    _check_output(out)
    outcome = _run_chunks(
        model,
        needs,
        out,
        k=k,
        chunk_size=chunk_size,
        engine=_engine(engine, workers, scheduler),
        resume=resume,
        progress=progress,
        identity={"mode": "model", "params": _params_identity(model)},
    )
    return BatchReport(
        out=out,
        needs=len(needs),
        targets={t: int(n) for t, n in model.n_targets_.items()},
        rows=outcome.rows,
        unmatched=len(needs) - outcome.matched,
        resumed=outcome.resumed,
        chunks=outcome.chunks,
    )


def run_batch_model(
    model_dir: str | os.PathLike[str],
    needs: str | os.PathLike[str],
    targets: Mapping[str, str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    k: int = 10,
    **run: Any,
) -> BatchReport:
    """``matcher batch --model DIR``: score a needs file with a saved model version (no refit).

    With no target files the version's own targets are scored; with target files the version's index
    is made to hold exactly those targets, transformed with its fitted vocabulary
    (:meth:`Matcher.sync_targets`), and its re-ranker applies. ``run``: the options of
    :func:`match_to_file` (chunk size, engine, workers, resume, progress).
    """
    from matcher.matching import persist

    _check_types(targets)
    inputs = [Path(os.fspath(p)) for p in (needs, *targets.values())]
    _check_output(Path(os.fspath(out)), inputs)
    model, manifest = persist.load_folder(Path(os.fspath(model_dir)))
    need_table = read_table(needs)
    if targets:
        tables = {t: read_table(targets[t]) for t in TARGET_TYPES if t in targets}
        frame = targets_frame(tables)
        model.sync_targets(frame)
    report = match_to_file(model, needs_frame(need_table), out, k=k, **run)
    report.model_version = manifest.get("version")
    return report


def manifest_path(out: Path) -> Path:
    """The run manifest written beside ``out``: ``OUT.manifest.json``."""
    return out.with_name(out.name + ".manifest.json")


def parts_dir(out: Path) -> Path:
    """The folder of finished chunks kept beside ``out`` until the output is complete: ``OUT.parts/``."""
    return out.with_name(out.name + ".parts")


def _engine(name: str, workers: int | None, scheduler: Any) -> Engine:
    """The engine ``name``; the local one with ``workers`` processes (None: one per usable core)."""
    if workers is None:
        workers = usable_cores()
    try:
        return make_engine(name, workers=workers, scheduler=scheduler)
    except EngineError as error:
        raise BatchError(str(error)) from error


# ---------------------------------------------------------------------- chunks and resume


@dataclass
class _Outcome:
    rows: int
    matched: int
    chunks: int
    resumed: int
    chunk_size: int
    match_seconds: float
    write_seconds: float


def _score_chunk(model: Matcher, task: tuple[pd.DataFrame, int]) -> pa.Table:
    """Score one chunk of needs (:meth:`Matcher.match_columns`): its rows as an Arrow table."""
    needs, k = task
    return _arrow(model.match_columns(needs, k=k, chunk_size=max(1, len(needs))))


def _run_chunks(
    model: Matcher,
    needs: pd.DataFrame,
    out: Path,
    *,
    k: int,
    chunk_size: int,
    engine: Engine,
    resume: bool,
    progress: bool | None,
    identity: dict[str, Any],
    before_commit: Any = None,
) -> _Outcome:
    """Score ``needs`` chunk by chunk into ``OUT.parts/``, then assemble ``out`` from the parts in order.

    The chunk size is capped so that one chunk's dense score matrices stay near ``_CELLS_PER_CHUNK``
    cells: memory grows with the chunk, not with the number of needs. Each finished chunk is a
    Parquet file in ``OUT.parts/`` (with ``state.json``, what the run was made of); with ``resume`` the
    chunks already there are kept when the state matches and refused with the reason when it does not.
    The output appears by one rename when complete; the parts are removed then.
    """
    largest = max(model.n_targets_.values())
    step = max(1, min(chunk_size, _CELLS_PER_CHUNK // largest))
    bounds = [(start, min(start + step, len(needs))) for start in range(0, len(needs), step)]
    state = {
        **identity,
        "k": k,
        "chunk_size": step,
        "chunks": len(bounds),
        "needs": len(needs),
        "needs_sha256": _needs_digest(needs),
        "targets_sha256": _targets_digest(model),
    }
    store = _PartStore(parts_dir(out), state, resume=resume)
    done = store.done()
    show = sys.stderr.isatty() if progress is None else progress
    pending = ((n, (needs.iloc[a:b], k)) for n, (a, b) in enumerate(bounds) if n not in done)
    frozen = False
    if isinstance(engine, LocalEngine) and engine.workers > 1:
        if len(bounds) - len(done) <= 1:  # one chunk: no process to start (the same rows)
            engine = LocalEngine(1)
        else:
            frozen = _before_fork(model)
    started = time.perf_counter()
    finished = len(done)
    try:
        with tqdm(
            total=len(needs),
            initial=sum(b - a for n, (a, b) in enumerate(bounds) if n in done),
            desc="matching",
            unit="need",
            file=sys.stderr,
            disable=not show,
        ) as bar:
            for number, table in engine.run(_score_chunk, model, pending):
                store.put(number, table)
                finished += 1
                bar.update(bounds[number][1] - bounds[number][0])
                _test_pause(finished, len(bounds))
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
    finally:
        if frozen:
            gc.unfreeze()
    matched = time.perf_counter()
    need_ids: set[str] = set()
    with _writing(out) as writer:
        for number in range(len(bounds)):
            table = store.get(number)
            writer.write_table(table)
            need_ids.update(table.column("need_id").unique().to_pylist())
        if before_commit is not None:
            before_commit()
    store.remove()
    return _Outcome(
        rows=writer.rows,
        matched=len(need_ids),
        chunks=len(bounds),
        resumed=len(done),
        chunk_size=step,
        match_seconds=matched - started,
        write_seconds=time.perf_counter() - matched,
    )


def _before_fork(model: Matcher) -> bool:
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
        try:
            import ctypes

            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass
    gc.freeze()
    return True


class _PartStore:
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
        _write_json(folder / self.STATE, state)

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


def _needs_digest(needs: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    columns = [c for c in ("id", "text", "tags", "counties", "org_id") if c in needs.columns]
    for row in needs.loc[:, columns].itertuples(index=False):
        values = [list(v) if isinstance(v, list | tuple | np.ndarray) else v for v in row]
        digest.update(json.dumps(values, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
    return digest.hexdigest()


def _targets_digest(model: Matcher) -> str:
    digest = hashlib.sha256()
    for target_type in model.target_types_:
        frame = model.targets(target_type)
        digest.update(target_type.encode() + b"\0")
        for target_id, fingerprint in zip(frame["id"], frame["fingerprint"], strict=True):
            digest.update(f"{target_id}\t{fingerprint}\n".encode())
    return digest.hexdigest()


def _test_pause(finished: int, total: int) -> None:
    """Test hook: after each finished chunk, say so on stderr and sleep, so a test can kill the run there."""
    seconds = os.environ.get(PAUSE_ENV)
    if seconds:
        print(f"matcher: {PAUSE_ENV}: {finished} of {total} chunks done", file=sys.stderr, flush=True)
        time.sleep(float(seconds))


def _redacted(table: Table) -> Table:
    """``table`` with personal data (phones, ID cards, e-mail, bank cards) redacted in its rejected rows."""
    rejects = table.rejects.copy()
    for column in rejects.columns:
        if column not in ("file", "row") and rejects[column].dtype == object:
            rejects[column] = [redact(v) if isinstance(v, str) else v for v in rejects[column]]
    return dataclasses.replace(table, rejects=rejects)


def _params_identity(model: Matcher) -> dict[str, Any]:
    """The model's parameters as JSON: callables by name, estimators by class (stable across processes)."""
    params = {}
    for key, value in sorted(model.get_params(deep=True).items()):
        if callable(value) and hasattr(value, "__qualname__"):
            value = f"{value.__module__}.{value.__qualname__}"
        elif not isinstance(value, str | int | float | bool | list | tuple | type(None)):
            value = type(value).__name__
        params[key] = value
    return _jsonable(params)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _write_json(path: Path, value: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _positive(value: Any, name: str) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        number = 0
    if isinstance(value, bool) or number < 1:
        raise BatchError(f"{name} must be a whole number of 1 or more, got {value!r}")
    return number


def check_inputs(
    needs: str | os.PathLike[str],
    targets: Mapping[str, str | os.PathLike[str]],
    *,
    params: Mapping[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
) -> CheckReport:
    """Validate every input file (and the parameters and output path) without matching.

    Returns
    -------
    CheckReport
        Per file: valid and invalid rows, each problem, ignored columns.
    """
    _check_types(targets)
    files = [_check_file("needs", needs, unused=("name", "capacity", "available"))]
    files += [_check_file(_ROLES[t], targets[t], unused=("org_name",)) for t in TARGET_TYPES if t in targets]
    problems = []
    if not targets:
        problems.append("no target files: give at least one of experts, resources and projects")
    try:
        _matcher(params)
    except BatchError as error:
        problems.append(str(error))
    if out is not None:
        try:
            _check_output(Path(os.fspath(out)), [Path(os.fspath(p)) for p in (needs, *targets.values())])
        except BatchError as error:
            problems.append(str(error))
    return CheckReport(files=files, problems=problems)


def _not_skipped(record: logging.LogRecord) -> bool:
    """Drop the reader's "skipped N invalid rows" warning: a check skips nothing, it reports."""
    return not str(record.msg).startswith("%s: skipped")


def _check_file(role: str, path: str | os.PathLike[str], unused: tuple[str, ...] = ()) -> FileCheck:
    file = os.fspath(path)
    reader_log = logging.getLogger("matcher.inputs.files")
    reader_log.addFilter(_not_skipped)
    try:
        table = read_table(file, skip_invalid=True)
    except TableError as error:
        problems = [str(p) for p in error.problems]
        rows = {p.row for p in error.problems if p.row is not None}
        if error.problems and error.problems[0].message.startswith("no valid rows"):
            return FileCheck(role, file, valid=0, invalid=len(rows), problems=problems)
        return FileCheck(role, file, valid=None, invalid=None, problems=problems)
    finally:
        reader_log.removeFilter(_not_skipped)
    ignored = list(table.ignored_columns) + [f"{c} (not used for {role})" for c in unused if c in table.present]
    return FileCheck(
        role,
        file,
        valid=len(table.frame),
        invalid=len(table.rejects),
        problems=[str(p) for p in table.problems],
        ignored_columns=ignored,
    )
