"""The one writer of tabular files (CSV and XLSX): every file the package writes may be opened in Excel/WPS.

Cells are untrusted: a name such as ``=HYPERLINK("http://x","y")`` must never become a live formula.

* **XLSX** (:func:`append_row`, :func:`workbook`, :func:`save_workbook`): text goes in as a typed
  string cell (never a formula or an error value, no prefix added); numbers and booleans stay
  numbers and booleans; characters a worksheet cannot hold (C0 controls other than tab and
  newline) are dropped.
* **CSV** (:func:`csv_text`, :func:`csv_file`, :func:`write_csv`, :func:`write_frame_csv`): a text
  that begins with ``=``, ``+``, ``-``, ``@``, tab or carriage return, or with ``'`` followed by one of
  them, gets one leading ``'`` (OWASP's rule, :func:`escape_csv`). Numbers (``int``/``float``
  values, not texts that look like numbers) are written as they are. The readers of ``matcher
  import`` and ``matcher batch`` (:mod:`matcher.inputs.files`) strip exactly that one ``'``
  (:func:`unescape_csv`), so export → import changes nothing.

Writing a new file (a sign-in sheet, a report) takes one call::

    from matcher.documents.writer import write_csv
    write_csv(path, ["编号", "姓名", "电话"], rows)           # UTF-8 with BOM, atomic

    from matcher.documents.writer import append_row, save_workbook, workbook
    book = workbook()
    sheet = book.active
    append_row(sheet, ["编号", "姓名"])
    append_row(sheet, [expert_id, name])
    data = save_workbook(book)                               # bytes; or save_workbook(book, path)

Files appear whole or not at all: each is written to a temporary file beside it, then renamed.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell

__all__ = [
    "FORMULA_TRIGGERS",
    "XLSX_MEDIA_TYPE",
    "CsvRows",
    "RowWriter",
    "append_row",
    "atomic_file",
    "csv_file",
    "csv_text",
    "escape_csv",
    "save_workbook",
    "unescape_csv",
    "workbook",
    "write_csv",
    "write_frame_csv",
    "write_table",
    "xlsx_table",
    "xlsx_value",
]

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: Characters a worksheet cannot hold (openpyxl's ``ILLEGAL_CHARACTERS_RE``): C0 controls but tab, LF, CR.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _needs_quote(text: str) -> bool:
    return text.startswith(FORMULA_TRIGGERS) or (text.startswith("'") and text[1:].startswith(FORMULA_TRIGGERS))


def escape_csv(text: str) -> str:
    """``text`` with one leading ``'`` when it begins with a formula trigger (or ``'`` and a trigger)."""
    return "'" + text if _needs_quote(text) else text


def unescape_csv(text: str) -> str:
    """The inverse of :func:`escape_csv`: strip exactly one ``'`` that :func:`escape_csv` would have added."""
    return text[1:] if text.startswith("'") and _needs_quote(text[1:]) else text


def csv_text(value: Any, *, float_format: str | None = None) -> str:
    """One CSV cell: blank for None/NaN, ``true``/``false``, numbers as they are, texts escaped.

    ``float_format`` (e.g. ``".6f"``) formats floats; by default they are written as ``repr`` does.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return format(value, float_format) if float_format else repr(float(value))
    return escape_csv(value if isinstance(value, str) else str(value))


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed to it when the block ends without an error.

    The file keeps the mode of the file it replaces (``mode``, else 0644 for a new file).
    """
    target = Path(os.fspath(path))
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        keep = target.stat().st_mode & 0o777 if target.exists() else 0o644
        os.chmod(tmp, mode if mode is not None else keep)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class RowWriter(Protocol):
    """What :func:`csv_file` yields: ``writerow(values)`` and ``writerows(rows)`` of raw values."""

    def writerow(self, values: Sequence[Any]) -> None: ...

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None: ...


class CsvRows:
    """Rows of raw values (see :func:`csv_text`) written to an open text ``handle`` (for streaming writers)."""

    def __init__(self, handle: Any, float_format: str | None) -> None:
        self._writer = csv.writer(handle, lineterminator="\n")
        self._float_format = float_format
        self.rows = 0

    def writerow(self, values: Sequence[Any]) -> None:
        self._writer.writerow([csv_text(v, float_format=self._float_format) for v in values])
        self.rows += 1

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        for values in rows:
            self.writerow(values)


