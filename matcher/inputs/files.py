"""Read and validate one user-supplied library file (CSV, JSONL or XLSX).

This is the input side of the ``matcher batch`` file contract: every row has an ``id`` and
either ``text`` or ``title``/``description``; ``name``, ``tags``, ``counties``, ``org_id``,
``capacity`` and ``available`` are optional; other columns are ignored. Common Chinese
headers are accepted as aliases. Problems are reported with the file, the row as the user
sees it (CSV/XLSX: row 1 is the first line after the header; JSONL: the physical line
number) and the column header as written in the file.

CSV cells are read back as :mod:`matcher.documents.writer` wrote them: the one leading ``'`` it puts before
a text that begins with ``=``, ``+``, ``-``, ``@``, tab or carriage return is stripped
(:func:`matcher.documents.writer.unescape_csv`). A file that is binary, Big5 read as GB18030, or an XLSX
whose formulas carry no saved value is refused with one problem. Ids may not begin with ``=``,
``+``, ``-`` or ``@``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO, StringIO
from pathlib import Path
from typing import Any, NoReturn

import openpyxl
import pandas as pd

from matcher.documents.writer import FORMULA_TRIGGERS, unescape_csv, write_csv
from matcher.errors import LibraryError
from matcher.inputs.cells import HEADER_ALIASES, cell_key, cell_text, split_items, yes_no

logger = logging.getLogger(__name__)

#: Columns of :attr:`Table.frame`, in order.
COLUMNS: tuple[str, ...] = (
    "row",
    "id",
    "name",
    "text",
    "tags",
    "counties",
    "org_id",
    "org_name",
    "capacity",
    "available",
)
#: Optional canonical columns; :attr:`Table.present` is a subset of these.
OPTIONAL_COLUMNS: frozenset[str] = frozenset(
    {"name", "tags", "counties", "org_id", "org_name", "capacity", "available"}
)
_CANONICAL: frozenset[str] = OPTIONAL_COLUMNS | {"id", "title", "description", "text"}
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_SUPPORTED = "CSV (.csv), JSONL (.jsonl, .ndjson) or Excel (.xlsx)"
_CAPACITY = re.compile(r"[0-9]+(?:\.0*)?")
_RESERVED = frozenset({"file", "row", "reason"})  # meta columns of the rejects outputs
_CSV_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_CSV_EOF = re.compile(r"EOF inside string starting at row (\d+)")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a library file.

    Attributes
    ----------
    file : str
        The path as given.
    row : int or None
        User-visible row number (JSONL: line number); None for file-level problems.
    column : str or None
        The column header as written in the file (canonical name if the column is missing).
    message : str
        What is wrong.
    """

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        if self.row is None:
            return f"{self.file}: {self.message}"
        where = f"{_row_word(self.file)} {self.row}"
        if self.column is not None:
            where += f", column '{self.column}'"
        return f"{self.file}: {where}: {self.message}"


