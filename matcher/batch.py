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

import csv
import logging
import math
import operator
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from matcher.errors import MatcherError
from matcher.library import TARGET_COLUMNS, TARGET_TYPES
from matcher.model import MATCH_COLUMNS, Matcher, build_matcher
from matcher.tables import Table, TableError, read_table, write_rejects

logger = logging.getLogger(__name__)

__all__ = [
    "PARQUET_SCHEMA",
    "BatchError",
    "BatchReport",
    "CheckReport",
    "FileCheck",
    "check_inputs",
    "fit_matcher",
    "needs_frame",
    "read_inputs",
    "run_batch",
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
    """

    out: Path
    needs: int
    targets: dict[str, int]
    rows: int
    unmatched: int = 0
    rejected: int = 0
    rejects: Path | None = None

    def summary(self) -> str:
        """One line for the terminal."""
        targets = ", ".join(f"{n} {_ROLES[t] if n != 1 else t}" for t, n in self.targets.items())
        line = f"wrote {_count(self.rows, 'row')} for {_count(self.needs, 'need')} ({targets}) to {self.out}"
        if self.unmatched:
            line += f"; {_count(self.unmatched, 'need')} without any match"
        if self.rejects is not None:
            line += f"; {_count(self.rejected, 'invalid row')} skipped, listed in {self.rejects}"
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
    """The needs of a table as the model's needs frame: ``id, text, tags, counties, org_id``."""
    frame = table.frame
    return pd.DataFrame(
        {
            "id": frame["id"].astype(object),
            "text": frame["text"].astype(object),
            "tags": frame["tags"],
            "counties": frame["counties"],
            "org_id": frame["org_id"],
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
                    "texts": [[text] for text in frame["text"]],
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


def fit_matcher(targets: pd.DataFrame, params: Mapping[str, Any] | None = None) -> Matcher:
    """A matcher with ``params`` (flat ``get_params`` keys) fitted on a targets frame.

    Raises
    ------
    BatchError
        Naming the unknown or invalid parameter, or why the matcher cannot be fitted.
    """
    matcher = _matcher(params)
    try:
        return matcher.fit(targets)
    except (ValueError, TypeError) as error:
        with_params = " with these parameters" if params else ""
        raise BatchError(f"cannot fit the matcher on the target files{with_params}: {error}") from error


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
                self._csv = csv.writer(self._text, lineterminator="\n")
                self._csv.writerow(MATCH_COLUMNS)
        except BaseException:
            self.discard()
            raise

    def write(self, frame: pd.DataFrame) -> None:
        missing = [c for c in MATCH_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"the score table lacks the columns {missing}")
        need_ids = [str(v) for v in frame["need_id"]]
        target_types = [str(v) for v in frame["target_type"]]
        target_ids = [str(v) for v in frame["target_id"]]
        ranks = frame["rank"].to_numpy(dtype=np.int64)
        scores = frame["score"].to_numpy(dtype=np.float64) + 0.0  # no "-0.000000"
        if self._parquet is not None:
            columns = [need_ids, target_types, target_ids, ranks.astype(np.int32), scores]
            arrays = [pa.array(c, type=f.type) for c, f in zip(columns, PARQUET_SCHEMA, strict=True)]
            self._parquet.write_table(pa.Table.from_arrays(arrays, schema=PARQUET_SCHEMA))
        else:
            self._csv.writerows(
                zip(need_ids, target_types, target_ids, ranks.tolist(), [f"{s:.6f}" for s in scores], strict=True)
            )
        self.rows += len(frame)

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
) -> BatchReport:
    """Fit on the target files, score every need and write the top ``k`` per need and target type.

    Parameters
    ----------
    needs : path
        The needs file (CSV, JSONL or XLSX; see :func:`matcher.tables.read_table`).
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

    Returns
    -------
    BatchReport

    Raises
    ------
    TableError
        An input file is invalid (naming the file, row and column).
    BatchError
        Bad ``k``, parameters or output path.
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

    need_table, tables = read_inputs(needs, targets, skip_invalid=rejects is not None)
    need_rows = needs_frame(need_table)
    model = fit_matcher(targets_frame(tables), params)
    largest = max(model.n_targets_.values())
    step = max(1, min(chunk_size, _CELLS_PER_CHUNK // largest))
    show = sys.stderr.isatty() if progress is None else progress
    matched: set[str] = set()
    with (
        _writing(out) as writer,
        tqdm(total=len(need_rows), desc="matching", unit="need", file=sys.stderr, disable=not show) as bar,
    ):
        for start in range(0, len(need_rows), step):
            chunk = need_rows.iloc[start : start + step]
            rows = model.match(chunk, k=k, chunk_size=len(chunk))
            writer.write(rows)
            matched.update(rows["need_id"].astype(str))
            bar.update(len(chunk))
        all_tables = [need_table, *tables.values()]
        if rejects is not None:
            write_rejects(all_tables, rejects)
    report = BatchReport(
        out=out,
        needs=len(need_rows),
        targets={t: int(n) for t, n in model.n_targets_.items()},
        rows=writer.rows,
        unmatched=len(need_rows) - len(matched),
        rejected=sum(len(t.rejects) for t in all_tables),
        rejects=rejects,
    )
    logger.info("%s", report.summary())
    return report


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
    files += [_check_file(_ROLES[t], targets[t]) for t in TARGET_TYPES if t in targets]
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
    reader_log = logging.getLogger("matcher.tables")
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
