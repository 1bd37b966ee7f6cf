"""The job outputs: score tables (CSV or Parquet) streamed chunk by chunk, result tables and JSON files, all atomic.

Every file appears whole or not at all: it is written to a temporary file beside it and renamed.
CSV goes through the one tabular writer (:mod:`matcher.documents.writer`: UTF-8 with BOM, ``\\n``
line ends, formula-safe texts), scores with 6 decimals; Parquet has a fixed schema. The same rows
give byte-identical files.

* the score table ``need_id, target_type, target_id, rank, score`` (:data:`PARQUET_SCHEMA`):
  :class:`ScoreWriter`, :func:`writing`, :func:`write_matches`, :func:`score_table`;
* any result frame with its Parquet schema (the assignment, its loads, the needs left short):
  :func:`write_frame`;
* a JSON file (a run manifest, a summary, the chunk state): :func:`write_json`;
* :func:`check_output`: fail early when an output cannot be written.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from matcher.documents.writer import CsvRows, write_csv
from matcher.errors import BatchError
from matcher.matching.estimator import MATCH_COLUMNS

logger = logging.getLogger(__name__)

__all__ = [
    "PARQUET_SCHEMA",
    "ScoreWriter",
    "arrow_scores",
    "check_output",
    "score_table",
    "write_frame",
    "write_json",
    "write_matches",
    "writing",
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


# --------------------------------------------------------------------------- score tables


class ScoreWriter:
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
    return arrow_scores({c: frame[c].to_numpy() for c in MATCH_COLUMNS})


def arrow_scores(columns: Mapping[str, np.ndarray]) -> pa.Table:
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
def writing(path: Path) -> Iterator[ScoreWriter]:
    """A :class:`ScoreWriter` committed when the block succeeds and discarded when it fails."""
    writer = ScoreWriter(path)
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
    check_output(target)
    with writing(target) as writer:
        writer.write(frame)


def check_output(out: Path, inputs: list[Path] | None = None, *, what: str = "output", csv_only: bool = False) -> None:
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


# -------------------------------------------------------------------------- result tables


def write_frame(frame: pd.DataFrame, path: Path, schema: pa.Schema) -> None:
    """Write ``frame`` atomically: Parquet (``schema``, zstd) for ``.parquet``, else CSV (UTF-8 with BOM, ``\\n``).

    In the CSV, scores are written with 6 decimals, whole numbers without a decimal point, texts formula-safe.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if path.suffix.lower() == ".parquet":
            os.close(fd)
            arrays = []
            for column in schema:
                values = frame[column.name]
                arrays.append(pa.array([None if v is pd.NA else v for v in values.tolist()], type=column.type))
            table = pa.Table.from_arrays(arrays, schema=schema)
            pq.write_table(table, tmp, compression="zstd", version="2.6", data_page_version="1.0")
        else:
            os.close(fd)
            write_csv(tmp, list(frame.columns), _cells(frame), float_format=".6f")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cells(frame: pd.DataFrame) -> Iterator[list[Any]]:
    """Raw cell values for :func:`matcher.documents.writer.write_csv`: scores as floats (written ``.6f``), whole numbers as ints."""
    columns = []
    for name in frame.columns:
        values = frame[name].tolist()
        if name == "score":
            columns.append([float(v) + 0.0 for v in values])
        elif frame[name].dtype == bool:
            columns.append([bool(v) for v in values])
        else:
            columns.append([_whole(v) for v in values])
    return (list(row) for row in zip(*columns, strict=True))


def _whole(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ----------------------------------------------------------------------------------- JSON


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Write ``value`` as indented UTF-8 JSON (other objects as their text), atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
