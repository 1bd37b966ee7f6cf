"""Tables people open in Excel or WPS: CSV (UTF-8 with BOM) and XLSX, every text cell formula-safe.

Cells are untrusted: a text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
would be run as a formula by a spreadsheet, so it is written with a leading ``'`` (:func:`safe_cell`);
characters XLSX cannot hold are dropped. Files are written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["safe_cell", "write_rows", "xlsx_bytes"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: a leading ``= + - @`` (or tab/CR) is quoted with ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def write_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: Path, *, sheet: str = "sheet") -> None:
    """Write ``rows`` (dicts keyed by ``columns``) atomically as ``.csv`` or ``.xlsx``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ValueError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv or .xlsx")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if suffix == ".csv":
            with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(columns)
                writer.writerows([safe_cell("" if r.get(c) is None else r.get(c)) for c in columns] for r in rows)
        else:
            os.close(fd)
            Path(tmp).write_bytes(xlsx_bytes(rows, columns, sheet=sheet))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def xlsx_bytes(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    sheet: str = "sheet",
    headers: Sequence[str] | None = None,
    preamble: Sequence[Sequence[Any]] = (),
) -> bytes:
    """An XLSX workbook of one sheet: ``preamble`` lines, the header (``headers`` or ``columns``), the rows."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def clean(value: Any) -> Any:
        return safe_cell(ILLEGAL_CHARACTERS_RE.sub("", value)) if isinstance(value, str) else value

    workbook = Workbook(write_only=True)
    page = workbook.create_sheet(sheet)
    for line in preamble:
        page.append([clean(v) for v in line])
    page.append([clean(h) for h in (headers or columns)])
    for row in rows:
        page.append([clean(row.get(c)) for c in columns])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
