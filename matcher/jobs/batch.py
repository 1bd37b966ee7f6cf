"""``matcher batch``: fit on user-supplied target files, score every need of a file, write the score table.

The run never reads or changes ``models/``: the matcher is fitted in memory on the given files
(default parameters, or those given) and every need is scored by :meth:`Matcher.match`, the same
scoring as the HTTP path (:meth:`Matcher.recommend`). The output is written to a temporary file in
the output's folder and moved into place only when everything succeeded, so a failed run leaves no
output behind and an earlier output untouched.

Output: CSV (UTF-8 with BOM, ``\\n`` line ends, scores with 6 decimals) or Parquet (fixed schema) with
columns ``need_id, target_type, target_id, rank, score``; the same inputs give byte-identical files.

Four ways in, one function each: target files fitted here (:func:`run_batch`, checked by
:func:`check_inputs`), the database with the active model (:func:`run_batch_db`, read by
:func:`matcher.jobs.sources.load_active`), a saved version folder (:func:`run_batch_model`), and a model
already in memory (:func:`match_to_file`). They all score through :func:`matcher.jobs.chunks.score_to_file`
(chunks, engines, resume) and write through :mod:`matcher.jobs.output`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import operator
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from matcher.errors import BatchError
from matcher.inputs.files import Table, TableError, read_table, write_rejects
from matcher.inputs.frames import check_target_types, table_needs_frame, table_targets_frame
from matcher.inputs.library import TARGET_TYPES, data_dir, load_taxonomy
from matcher.jobs.chunks import ChunkOptions, Outcome, score_to_file
from matcher.jobs.executors import LocalEngine
from matcher.jobs.output import check_output, write_json
from matcher.jobs.sources import load_active
from matcher.matching import persist
from matcher.matching.estimator import Matcher, build_matcher
from matcher.matching.persist import file_sha256, jsonable
from matcher.store.db import safe_url
from matcher.text.privacy import redact
from matcher.text.processes import parallelism
from matcher.text.segment import segmenter

logger = logging.getLogger(__name__)

__all__ = [
    "BatchReport",
    "CheckReport",
    "FileCheck",
    "check_inputs",
    "checked_matcher",
    "fit_matcher",
    "fit_tagger",
    "manifest_path",
    "match_to_file",
    "read_inputs",
    "run_batch",
    "run_batch_db",
    "run_batch_model",
]

#: Targets added to the index at a time after a sampled fit (``fit_sample``).
FIT_CHUNK = 50_000
_ROLES = {"expert": "experts", "resource": "resources", "project": "projects"}


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

    @classmethod
    def of_run(cls, out: Path, model: Matcher, needs: pd.DataFrame, outcome: Outcome, **extra: Any) -> BatchReport:
        """The report of ``needs`` scored by ``model`` into ``out`` (:func:`matcher.jobs.chunks.score_to_file`'s ``outcome``)."""
        return cls(
            out=out,
            needs=len(needs),
            targets={t: int(n) for t, n in model.n_targets_.items()},
            rows=outcome.rows,
            unmatched=len(needs) - outcome.matched,
            resumed=outcome.resumed,
            chunks=outcome.chunks,
            **extra,
        )

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
    check_target_types(targets)
    need_table = read_table(needs, skip_invalid=skip_invalid)
    tables = {t: read_table(targets[t], skip_invalid=skip_invalid) for t in TARGET_TYPES if t in targets}
    return need_table, tables


# -------------------------------------------------------------------------- parameters


def checked_matcher(params: Mapping[str, Any] | None) -> Matcher:
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
    matcher = checked_matcher(params)
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
    fit_sample: int | None = None,
    chunks: ChunkOptions | None = None,
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
    fit_sample : int, optional
        Learn the vocabulary from a sample of this many targets (see :func:`fit_matcher`).
    chunks : ChunkOptions, optional
        Chunk size, progress bar, resume, and where the chunks run (engine, workers, scheduler).

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
    chunks = _checked(chunks or ChunkOptions())
    check_target_types(targets)
    if not targets:
        raise BatchError("no target files: give at least one of experts, resources and projects")
    out = Path(os.fspath(out))
    rejects = Path(os.fspath(skip_invalid)) if skip_invalid is not None else None
    inputs = [Path(os.fspath(p)) for p in (needs, *targets.values())]
    check_output(out, inputs)
    if rejects is not None:
        if rejects.resolve() == out.resolve():
            raise BatchError(f"{rejects}: the rejects file is also the output file")
        check_output(rejects, inputs, what="rejects", csv_only=True)
    checked_matcher(params)  # bad parameters fail before the files are read
    if fit_sample is not None:
        fit_sample = _positive(fit_sample, "fit_sample")
    runner = chunks.make_engine()

    need_table, tables = read_inputs(needs, targets, skip_invalid=rejects is not None)
    need_rows = table_needs_frame(need_table)
    fit_workers = runner.workers if isinstance(runner, LocalEngine) else None
    model = fit_matcher(table_targets_frame(tables), params, fit_sample=fit_sample, workers=fit_workers)
    fit_tagger(model, need_rows)
    all_tables = [need_table, *tables.values()]

    def write_rejects_file() -> None:
        if rejects is not None:
            write_rejects([_redacted(t) for t in all_tables], rejects)

    identity = {"mode": "files", "params": jsonable(dict(params or {})), "fit_sample": fit_sample}
    outcome = score_to_file(
        model,
        need_rows,
        out,
        k=k,
        options=chunks,
        engine=runner,
        identity=identity,
        before_commit=write_rejects_file,
    )
    report = BatchReport.of_run(
        out, model, need_rows, outcome, rejected=sum(len(t.rejects) for t in all_tables), rejects=rejects
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
    chunks: ChunkOptions | None = None,
) -> BatchReport:
    """Score every open need of the database with the active model and write the score table.

    The libraries come from the database (created, migrated and filled on first use, as every
    command does); the model is the active version of ``models_dir``, its target index brought in
    step with the database exactly as the HTTP service does (:func:`matcher.jobs.sources.load_active`),
    so that deleted, unavailable and fully booked targets are left out and a need's rows are those
    ``POST /v1/match {"need_id": ...}`` returns (with the same ``k``). Needs are those with status
    ``open``, in id order. A run manifest is written beside the output: ``OUT.manifest.json``.

    ``k`` and ``chunks`` are those of :func:`run_batch`; ``database_url`` defaults to ``DATABASE_URL``,
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
    started = time.perf_counter()
    started_at = _utc_now()
    k = _positive(k, "k")
    chunks = _checked(chunks or ChunkOptions())
    out = Path(os.fspath(out))
    check_output(out)
    runner = chunks.make_engine()

    sources = load_active(database_url=database_url, models_dir=models_dir, data_dir=data_dir)
    model, needs, version = sources.model, sources.needs, sources.model_version
    logger.info("matching %d open needs with model version %s", len(needs), version)
    identity = {"mode": "database", "model_version": version}
    outcome = score_to_file(model, needs, out, k=k, options=chunks, engine=runner, identity=identity)
    report = BatchReport.of_run(out, model, needs, outcome, model_version=version, manifest=manifest_path(out))
    finished = time.perf_counter()
    manifest = {
        "output": out.name,
        "format": "parquet" if out.suffix.lower() == ".parquet" else "csv",
        "output_sha256": file_sha256(out),
        "source": "database",
        "database": safe_url(sources.database_url),
        "library_revision": sources.revision,
        "model_version": version,
        "model_params": sources.manifest.get("params", {}),
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
            "load": round(sources.load_seconds, 3),
            "sync_targets": round(sources.sync_seconds, 3),
            "match": round(outcome.match_seconds, 3),
            "write": round(outcome.write_seconds, 3),
            "total": round(finished - started, 3),
        },
        "needs_per_second": round(len(needs) / outcome.match_seconds, 1) if outcome.match_seconds > 0 else None,
        "started_at": started_at,
        "finished_at": _utc_now(),
    }
    write_json(manifest_path(out), manifest)
    logger.info("%s", report.summary())
    return report


def match_to_file(
    model: Matcher,
    needs: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    k: int = 10,
    chunks: ChunkOptions | None = None,
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
    chunks : ChunkOptions, optional
        As for :func:`run_batch`; by default without a progress bar.
    """
    k = _positive(k, "k")
    chunks = _checked(chunks or ChunkOptions(progress=False))
    out = Path(os.fspath(out))
    check_output(out)
    outcome = score_to_file(
        model,
        needs,
        out,
        k=k,
        options=chunks,
        engine=chunks.make_engine(),
        identity={"mode": "model", "params": _params_identity(model)},
    )
    return BatchReport.of_run(out, model, needs, outcome)


def run_batch_model(
    model_dir: str | os.PathLike[str],
    needs: str | os.PathLike[str],
    targets: Mapping[str, str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    k: int = 10,
    chunks: ChunkOptions | None = None,
) -> BatchReport:
    """``matcher batch --model DIR``: score a needs file with a saved model version (no refit).

    With no target files the version's own targets are scored; with target files the version's index
    is made to hold exactly those targets, transformed with its fitted vocabulary
    (:meth:`Matcher.sync_targets`), and its re-ranker applies. ``chunks``: as for :func:`match_to_file`.
    """
    check_target_types(targets)
    inputs = [Path(os.fspath(p)) for p in (needs, *targets.values())]
    check_output(Path(os.fspath(out)), inputs)
    model, manifest = persist.load_folder(Path(os.fspath(model_dir)))
    need_table = read_table(needs)
    if targets:
        tables = {t: read_table(targets[t]) for t in TARGET_TYPES if t in targets}
        frame = table_targets_frame(tables)
        model.sync_targets(frame)
    report = match_to_file(model, table_needs_frame(need_table), out, k=k, chunks=chunks)
    report.model_version = manifest.get("version")
    return report


def manifest_path(out: Path) -> Path:
    """The run manifest written beside ``out``: ``OUT.manifest.json``."""
    return out.with_name(out.name + ".manifest.json")


def _checked(chunks: ChunkOptions) -> ChunkOptions:
    """``chunks`` with its chunk size checked (a whole number of 1 or more)."""
    return dataclasses.replace(chunks, chunk_size=_positive(chunks.chunk_size, "chunk_size"))


def _redacted(table: Table) -> Table:
    """``table`` with personal data (phones, ID cards, e-mail, bank cards) redacted in its rejected rows."""
    rejects = table.rejects.copy()
    for column in rejects.columns:
        if column not in ("file", "row") and rejects[column].dtype == object:
            rejects[column] = [redact(v) if isinstance(v, str) else v for v in rejects[column]]
    return dataclasses.replace(table, rejects=rejects)


def _params_identity(model: Matcher) -> dict[str, Any]:
    """The model's parameters as JSON: callables by name, estimators by class (stable across processes)."""
    return jsonable(model.get_params(deep=True))


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
    check_target_types(targets)
    files = [_check_file("needs", needs, unused=("name", "capacity", "available"))]
    files += [_check_file(_ROLES[t], targets[t], unused=("org_name",)) for t in TARGET_TYPES if t in targets]
    problems = []
    if not targets:
        problems.append("no target files: give at least one of experts, resources and projects")
    try:
        checked_matcher(params)
    except BatchError as error:
        problems.append(str(error))
    if out is not None:
        try:
            check_output(Path(os.fspath(out)), [Path(os.fspath(p)) for p in (needs, *targets.values())])
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
