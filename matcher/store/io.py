"""Import and export of one kind of record as a CSV, JSONL or XLSX file.

An import is all or nothing: every problem is one :class:`ImportRejectedError` (file, row, column)
and nothing is imported.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from matcher.documents.writer import append_row, atomic_file, save_workbook, workbook, write_csv
from matcher.errors import ConflictError, LibraryError
from matcher.inputs.cells import cell_key
from matcher.inputs.files import Problem, TableError, read_rows
from matcher.store import audit
from matcher.store.checks import Checker, RecordError, check_kind, id_text, validate
from matcher.store.crud import check_stored, note_stage
from matcher.store.db import session_scope
from matcher.store.kinds import Kind, live_rows
from matcher.store.records import MODELS, header_map, to_utc_iso
from matcher.store.schema import utcnow
from matcher.store.transactions import bump_revision, translate_db_errors

logger = logging.getLogger(__name__)

__all__ = [
    "ImportRejectedError",
    "ImportReport",
    "export_file",
    "import_file",
]


_TIME_FIELDS = frozenset({"created_at", "decided_at"})  # a blank cell keeps the stored time


class ImportRejectedError(TableError):
    """An import file with invalid rows: ``problems`` lists every one (file, row, column); nothing was imported."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The problems as ``{"field", "row", "message"}`` (for an HTTP error body)."""
        return [{"field": p.column or "file", "row": p.row, "message": str(p)} for p in self.problems]


@dataclass(frozen=True)
class ImportReport:
    """What an import did: records created, updated (changed or undeleted) and unchanged."""

    created: int
    updated: int
    unchanged: int

    def __str__(self) -> str:
        return f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}"


def _map_headers(file: str, kind: str, headers: list[str], rows: list[tuple[int, list[Any]]]) -> dict[str, int]:
    aliases = header_map(kind)
    mapping: dict[str, int] = {}
    problems: list[Problem] = []
    for index, label in enumerate(headers):
        if not label.strip():
            if any(not _blank_cell(cells[index]) for _, cells in rows):
                problems.append(Problem(file, None, None, f"column {index + 1} has values but no header"))
            continue
        field = aliases.get(cell_key(label))
        if field is None:
            known = ", ".join(MODELS[kind].model_fields)
            problems.append(
                Problem(
                    file, None, label, f"unknown column {label!r} for {kind} (columns: {known}, or their Chinese names)"
                )
            )
        elif field in mapping:
            first = headers[mapping[field]]
            problems.append(
                Problem(file, None, label, f"columns {first!r} and {label!r} both mean {field!r}; keep one")
            )
        else:
            mapping[field] = index
    if not mapping and headers:
        shown = ", ".join(repr(h[:20]) for h in headers[:3]) + (", …" if len(headers) > 3 else "")
        message = (
            f"no column of this file is a column of {kind} (headers read: {shown}); "
            "is it the right file, saved as CSV UTF-8, JSONL or XLSX?"
        )
        raise ImportRejectedError([Problem(file, None, None, message)])
    if "id" not in mapping:
        problems.append(Problem(file, None, "id", "missing column 'id' (also accepted: '编号')"))
    if problems:
        raise ImportRejectedError(problems)
    return mapping