@contextmanager
def csv_file(
    path: str | os.PathLike[str], header: Sequence[str], *, bom: bool = True, float_format: str | None = None
) -> Iterator[RowWriter]:
    """Stream rows into a CSV file (UTF-8, with a BOM unless ``bom=False``, ``\\n`` line ends), atomically.

    Yields a writer whose ``writerow``/``writerows`` take raw values (see :func:`csv_text`); the file
    appears at ``path`` only when the block ends without an error, fsynced.
    """
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        rows = CsvRows(handle, float_format)
        rows.writerow(list(header))
        yield rows
        handle.flush()
        os.fsync(handle.fileno())


def write_csv(
    path: str | os.PathLike[str],
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    bom: bool = True,
    float_format: str | None = None,
) -> int:
    """Write ``header`` and ``rows`` to the CSV file ``path`` (see :func:`csv_file`); returns the rows written."""
    with csv_file(path, header, bom=bom, float_format=float_format) as writer:
        writer.writerows(rows)
        return writer.rows - 1  # type: ignore[attr-defined]


def write_frame_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a pandas frame as ``frame.to_csv(index=False)`` would (no BOM, ``\\n``), with every text escaped."""
    escaped = frame.copy()
    for name in escaped.columns:
        if escaped[name].dtype == object or pd.api.types.is_string_dtype(escaped[name].dtype):
            escaped[name] = escaped[name].map(lambda v: escape_csv(v) if isinstance(v, str) else v)
    with atomic_file(path) as tmp:
        escaped.to_csv(tmp, index=False, lineterminator="\n")


# ---------------------------------------------------------------------------- XLSX


def xlsx_value(value: Any) -> Any:
    """A value as a worksheet can hold it: texts without illegal characters, numbers and booleans kept.

    numpy scalars become Python numbers; None/NaN become an empty cell; other objects their text.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    return _ILLEGAL.sub("", value if isinstance(value, str) else str(value))


def workbook(*, write_only: bool = False) -> Any:
    """A new ``openpyxl.Workbook`` (a write-only one streams large sheets)."""
    return Workbook(write_only=write_only)


def append_row(sheet: Any, values: Sequence[Any]) -> None:
    """Append ``values`` to ``sheet`` as typed cells: texts as strings (never formulas), numbers as numbers.

    Works on normal and write-only worksheets.
    """
    cells = []
    for value in values:
        value = xlsx_value(value)
        if isinstance(value, str):
            cell = WriteOnlyCell(sheet, value="") if _write_only(sheet) else Cell(sheet)
            cell._value = value  # set directly: the value setter would make '=…' a formula and '#N/A' an error
            cell.data_type = "s"
            cells.append(cell)
        else:
            cells.append(value)
    sheet.append(cells)


def _write_only(sheet: Any) -> bool:
    return bool(sheet.parent.write_only)  # the sheet of a write-only workbook


def save_workbook(book: Any, path: str | os.PathLike[str] | None = None) -> bytes | None:
    """Save ``book``: atomically to ``path``, or (without one) return the XLSX bytes."""
    if path is None:
        output = io.BytesIO()
        book.save(output)
        return output.getvalue()
    with atomic_file(path) as tmp:
        book.save(tmp)
    return None


# ---------------------------------------------------------------------------- tables of records


def write_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], path: str | os.PathLike[str], *, sheet: str = "sheet"
) -> None:
    """Write ``rows`` (dicts keyed by ``columns``) as ``.csv`` (:func:`write_csv`) or ``.xlsx``, atomically."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        write_csv(path, columns, ([row.get(c) for c in columns] for row in rows))
    elif suffix == ".xlsx":
        save_workbook(_table_book(rows, columns, sheet=sheet), path)
    else:
        raise ValueError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv or .xlsx")


def xlsx_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    sheet: str = "sheet",
    headers: Sequence[str] | None = None,
    preamble: Sequence[Sequence[Any]] = (),
) -> bytes:
    """The bytes of an XLSX workbook of one sheet: ``preamble`` lines, the header (``headers`` or
    ``columns``), then the rows, every cell typed as :func:`append_row` types it."""
    return save_workbook(_table_book(rows, columns, sheet=sheet, headers=headers, preamble=preamble))


def _table_book(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    sheet: str,
    headers: Sequence[str] | None = None,
    preamble: Sequence[Sequence[Any]] = (),
) -> Any:
    book = workbook(write_only=True)
    page = book.create_sheet(sheet)
    for line in preamble:
        append_row(page, line)
    append_row(page, list(headers or columns))
    for row in rows:
        append_row(page, [row.get(c) for c in columns])
    return book