class TableError(LibraryError):
    """A library file cannot be used; ``problems`` lists everything found.

    ``str()`` is the first problem, plus ``(and N more)`` when there are several.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        text = str(self.problems[0]) if self.problems else "invalid library file"
        if len(self.problems) > 1:
            text += f" (and {len(self.problems) - 1} more)"
        super().__init__(text)


@dataclass
class Table:
    """A validated library file.

    Attributes
    ----------
    path : str
        The path as given.
    frame : pandas.DataFrame
        Valid rows with columns :data:`COLUMNS`; ``tags``/``counties`` hold lists of str,
        ``org_id`` str or None, ``capacity`` is ``Int64`` (``<NA>`` when blank),
        ``available`` bool.
    rejects : pandas.DataFrame
        Invalid rows (only with ``skip_invalid``): ``row``, the input columns as in the file,
        ``reason``.
    ignored_columns : list of str
        Input columns that are not part of the contract.
    present : frozenset of str
        Optional canonical columns present in the file.
    problems : list of Problem
        Row problems found (the rows in ``rejects``).
    """

    path: str
    frame: pd.DataFrame
    rejects: pd.DataFrame
    ignored_columns: list[str] = field(default_factory=list)
    present: frozenset[str] = frozenset()
    problems: list[Problem] = field(default_factory=list)


@dataclass
class _Raw:
    """Cells as read: one label per column and ``(row number, cells)`` per non-blank row."""

    headers: list[str]
    rows: list[tuple[int, list[Any]]]


def read_table(path: str | os.PathLike[str], *, skip_invalid: bool = False) -> Table:
    """Read and validate one library file.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv``, ``.jsonl``/``.ndjson`` or ``.xlsx`` file (first sheet).
    skip_invalid : bool
        Put invalid rows into ``rejects`` instead of raising.

    Returns
    -------
    Table

    Raises
    ------
    TableError
        On any file-level problem; on row problems unless ``skip_invalid``; and when no
        valid row remains.
    """
    file = os.fspath(path)
    return _validate(file, _read_raw(file), skip_invalid)


def read_rows(path: str | os.PathLike[str]) -> tuple[list[str], list[tuple[int, list[Any]]]]:
    """Read the cells of one ``.csv``, ``.jsonl``/``.ndjson`` or ``.xlsx`` file without validating them.

    Returns the header labels and ``(row number as the user sees it, cells)`` per row, with the
    same encodings, row numbers and file-level errors (:class:`TableError`) as :func:`read_table`.
    """
    raw = _read_raw(os.fspath(path))
    return raw.headers, raw.rows


def _read_raw(file: str) -> _Raw:
    """The cells of ``file``, read by its format (chosen by the extension)."""
    suffix = Path(file).suffix.lower()
    if suffix not in (".csv", ".xlsx", *_JSONL_SUFFIXES):
        _fail(file, f"unsupported file type '{suffix or '(none)'}'; use {_SUPPORTED}")
    if suffix == ".xlsx":
        return _read_xlsx(file)
    data = _read_bytes(file)
    return _read_jsonl(file, data) if suffix in _JSONL_SUFFIXES else _read_csv(file, data)


def write_rejects(tables: Sequence[Table], path: str | os.PathLike[str]) -> None:
    """Write the rejected rows of ``tables`` to one CSV file (UTF-8 with BOM), atomically.

    Columns are ``file``, ``row``, the union of the input columns (in order of first
    appearance) and ``reason``.

    Parameters
    ----------
    tables : sequence of Table
        Tables read with ``skip_invalid=True``.
    path : str or os.PathLike
        Output file; replaced via a temporary file in the same directory.
    """
    tables = list(tables)
    inputs: dict[str, None] = {}
    for table in tables:
        inputs.update(dict.fromkeys(c for c in table.rejects.columns if c not in _RESERVED))
    header = ["file", "row", *inputs, "reason"]
    target = Path(os.fspath(path))

    def rows() -> Iterator[list[Any]]:
        for table in tables:
            for record in table.rejects.to_dict("records"):
                record["file"] = table.path
                yield [_blank_if_missing(record.get(c)) for c in header]

    write_csv(target, header, rows())
    logger.info("wrote %d rejected rows to %s", sum(len(t.rejects) for t in tables), target)


# --------------------------------------------------------------------------- reading


def _fail(file: str, message: str, row: int | None = None, column: str | None = None) -> NoReturn:
    raise TableError([Problem(file, row, column, message)])


def _row_word(file: str) -> str:
    return "line" if Path(file).suffix.lower() in _JSONL_SUFFIXES else "row"


def _read_bytes(file: str) -> bytes:
    try:
        return Path(file).read_bytes()
    except FileNotFoundError:
        _fail(file, "file not found")
    except IsADirectoryError:
        _fail(file, "is a directory, not a file")
    except OSError as exc:
        _fail(file, f"cannot read the file: {exc.strerror or exc}")


def _decode(file: str, data: bytes, *, csv_rows: bool) -> str:
    """Decode as UTF-8 (BOM optional), else GB18030; name the row of undecodable bytes."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    prefix = data[: utf8_error.start].decode("utf-8-sig")
    line = prefix.count("\n") + 1
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        pass
    else:
        if not _looks_simplified(text):
            _fail(file, "not UTF-8, and read as GB18030 it is mostly rare characters (Big5?); save the file as UTF-8")
        # a file that is valid UTF-8 up to a late bad byte is more likely damaged UTF-8
        log = logger.warning if not prefix.isascii() else logger.info
        log("%s: not UTF-8 (line %d), read as GB18030", file, line)
        return text
    message = "cannot decode the bytes as UTF-8 or GB18030; save the file as UTF-8"
    if not csv_rows:
        _fail(file, message, row=line)
    row = _csv_records(prefix.lstrip("\ufeff \t\r\n"))
    if row == 0:
        _fail(file, f"{message} (in the header line)")
    _fail(file, f"{message} (line {line} of the file)", row=row)