def _blank_cell(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _stored_equal(old: Any, new: Any) -> bool:
    if isinstance(old, float) and isinstance(new, float):
        return old == new or (math.isnan(old) and math.isnan(new))
    return old == new


@translate_db_errors
def import_file(kind: str, path: str | os.PathLike, *, url: str | None = None, actor: str = "cli") -> ImportReport:
    """Import one CSV/JSONL/XLSX file of ``kind``: upsert by id, all or nothing, in one transaction.

    Headers are matched with the kind's aliases (:mod:`matcher.store.records`). Every row is validated
    first (fields, taxonomy tags, references to live records); any problem raises
    :class:`ImportRejectedError` listing them all (file, row as the user sees it, column) and nothing is
    imported. Columns absent from the file keep their stored values for existing records (a blank
    ``created_at``/``decided_at`` too). Rows equal to the stored record are not written. A soft-deleted
    record with the id of a row is restored. Decisions are stored as given; no engagement is derived.

    A value the database refuses all the same is one :class:`ImportRejectedError` problem naming the
    row and the column, never the SQL or the value. The import is written to the audit log (``actor``,
    kind, file name, counts and the ids created or changed) in the same transaction.
    """
    spec = check_kind(kind)
    file = os.fspath(path)
    headers, raw_rows = read_rows(file)
    mapping = _map_headers(file, kind, headers, raw_rows)
    rows = [(number, cells) for number, cells in raw_rows if not all(_blank_cell(c) for c in cells)]
    if not rows:
        raise ImportRejectedError([Problem(file, None, None, "no data rows")])
    header_of = {field: headers[index] for field, index in mapping.items()}
    fields = list(MODELS[kind].model_fields)
    with session_scope(url) as session:
        existing = {r["id"]: r for r in live_rows(session, kind, live=False)}
        checker = Checker(session)
        checker.extra[kind] = {id_text(cells[mapping["id"]]) for _, cells in rows}
        problems: list[Problem] = []
        seen: dict[str, int] = {}
        creates: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        unchanged = 0
        word = "line" if Path(file).suffix.lower() in (".jsonl", ".ndjson") else "row"
        for number, cells in rows:
            data = {field: cells[index] for field, index in mapping.items()}
            record_id = id_text(data["id"])
            if record_id in seen:
                problems.append(
                    Problem(
                        file, number, header_of["id"], f"duplicate id {record_id!r} (first in {word} {seen[record_id]})"
                    )
                )
                continue
            seen[record_id] = number
            old = existing.get(record_id)
            if old is not None:
                merged = {name: old[name] for name in fields}
                merged.update({k: v for k, v in data.items() if not (k in _TIME_FIELDS and _blank_cell(v))})
                data = merged
            try:
                values = validate(session, kind, data, checker)
                if spec.check is not None:  # events, attendees: against the stored state (not the file's other rows)
                    check_stored(session, spec, values, session.get(spec.table, record_id) if old else None)
            except ConflictError as error:
                problems.append(Problem(file, number, None, str(error)))
                continue
            except RecordError as error:
                for item in error.errors:
                    column = header_of.get(item["field"], item["field"])
                    message = item["message"]
                    message = message.removeprefix(f"{item['field']}: ")  # the column names the field
                    if item["field"] not in header_of and message == "is required":
                        message += f" (the file has no {item['field']!r} column)"
                    problems.append(Problem(file, number, column, message))
                continue
            if old is None:
                creates.append(values)
            elif old.get("deleted_at") is not None or any(not _stored_equal(old[k], values[k]) for k in fields):
                updates.append(values)
            else:
                unchanged += 1
        if problems:
            raise ImportRejectedError(problems)
        now = utcnow()
        if spec.soft_delete:
            for values in (*creates, *updates):
                values["updated_at"] = now
                values["deleted_at"] = None
        creates.sort(key=lambda v: v["id"])
        updates.sort(key=lambda v: v["id"])
        _write_import(session, spec, creates, updates, file, seen, header_of)
        if kind == "organisations":  # the stage history follows imported stages too
            for values in creates:
                note_stage(session, values["id"], values["stage"], values.get("admitted_on"))
            for values in updates:
                if existing[values["id"]]["stage"] != values["stage"]:
                    note_stage(session, values["id"], values["stage"])
        if creates or updates:  # an import that changes nothing is no edit
            bump_revision(session)
            audit.record(
                session,
                actor=actor,
                action="import",
                kind=kind,
                detail={
                    "file": Path(file).name,
                    "created": len(creates),
                    "updated": len(updates),
                    "unchanged": unchanged,
                    "created_ids": [v["id"] for v in creates],
                    "updated_ids": [v["id"] for v in updates],
                },
            )
    report = ImportReport(len(creates), len(updates), unchanged)
    logger.info("imported %s into %s: %s", file, kind, report)
    return report


def _write_import(
    session: Session,
    spec: Kind,
    creates: list[dict[str, Any]],
    updates: list[dict[str, Any]],
    file: str,
    rows: dict[str, int],
    header_of: dict[str, str],
) -> None:
    """Insert ``creates`` and update ``updates``; a refused value is an :class:`ImportRejectedError` naming row and column.

    The writes run in a savepoint; when the database refuses them, each row is tried alone (and then
    with one field at a time set to a blank value) to find the row and field to name.
    """
    try:
        with session.begin_nested():
            if creates:
                session.execute(insert(spec.table), creates)
            if updates:
                session.execute(update(spec.table), updates)
    except (OperationalError, InterfaceError):
        raise
    except DBAPIError as error:
        logger.info("the database refused an import of %s: %s", file, type(getattr(error, "orig", error)).__name__)
        statement = [(insert(spec.table), values) for values in creates] + [(update(spec.table), v) for v in updates]
        for query, values in statement:
            if _refused(session, query, values):
                field = next((f for f in values if f != "id" and not _refused(session, query, _blank(values, f))), None)
                column = header_of.get(field, field) if field else None
                reason = type(getattr(error, "orig", error)).__name__
                message = f"the database refused {'this value' if field else 'this row'} ({reason})"
                raise ImportRejectedError([Problem(file, rows.get(values["id"]), column, message)]) from None
        raise ImportRejectedError([Problem(file, None, None, "the database refused the import")]) from None


def _refused(session: Session, query: Any, values: dict[str, Any]) -> bool:
    """Whether the database refuses ``query`` with ``values`` (tried in a savepoint that is always rolled back)."""
    nested = session.begin_nested()
    try:
        session.execute(query, [values])
    except DBAPIError:
        return True
    finally:
        nested.rollback()
    return False


def _blank(values: dict[str, Any], field: str) -> dict[str, Any]:
    value = values[field]
    blank = [] if isinstance(value, list) else "" if isinstance(value, str) else None
    return {**values, field: blank}



# =========================================================================== export


def _export_rows(session: Session, kind: str) -> list[dict[str, Any]]:
    return live_rows(session, kind, live=True)


def _cell(value: Any, *, lists_as_text: bool) -> Any:
    if isinstance(value, datetime):
        return to_utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ";".join(value) if lists_as_text else list(value)
    return value


@translate_db_errors
def export_file(kind: str, path: str | os.PathLike, *, url: str | None = None, actor: str = "cli") -> int:
    """Write the live records of ``kind`` to ``path`` (``.csv`` UTF-8 with BOM, ``.jsonl`` or ``.xlsx``).

    Columns are those of ``data/<kind>.csv`` (decisions add ``comment, model_version, score``); lists
    are joined with ``;`` in CSV and XLSX and are arrays in JSONL; times are UTC ISO 8601 with ``Z``.
    Importing the file again changes nothing. Cells are written by :mod:`matcher.documents.writer` (typed
    XLSX text, CSV texts that could start a formula quoted). An export of experts with phone or
    e-mail is audited as a view of their contact details by ``actor``. Returns the number of
    records written.
    """
    spec = check_kind(kind)
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson", ".xlsx"):
        raise LibraryError(f"{target}: unsupported file type {suffix or '(none)'!r}; use .csv, .jsonl or .xlsx")
    with session_scope(url) as session:
        rows = _export_rows(session, kind)
        if kind == "experts":
            shown = [r["id"] for r in rows if r.get("phone") or r.get("email")]
            if shown:
                audit.record(
                    session,
                    actor=actor,
                    action="view_contacts",
                    kind="experts",
                    detail={"ids": shown, "export": target.name},
                )
    columns = list(spec.columns)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        write_csv(target, columns, ([_cell(r[c], lists_as_text=True) for c in columns] for r in rows))
    elif suffix == ".xlsx":
        book = workbook(write_only=True)
        sheet = book.create_sheet(kind)
        append_row(sheet, columns)
        for r in rows:
            append_row(sheet, [_cell(r[c], lists_as_text=True) for c in columns])
        save_workbook(book, target)
    else:
        with atomic_file(target) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as handle:
            for r in rows:
                record = {c: _cell(r[c], lists_as_text=False) for c in columns}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    logger.info("exported %d %s to %s", len(rows), kind, target)
    return len(rows)