def _looks_simplified(text: str) -> bool:
    """Whether most non-ASCII characters of ``text`` are in GB2312 (true of Chinese read with the right encoding).

    Big5 or Shift-JIS bytes read as GB18030 give mostly rare characters outside GB2312.
    """
    wide = [c for c in text[:20000] if ord(c) > 127]
    if not wide:
        return True
    rare = 0
    for char in wide:
        try:
            char.encode("gb2312")
        except UnicodeEncodeError:
            rare += 1
    return rare * 3 <= len(wide)


def _csv_records(text: str) -> int:
    """Count the records ended in CSV ``text`` (newlines inside quoted cells do not count)."""
    records, quoted, cell_start = 0, False, True
    for token in re.findall(r'""|"|,|\n|[^",\n]+', text):
        if quoted:
            quoted = token != '"'
        elif token == ",":
            cell_start = True
        elif token == "\n":
            records, cell_start = records + 1, True
        else:
            quoted = token == '"' and cell_start
            cell_start = False
    return records


def _read_csv(file: str, data: bytes) -> _Raw:
    head = data[:65536]
    controls = sum(head.count(bytes([c])) for c in (*range(0, 9), 11, 12, *range(14, 32)))
    if controls * 20 > len(head):  # a stray control character is a cell's problem; this many, a binary file
        _fail(file, "holds binary data, not CSV text (UTF-16 or a binary file?); save the file as CSV UTF-8")
    text = _decode(file, data, csv_rows=True).lstrip("\ufeff \t\r\n")
    try:
        frame = pd.read_csv(
            StringIO(text),
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
        )
    except pd.errors.EmptyDataError:
        _fail(file, "the file is empty")
    except pd.errors.ParserError as exc:
        _csv_parse_error(file, exc)
    records = [[unescape_csv(cell) for cell in record] for record in frame.to_numpy(dtype=object).tolist()]
    return _Raw(_labels(records[0]), [(n, cells) for n, cells in enumerate(records[1:], 1)])


def _csv_parse_error(file: str, exc: Exception) -> NoReturn:
    if match := _CSV_FIELDS.search(str(exc)):
        expected, line, saw = (int(g) for g in match.groups())
        _fail(
            file,
            f"{saw} cells but the header has {expected}; quote cells that contain commas",
            row=line - 1,
        )
    if match := _CSV_EOF.search(str(exc)):
        _fail(file, "a quoted cell is never closed", row=int(match.group(1)))
    _fail(file, f"cannot parse the CSV: {exc}")


def _read_jsonl(file: str, data: bytes) -> _Raw:
    text = _decode(file, data, csv_rows=False)
    objects: list[tuple[int, dict[str, Any]]] = []
    keys: dict[str, None] = {}
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            _fail(file, f"malformed JSON: {exc.msg} (column {exc.colno})", row=number)
        if not isinstance(obj, dict):
            _fail(file, f"not a JSON object (got {type(obj).__name__})", row=number)
        keys.update(dict.fromkeys(obj))
        objects.append((number, obj))
    if not objects:
        _fail(file, "the file is empty")
    headers = list(keys)
    return _Raw(headers, [(n, [obj.get(k) for k in headers]) for n, obj in objects])


def _read_xlsx(file: str) -> _Raw:
    data = _read_bytes(file)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(BytesIO(data), read_only=True, data_only=True)
            try:
                if not workbook.worksheets:
                    _fail(file, "the workbook has no sheets")
                records = [list(r) for r in workbook.worksheets[0].iter_rows(values_only=True)]
            finally:
                workbook.close()
            _check_formulas(file, data, records)
    except TableError:
        raise
    except Exception as exc:  # openpyxl raises many types for corrupt files
        _fail(file, f"cannot read the Excel file: {exc}")
    while records and _blank_row(records[0]):
        records.pop(0)
    if not records:
        _fail(file, "the first sheet is empty")
    width = max(len(r) for r in records)
    records = [r + [None] * (width - len(r)) for r in records]
    return _Raw(_labels(records[0]), [(n, cells) for n, cells in enumerate(records[1:], 1)])


def _check_formulas(file: str, data: bytes, values: list[list[Any]]) -> None:
    """Fail on the first formula cell without a saved value (a file written by a program, never opened in Excel)."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/") and n.endswith(".xml")]
            if not any(re.search(rb"<f[ >/]", archive.read(n)) for n in sheets):
                return
    except (zipfile.BadZipFile, KeyError):
        return
    workbook = openpyxl.load_workbook(BytesIO(data), read_only=True, data_only=False)
    try:
        for number, row in enumerate(workbook.worksheets[0].iter_rows()):
            for column, cell in enumerate(row):
                cached = values[number][column] if number < len(values) and column < len(values[number]) else None
                if getattr(cell, "data_type", None) == "f" and cached is None:
                    _fail(
                        file,
                        f"cell {cell.coordinate} holds a formula with no saved value; open and save the file in Excel, "
                        "or replace the formula by its value",
                    )
    finally:
        workbook.close()


def _labels(header: list[Any]) -> list[str]:
    return [cell_text(h).strip() for h in header]


# ------------------------------------------------------------------------ validation


def _map_columns(file: str, raw: _Raw) -> tuple[dict[str, int], list[str], list[str]]:
    """Return canonical name → column index, the ignored labels and the rejects labels."""
    mapping: dict[str, int] = {}
    ignored: list[str] = []
    names: list[str] = []
    for index, label in enumerate(raw.headers):
        key = cell_key(label)
        canonical = key if key in _CANONICAL else HEADER_ALIASES["table"].get(key)
        name = label or f"(column {index + 1})"
        if canonical is not None:
            if canonical in mapping:
                first = raw.headers[mapping[canonical]]
                _fail(
                    file,
                    f"columns '{first}' and '{label}' both mean '{canonical}'; keep only one",
                    column=label,
                )
            mapping[canonical] = index
        elif not label and all(_blank(cells[index]) for _, cells in raw.rows):
            name = ""  # an empty column without a header: drop silently
        elif name not in ignored:
            ignored.append(name)
        if name and (name in names or name in _RESERVED):
            name = f"{name} (column {index + 1})"
        names.append(name)
    if "id" not in mapping:
        _fail(file, "missing column 'id' (also accepted: '编号')", column="id")
    if not {"text", "title", "description"} & mapping.keys():
        _fail(
            file,
            "missing column 'text' (also accepted: 'title' and/or 'description', '文本', '标题', '描述')",
            column="text",
        )
    return mapping, ignored, names


def _validate(file: str, raw: _Raw, skip_invalid: bool) -> Table:
    mapping, ignored, names = _map_columns(file, raw)
    rows = [(n, cells) for n, cells in raw.rows if not _blank_row(cells)]
    if not rows:
        _fail(file, "no data rows")
    if ignored:
        logger.info("%s: ignoring columns %s", file, ", ".join(ignored))
    word = _row_word(file)
    header = {canonical: raw.headers[index] for canonical, index in mapping.items()}
    seen: dict[str, int] = {}
    good: list[dict[str, Any]] = []
    rejected: list[list[Any]] = []
    problems: list[Problem] = []
    for number, cells in rows:
        values = {canonical: cells[index] for canonical, index in mapping.items()}
        record, found = _parse_row(file, number, values, header)
        if record["id"]:
            if record["id"] in seen:
                message = f"duplicate id '{record['id']}' (first in {word} {seen[record['id']]})"
                found.insert(0, Problem(file, number, header["id"], message))
            else:
                seen[record["id"]] = number
        if found:
            problems.extend(found)
            reason = "; ".join(f"{p.column}: {p.message}" for p in found)
            shown = [cell_text(c) for c, name in zip(cells, names, strict=True) if name]
            rejected.append([number, *shown, reason])
        else:
            good.append(record)
    if problems and not skip_invalid:
        raise TableError(problems)
    if not good:
        summary = Problem(file, None, None, f"no valid rows: all {len(rows)} rows are invalid")
        raise TableError([summary, *problems])
    if rejected:
        logger.warning("%s: skipped %d invalid rows", file, len(rejected))
    return Table(
        path=file,
        frame=_frame(good),
        rejects=pd.DataFrame(rejected, columns=["row", *(n for n in names if n), "reason"], dtype=object),
        ignored_columns=ignored,
        present=frozenset(mapping) & OPTIONAL_COLUMNS,
        problems=problems,
    )


def _parse_row(
    file: str, number: int, values: dict[str, Any], header: dict[str, str]
) -> tuple[dict[str, Any], list[Problem]]:
    """Convert one row's canonical cells; return the record and its problems."""
    found: list[Problem] = []
    record_id = cell_text(values.get("id")).strip()
    if not record_id:
        found.append(Problem(file, number, header["id"], "empty id"))
    elif record_id.startswith(FORMULA_TRIGGERS):
        found.append(Problem(file, number, header["id"], f"id {record_id!r} must not begin with = + - @"))
    title = cell_text(values.get("title")).strip()
    text = cell_text(values.get("text")).strip()
    if not text:
        parts = (title, cell_text(values.get("description")).strip())
        text = "\n".join(p for p in parts if p)
    if not text:
        sources = [header[c] for c in ("text", "title", "description") if c in header]
        message = "empty text"
        if len(sources) > 1:
            quoted = [f"'{s}'" for s in sources]
            both = "both" if len(sources) == 2 else "all"
            message += f" ({', '.join(quoted[:-1])} and {quoted[-1]} are {both} empty)"
        found.append(Problem(file, number, sources[0], message))
    capacity: int | None = None
    cell = cell_text(values.get("capacity"))
    normal = unicodedata.normalize("NFKC", cell).strip()
    if normal:
        if _CAPACITY.fullmatch(normal):
            capacity = int(normal.split(".")[0])
        else:
            message = f"capacity must be a whole number of 0 or more, not '{cell.strip()}'"
            found.append(Problem(file, number, header["capacity"], message))
    cell = cell_text(values.get("available"))
    available = yes_no(cell)
    if available is None:
        available = True
        if cell_key(cell):
            message = f"available must be yes or no (true/false, 1/0, y/n, 是/否, 可用/不可用), not '{cell.strip()}'"
            found.append(Problem(file, number, header["available"], message))
    record = {
        "row": number,
        "id": record_id,
        "name": cell_text(values.get("name")).strip() or title or record_id,
        "text": text,
        "tags": _items(values.get("tags")),
        "counties": _items(values.get("counties")),
        "org_id": cell_text(values.get("org_id")).strip() or None,
        "org_name": cell_text(values.get("org_name")).strip() or None,
        "capacity": capacity,
        "available": available,
    }
    return record, found


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    def column(name: str) -> list[Any]:
        return [r[name] for r in records]

    data = {name: pd.Series(column(name), dtype=object) for name in COLUMNS}
    data["row"] = pd.Series(column("row"), dtype="int64")
    data["capacity"] = pd.Series(pd.array(column("capacity"), dtype="Int64"))
    data["available"] = pd.Series(column("available"), dtype=bool)
    return pd.DataFrame(data, columns=list(COLUMNS))


# ---------------------------------------------------------------------------- values



def _items(value: Any) -> list[str]:
    """A list cell: JSON list, or a string separated by ``;``, ``；`` or ``、`` (:func:`~matcher.inputs.cells.split_items`)."""
    if isinstance(value, list):
        return [s.strip() for s in map(cell_text, value) if s.strip()]
    return split_items(cell_text(value))


def _blank(value: Any) -> bool:
    return value is None or value == [] or not cell_text(value).strip()


def _blank_row(cells: list[Any]) -> bool:
    return all(_blank(c) for c in cells)


def _blank_if_missing(value: Any) -> Any:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value
