"""The libraries in the database: seeding, frames for the model, CRUD, feedback, import and export.

Pure SQLAlchemy, no Flask. Every function that takes a ``session`` works inside the caller's
transaction (see :func:`transaction`); every write bumps ``Revision.value`` (row 1) in that same
transaction, so caches keyed by :func:`revision` see each change exactly once. Functions that take a
``url`` open and commit their own transaction.

Concurrency: SQLite transactions start with ``BEGIN IMMEDIATE`` (one writer at a time); on PostgreSQL
the capacity check locks the target row (``SELECT … FOR UPDATE``) and seeding runs under an advisory
lock, so two workers starting at once fill an empty database once.

Errors: :class:`RecordError` (a :class:`~matcher.errors.LibraryError` with ``errors = [{field,
message}]``) for invalid records, :class:`ImportRejectedError` for invalid import files (every problem,
nothing imported), :class:`~matcher.errors.NotFoundError`, :class:`~matcher.errors.ConflictError`, and
:class:`~matcher.errors.DatabaseUnavailableError` for an unreachable database (:func:`database_errors`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import math
import os
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from pydantic import ValidationError
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from matcher.documents.writer import append_row, atomic_file, save_workbook, workbook, write_csv
from matcher.errors import ConflictError, DatabaseUnavailableError, FieldError, LibraryError, NotFoundError
from matcher.inputs.files import Problem, TableError, read_rows
from matcher.inputs.library import FILES, OPTIONAL_COLUMNS, Libraries, check_data_dir, load_libraries, load_places
from matcher.rules import conflict_of_interest, free_places
from matcher.store import audit
from matcher.store import events as event_rules
from matcher.store.db import database_url, engine_for, session_scope, upgrade
from matcher.store.records import (
    ATTENDEE_STATUSES,
    EVENT_KINDS,
    EVENT_STATUSES,
    FILE_KINDS,
    KINDS,
    MILESTONE_STATUSES,
    MODELS,
    NEED_STATUSES,
    ORG_STATUSES,
    STAGES,
    URGENCIES,
    FeedbackIn,
    OutcomeIn,
    canonical_value,
    field_errors,
    header_key,
    header_map,
    to_local_iso,
    to_utc_iso,
)
from matcher.store.schema import (
    Attendee,
    Base,
    Decision,
    Engagement,
    Event,
    Expert,
    Milestone,
    Need,
    Organisation,
    Outcome,
    Project,
    Resource,
    Revision,
    StageStep,
    Tag,
    utcnow,
)
from matcher.text.privacy import index_text
from matcher.text.segment import normalise, segment, split_list

logger = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "ImportRejectedError",
    "ImportReport",
    "RecordError",
    "bump_revision",
    "counts",
    "create_record",
    "database_errors",
    "delete_record",
    "ensure_database",
    "export_file",
    "get_record",
    "import_file",
    "list_engagements",
    "list_records",
    "load_libraries_db",
    "new_decision_id",
    "next_need_id",
    "peek_revision",
    "record_feedback",
    "replace_record",
    "revision",
    "set_outcome",
    "transaction",
    "translate_db_errors",
    "update_engagement_status",
]

#: Keys of the item dicts this module returns that are not fields of the records; accepted and
#: ignored on input so that a record read with GET can be sent back with PUT.
READ_ONLY_FIELDS = frozenset({"updated_at", "open_engagements", "relevance"})
#: The test-only hook: seconds ``import_file`` sleeps inside its transaction, before commit.
IMPORT_PAUSE_ENV = "MATCHER_TEST_IMPORT_PAUSE"

_MIGRATE_LOCK = 0x6D61_7463_6801  # pg_advisory_lock keys ("match" + 1/2)
_SEED_LOCK = 0x6D61_7463_6802
_MAX_PER_PAGE = 1000


@dataclass(frozen=True)
class _Kind:
    name: str
    table: type[Base]
    noun: str
    columns: tuple[str, ...]  # export columns, as in data/<name>.csv
    tags: str | None  # the taxonomy-valued list field
    soft_delete: bool = True
    # checks against the stored state: (session, values, stored row or None) -> reference problems
    check: Callable[[Session, dict[str, Any], Any], list[dict[str, str]]] | None = None


_KINDS: dict[str, _Kind] = {
    "organisations": _Kind(
        "organisations",
        Organisation,
        "organisation",
        (*FILES["organisations"], *OPTIONAL_COLUMNS["organisations"]),
        None,
    ),
    "needs": _Kind("needs", Need, "need", FILES["needs"], "tags"),
    "experts": _Kind("experts", Expert, "expert", FILES["experts"], "specialties"),
    "resources": _Kind(
        "resources", Resource, "resource", (*FILES["resources"], *OPTIONAL_COLUMNS["resources"]), "tags"
    ),
    "projects": _Kind("projects", Project, "project", FILES["projects"], "tags"),
    "decisions": _Kind(
        "decisions",
        Decision,
        "decision",
        (*FILES["decisions"], "comment", "model_version", "score"),
        None,
        soft_delete=False,
    ),
    "events": _Kind(
        "events",
        Event,
        "event",
        tuple(MODELS["events"].model_fields),
        "tags",
        check=event_rules.check_event,
    ),
    "attendees": _Kind(
        "attendees",
        Attendee,
        "attendee",
        tuple(MODELS["attendees"].model_fields),
        None,
        check=event_rules.check_attendee,
    ),
    "stages": _Kind("stages", StageStep, "stage step", tuple(MODELS["stages"].model_fields), None),
    "milestones": _Kind("milestones", Milestone, "milestone", tuple(MODELS["milestones"].model_fields), None),
}
_TARGETS: dict[str, type[Base]] = {"expert": Expert, "resource": Resource, "project": Project}
_TARGET_KIND = {"expert": "experts", "resource": "resources", "project": "projects"}
_TIME_FIELDS = frozenset({"created_at", "decided_at"})
_ALL_KINDS = (*KINDS, *EVENT_KINDS, *FILE_KINDS)


# =========================================================================== errors


class RecordError(FieldError):
    """An invalid record: ``errors`` lists ``{"field", "message"}``; each message names its field."""


class ImportRejectedError(TableError):
    """An import file with invalid rows: ``problems`` lists every one (file, row, column); nothing was imported."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The problems as ``{"field", "row", "message"}`` (for an HTTP error body)."""
        return [{"field": p.column or "file", "row": p.row, "message": str(p)} for p in self.problems]


def _describe(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"the SQLite database {parsed.database or ':memory:'}"
    port = parsed.port or {"postgresql": 5432, "mysql": 3306}.get(parsed.get_backend_name(), "")
    name = f" {parsed.database!r}" if parsed.database else ""
    return f"the {parsed.get_backend_name()} database{name} at {parsed.host or 'localhost'}:{port}"


@contextmanager
def database_errors(url: str | None = None) -> Iterator[None]:
    """Turn SQLAlchemy ``OperationalError``/``InterfaceError`` into :class:`DatabaseUnavailableError`.

    The message names the host and port (or the SQLite file) and the driver's reason, never the password.
    """
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        first = reason[0] if reason else type(error).__name__
        raise DatabaseUnavailableError(f"cannot use {_describe(url or database_url())}: {first}") from error


F = TypeVar("F", bound=Callable[..., Any])


def translate_db_errors(function: F) -> F:
    """Decorator form of :func:`database_errors` for functions with a ``url`` keyword argument."""

    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        url = signature.bind_partial(*args, **kwargs).arguments.get("url")
        with database_errors(url):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextmanager
def transaction(url: str | None = None) -> Iterator[Session]:
    """A session in one transaction (commit on success, rollback on error), database errors translated."""
    with database_errors(url), session_scope(url) as session:
        yield session


# =========================================================================== revision


def revision(session: Session) -> int:
    """The libraries' revision: bumped by every write (0 for a database never written)."""
    return session.scalar(select(Revision.value).where(Revision.id == 1)) or 0


def peek_revision(url: str | None = None) -> int:
    """The libraries' revision, read without a transaction (no write lock on SQLite): for caches.

    One ``SELECT`` on a pooled connection; :class:`DatabaseUnavailableError` when unreachable.
    """
    url = url or database_url()
    engine = engine_for(url)
    raw = None
    try:
        with database_errors(url):
            raw = engine.raw_connection()
            cursor = raw.cursor()
            try:
                cursor.execute("SELECT value FROM revision WHERE id = 1")
                row = cursor.fetchone()
            finally:
                cursor.close()
            raw.rollback()  # end the implicit transaction of drivers that open one (psycopg)
    except engine.dialect.loaded_dbapi.Error as error:  # raw connections raise the driver's errors
        if raw is not None:
            raw.invalidate(error)  # never hand this connection out again
        reason = str(error).strip().splitlines()
        raise DatabaseUnavailableError(
            f"cannot use {_describe(url)}: {reason[0] if reason else type(error).__name__}"
        ) from error
    finally:
        if raw is not None:
            raw.close()
    return int(row[0]) if row and row[0] is not None else 0


def bump_revision(session: Session) -> None:
    """Bump the libraries' revision in ``session``'s transaction: every write to the libraries calls it."""
    result = session.execute(update(Revision).where(Revision.id == 1).values(value=Revision.value + 1))
    if result.rowcount == 0:
        session.add(Revision(id=1, value=1))
    session.flush()


# =========================================================================== seeding


@translate_db_errors
def ensure_database(url: str | None = None, data_dir: str | os.PathLike | None = None) -> bool:
    """Migrate the database to head and, when it has no organisations, fill it from ``data_dir``.

    Fills the taxonomy, every kind and the decisions, and derives the engagements from the history:
    a (need, target) pair whose last decision is ``accepted`` is an open engagement, ``completed`` or
    ``cancelled`` after ``accepted`` a closed one. Safe when several processes call it at once.

    Returns
    -------
    bool
        Whether it filled the database.

    Raises
    ------
    LibraryError
        When a SQLite database that does not exist yet would have to be filled from a folder
        without the library files (a command run outside the project folder): nothing is created.
    """
    url = url or database_url()
    parsed = make_url(url)
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file and file != ":memory:" and not Path(file).exists():
        check_data_dir(data_dir)
    engine = engine_for(url)
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        with engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATE_LOCK})
            try:
                upgrade(url)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATE_LOCK})
                lock.commit()
    else:
        upgrade(url)  # BEGIN IMMEDIATE serialises concurrent migrations
    with session_scope(url) as session:
        if postgres:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEED_LOCK})
        if session.get(Revision, 1) is None:
            session.add(Revision(id=1, value=0))
            session.flush()
        if session.scalar(select(func.count()).select_from(Organisation)):
            return False
        started = time.perf_counter()
        libraries = load_libraries(check_data_dir(data_dir))
        _seed(session, libraries)
        _seed_events(session, data_dir)
        _seed_file(session, data_dir)
        bump_revision(session)
        logger.info("filled the database from the sample libraries in %.2f s", time.perf_counter() - started)
        return True


def _frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    def cell(value: Any) -> Any:
        if isinstance(value, list):
            return value
        if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
            return None
        if isinstance(value, pd.Timestamp):
            return value.to_pydatetime()
        if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
            return value.item()
        return value

    columns = list(frame.columns)
    return [dict(zip(columns, (cell(v) for v in row), strict=True)) for row in frame.itertuples(index=False)]


def _seed(session: Session, libs: Libraries) -> None:
    existing = set(session.scalars(select(Tag.code)))
    tags = [
        {**row, "keywords": row["keywords"] or []}
        for row in _frame_records(libs.taxonomy[["code", "label", "label_en", "description", "keywords"]])
        if row["code"] not in existing
    ]
    if tags:
        session.execute(insert(Tag), tags)
    now = utcnow()
    for kind in KINDS:
        spec = _KINDS[kind]
        model = MODELS[kind]
        frame = getattr(libs, kind)
        rows = []
        for record in _frame_records(frame):
            values = {k: v for k, v in record.items() if k in model.model_fields}
            rows.append(_validated(kind, values))
        if spec.soft_delete:
            for row in rows:
                row["updated_at"] = now
        if rows:
            session.execute(insert(spec.table), rows)
    engagements = _derive_engagements(libs.decisions)
    if engagements:
        session.execute(insert(Engagement), engagements)
    session.flush()


def _seed_events(session: Session, directory: str | os.PathLike | None) -> None:
    """The history of events and attendees of ``data/`` (``events.csv``, ``attendees.csv``), when present.

    Each row is validated as the API validates it; the files are the base's own records, so their
    history (held events, ratings) is stored as written.
    """
    from matcher.inputs.library import data_dir as default_data_dir

    root = Path(directory) if directory is not None else default_data_dir()
    _seed_kinds(session, root, EVENT_KINDS)
    session.flush()


def _seed_kinds(session: Session, root: Path, kinds: Iterable[str]) -> None:
    """Insert the rows of ``root/<kind>.csv`` for each kind whose file is present, each validated as the
    API validates it; a bad row stops the seeding with the file and row named. A ``stages`` row
    without an id gets ``S00001``… in file order."""
    now = utcnow()
    for kind in kinds:
        path = root / f"{kind}.csv"
        if not path.is_file():
            continue
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        rows = []
        for number, record in enumerate(frame.to_dict("records"), start=1):
            if kind == "stages" and not record.get("id"):
                record = {**record, "id": f"S{number:05d}"}
            try:
                rows.append({**_validated(kind, record), "updated_at": now})
            except RecordError as error:
                raise LibraryError(f"{path}: row {number}: {error}") from error
        if rows:
            session.execute(insert(_KINDS[kind].table), rows)


def _seed_file(session: Session, directory: str | os.PathLike | None) -> None:
    """The organisation file of ``data/`` when present: ``stages.csv`` (``org_id,stage,since``; ids
    ``S00001``… in file order), ``milestones.csv`` and ``outcomes.csv`` (keyed by the id of the
    ``completed`` decision that closed the engagement). Each row is validated as the API validates it."""
    from matcher.inputs.library import data_dir as default_data_dir

    root = Path(directory) if directory is not None else default_data_dir()
    _seed_kinds(session, root, FILE_KINDS)
    path = root / "outcomes.csv"
    if path.is_file():
        closing = {
            e.closed_decision_id: e
            for e in session.scalars(select(Engagement).where(Engagement.status == "completed"))
            if e.closed_decision_id
        }
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        rows = []
        for number, record in enumerate(frame.to_dict("records"), start=1):
            decision_id = record.pop("decision_id", "")
            engagement = closing.get(decision_id)
            if engagement is None:
                raise LibraryError(
                    f"{path}: row {number}: decision_id {decision_id!r} is not a completed decision that closed an engagement"
                )
            try:
                values = OutcomeIn.model_validate(record).model_dump()
            except ValidationError as error:
                raise LibraryError(f"{path}: row {number}: {RecordError(field_errors(error))}") from error
            rows.append(
                {
                    **values,
                    "decision_id": decision_id,
                    "engagement_id": engagement.id,
                    "recorded_at": engagement.closed_at,
                }
            )
        if rows:
            session.execute(insert(Outcome), rows)
    session.flush()


def _validated(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    try:
        return MODELS[kind].model_validate(values).model_dump()
    except ValidationError as error:
        raise RecordError(field_errors(error)) from error


def _derive_engagements(decisions: pd.DataFrame) -> list[dict[str, Any]]:
    ordered = decisions.sort_values(["decided_at", "id"])
    open_: dict[tuple[str, str, str], dict[str, Any]] = {}
    result: list[dict[str, Any]] = []
    for row in ordered[["id", "need_id", "target_type", "target_id", "decision", "decided_at"]].itertuples(index=False):
        key = (row.need_id, row.target_type, row.target_id)
        when = row.decided_at.to_pydatetime()
        if row.decision == "accepted" and key not in open_:
            engagement = {
                "need_id": row.need_id,
                "target_type": row.target_type,
                "target_id": row.target_id,
                "status": "open",
                "opened_at": when,
                "closed_at": None,
                "decision_id": row.id,
                "closed_decision_id": None,
            }
            open_[key] = engagement
            result.append(engagement)
        elif row.decision in ("completed", "cancelled") and key in open_:
            engagement = open_.pop(key)
            engagement["status"] = row.decision
            engagement["closed_at"] = when
            engagement["closed_decision_id"] = row.id
    return result


def counts(session: Session) -> dict[str, int]:
    """Live rows per kind, plus ``tags`` and ``open_engagements``."""
    result = {"tags": session.scalar(select(func.count()).select_from(Tag)) or 0}
    for kind, spec in _KINDS.items():
        query = select(func.count()).select_from(spec.table)
        if spec.soft_delete:
            query = query.where(spec.table.deleted_at.is_(None))
        result[kind] = session.scalar(query) or 0
    result["open_engagements"] = (
        session.scalar(select(func.count()).select_from(Engagement).where(Engagement.status == "open")) or 0
    )
    return result


# =========================================================================== frames for the model

_STR, _LIST, _INT, _BOOL, _TIME, _INTSTR, _INT64 = "str", "list", "Int64", "bool", "time", "intstr", "int64"
_FRAME_TYPES: dict[str, dict[str, str]] = {
    "organisations": {"founded_year": _INTSTR, "staff_count": _INTSTR, "licensed_social_workers": _INTSTR},
    "needs": {"tags": _LIST, "created_at": _TIME},
    "experts": {"specialties": _LIST, "counties": _LIST, "courses": _LIST, "capacity": _INT, "available": _BOOL},
    "resources": {"quantity": _INT, "tags": _LIST, "seats": _INT, "amount_yuan": _INT},
    "projects": {"tags": _LIST},
    "decisions": {"rating": _INT, "rank": _INT, "decided_at": _TIME},
}


def _series(values: list[Any], kind: str) -> pd.Series:
    if kind == _LIST:
        return pd.Series([list(v or []) for v in values], dtype=object)
    if kind == _INT:
        return pd.Series(pd.array(values, dtype="Int64"))
    if kind == _BOOL:
        return pd.Series([bool(v) for v in values], dtype=bool)
    if kind == _TIME:
        # parsed exactly as load_libraries parses the files, so the dtype (unit, zone) is the same
        return pd.to_datetime(pd.Series([to_utc_iso(v) for v in values], dtype=object), utc=True, format="ISO8601")
    if kind == _INT64:
        return pd.Series(values, dtype="int64")
    return pd.Series(["" if v is None else str(v) for v in values], dtype=str)


def _frame(rows: list[dict[str, Any]], columns: Iterable[str], types: dict[str, str]) -> pd.DataFrame:
    columns = list(columns)
    return pd.DataFrame({c: _series([r[c] for r in rows], types.get(c, _STR)) for c in columns}, columns=columns)


def _rows(session: Session, kind: str, *, live: bool = True) -> list[dict[str, Any]]:
    spec = _KINDS[kind]
    table = spec.table.__table__
    query = select(table)
    if live and spec.soft_delete:
        query = query.where(table.c.deleted_at.is_(None))
    # sorted here, not by the database: PostgreSQL collations order text differently from SQLite
    return sorted((dict(row._mapping) for row in session.execute(query)), key=lambda r: r["id"])


def load_libraries_db(session: Session) -> Libraries:
    """The live libraries as :class:`~matcher.inputs.library.Libraries` frames, as ``load_libraries`` gives them.

    Same columns and dtypes as the files give, rows ordered by id, soft-deleted records left out
    (decisions and engagements of deleted needs too), plus the ``engagements`` frame (``id, need_id,
    target_type, target_id, status, opened_at, closed_at``). ``content_hash`` hashes the revision.
    """
    current = revision(session)  # read first: a write committed meanwhile only makes the frames newer
    tags = sorted((dict(r._mapping) for r in session.execute(select(Tag.__table__))), key=lambda r: r["code"])
    frames: dict[str, pd.DataFrame] = {
        "taxonomy": _frame(tags, FILES["taxonomy"], {"keywords": _LIST}),
    }
    for kind in KINDS:
        rows = _rows(session, kind)
        if kind == "decisions":
            live_needs = set(frames["needs"]["id"])
            rows = [r for r in rows if r["need_id"] in live_needs]
        columns = _KINDS[kind].columns if kind in OPTIONAL_COLUMNS else FILES[kind]
        frames[kind] = _frame(rows, columns, _FRAME_TYPES[kind])
    live_needs = set(frames["needs"]["id"])
    engagement_rows = [
        dict(r._mapping)
        for r in session.execute(select(Engagement.__table__).order_by(Engagement.id))
        if r.need_id in live_needs
    ]
    engagements = _frame(
        engagement_rows,
        ("id", "need_id", "target_type", "target_id", "status", "opened_at", "closed_at"),
        {"id": _INT64, "opened_at": _TIME, "closed_at": _TIME},
    )
    digest = hashlib.sha256(f"matcher database revision {current}".encode()).hexdigest()
    loads = event_rules.event_loads(session)
    event_load = pd.Series(loads, dtype="int64", name="load").sort_index() if loads else None
    return Libraries(**frames, content_hash=digest, engagements=engagements, event_loads=event_load)


# =========================================================================== validation


class _Checker:
    """Taxonomy and foreign-key checks, with id sets loaded once per kind."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._labels: dict[str, str] | None = None
        self._ids: dict[tuple[str, bool], set[str]] = {}
        self.extra: dict[str, set[str]] = {}  # ids of rows of the file being imported

    def labels(self) -> dict[str, str]:
        if self._labels is None:
            labels = list(self.session.scalars(select(Tag.label)))
            self._labels = {normalise(label): label for label in labels}
            self._labels.update({label: label for label in labels})
        return self._labels

    def ids(self, kind: str, *, live: bool = True) -> set[str]:
        key = (kind, live)
        if key not in self._ids:
            spec = _KINDS[kind]
            query = select(spec.table.id)
            if live and spec.soft_delete:
                query = query.where(spec.table.deleted_at.is_(None))
            self._ids[key] = set(self.session.scalars(query))
        return self._ids[key] | self.extra.get(kind, set())

    def check_places(self, kind: str, values: dict[str, Any]) -> list[dict[str, str]]:
        """Canonicalise counties and townships in place (the table of ``places.csv``); return the unknown ones."""
        places = load_places()
        if places is None:
            return []
        counties = {normalise(c): c for c in places}
        errors: list[dict[str, str]] = []

        def county(field: str, value: str) -> str | None:
            found = counties.get(normalise(value))
            if found is None:
                known = "、".join(places)
                errors.append({"field": field, "message": f"{field}: {value!r} is not a county ({known})"})
            return found

        if kind == "experts" and values.get("counties"):
            values["counties"] = [c for c in (county("counties", v) for v in values["counties"]) if c]
        elif kind in ("organisations", "resources") and values.get("county"):
            values["county"] = county("county", values["county"]) or values["county"]
        if kind == "organisations" and values.get("township") and values.get("county") in places:
            towns = {normalise(t): t for t in places[values["county"]]}
            found = towns.get(normalise(values["township"]))
            if found is None:
                errors.append(
                    {
                        "field": "township",
                        "message": f"township: {values['township']!r} is not a township of {values['county']}",
                    }
                )
            else:
                values["township"] = found
        return errors

    def check(self, kind: str, values: dict[str, Any]) -> list[dict[str, str]]:
        """Canonicalise ``values``' tags in place; return the reference problems (absent fields are skipped)."""
        errors: list[dict[str, str]] = []
        field = _KINDS[kind].tags
        if field and values.get(field) is not None:
            labels = self.labels()
            canonical = []
            for tag in values[field]:
                label = labels.get(tag) or labels.get(normalise(tag))
                if label is None:
                    errors.append({"field": field, "message": f"{field}: {tag!r} is not a tag of the taxonomy"})
                elif label not in canonical:
                    canonical.append(label)
            values[field] = canonical
        errors += self.check_places(kind, values)
        references: list[tuple[str, str, str | None, bool]] = []
        if kind in ("needs", "experts", "projects", *FILE_KINDS):
            references.append(("org_id", "organisations", values.get("org_id"), True))
        if kind == "decisions":
            references.append(("need_id", "needs", values.get("need_id"), False))
            if values.get("target_type") in _TARGET_KIND:
                target = _TARGET_KIND[values["target_type"]]
                references.append(("target_id", target, values.get("target_id"), False))
        for name, target, value, live in references:
            if value is not None and value not in self.ids(target, live=live):
                noun = _KINDS[target].noun
                errors.append({"field": name, "message": f"{name}: there is no {noun} with id {value!r}"})
        return errors


def _partial(kind: str, data: dict[str, Any], bad: set[str]) -> dict[str, Any]:
    """The reference fields of an invalid record that are valid on their own, for :meth:`_Checker.check`."""
    partial: dict[str, Any] = {}
    tags = _KINDS[kind].tags
    if tags and tags in data and tags not in bad:
        partial[tags] = split_list(data[tags])
    for name in ("org_id", "need_id", "target_id"):
        if name in data and name not in bad:
            value = _id_text(data[name])
            partial[name] = value or None
    if "target_type" in data and "target_type" not in bad:
        partial["target_type"] = canonical_value("target_type", data["target_type"])
    return partial


def _validate(session: Session, kind: str, data: Any, checker: _Checker | None = None) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RecordError([{"field": "body", "message": "body: expected an object of the record's fields"}])
    data = {k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}
    checker = checker or _Checker(session)
    try:
        values = _validated(kind, data)
    except RecordError as error:
        extra = checker.check(kind, _partial(kind, data, {e["field"] for e in error.errors}))
        raise RecordError(error.errors + extra) from error
    errors = checker.check(kind, values)
    if errors:
        raise RecordError(errors)
    return values


def _kind(kind: str) -> _Kind:
    try:
        return _KINDS[kind]
    except KeyError:
        raise RecordError(
            [{"field": "kind", "message": f"kind: unknown kind {kind!r}; use one of {', '.join(_ALL_KINDS)}"}]
        ) from None


# =========================================================================== items


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_local_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return list(value)
    return value


def _item(kind: str, row: dict[str, Any] | Base) -> dict[str, Any]:
    get = row.get if isinstance(row, dict) else functools.partial(getattr, row)
    item = {name: _json_value(get(name)) for name in MODELS[kind].model_fields}
    if _KINDS[kind].soft_delete:
        item["updated_at"] = to_local_iso(get("updated_at"))
    return item


def _items(session: Session, kind: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = [_item(kind, r) for r in rows]
    if kind == "experts" and items:
        loads = event_rules.engagement_loads(session, [i["id"] for i in items] if len(items) <= 500 else None)
        for item in items:
            item["open_engagements"] = loads.get(item["id"], 0)
    return items


# =========================================================================== listing and search

_FILTERS: dict[str, frozenset[str]] = {
    "organisations": frozenset({"county", "stage", "status"}),
    "needs": frozenset({"tag", "county", "stage", "status", "urgency", "org_id"}),
    "experts": frozenset({"tag", "county", "org_id"}),
    "resources": frozenset({"tag", "county"}),
    "projects": frozenset({"tag", "county", "stage", "org_id"}),
    "decisions": frozenset(),
    "events": frozenset({"tag", "county", "status"}),
    "attendees": frozenset({"status", "org_id", "event_id"}),
    "stages": frozenset({"org_id", "stage"}),
    "milestones": frozenset({"org_id", "status"}),
}
_SEARCH_FIELDS: dict[str, tuple[str, ...]] = {
    "organisations": ("name", "county", "township", "stage"),
    "needs": ("title", "description", "tags"),
    "experts": ("name", "title", "affiliation", "specialties", "bio", "courses", "counties"),
    "resources": ("name", "description", "provider", "tags", "county"),
    "projects": ("name", "description", "outcomes", "tags"),
    "decisions": ("id", "need_id", "target_id", "decision", "comment"),
    "events": ("title", "description", "tags", "county"),
    "attendees": ("id", "event_id", "org_id", "need_id", "comment"),
    "stages": ("id", "org_id", "stage"),
    "milestones": ("goal", "milestone", "stage"),
}
_search_cache: OrderedDict[tuple[str, str, int], tuple[list[str], Any, Any, list[str]]] = OrderedDict()
_search_lock = threading.Lock()


def _search_text(kind: str, row: dict[str, Any]) -> str:
    parts = []
    for name in _SEARCH_FIELDS[kind]:
        value = row.get(name)
        parts.append("、".join(value) if isinstance(value, list) else str(value or ""))
    return index_text("\n".join(p for p in parts if p))  # personal data can never be searched for


def _relevance(session: Session, kind: str, rows: list[dict[str, Any]], query: str) -> dict[str, float]:
    """Score of each row that holds every word of ``query`` (of two or more characters).

    Rows are ranked by the project's vectoriser fitted on the kind's texts (cached per revision);
    a row is kept only when each query word of two or more characters occurs in its text, so a
    single character never matches on its own (``养老`` does not find a text with only ``老师``;
    ``个案`` finds ``个案管理``). A query without such a word matches nothing.
    """
    from matcher.matching.vectorize import TextVectorizer

    words = [w for w in dict.fromkeys(segment(normalise(index_text(query)))) if len(w) >= 2]
    if not words:
        return {}
    ids = [r["id"] for r in rows]
    key = (str(session.get_bind().url), kind, revision(session))
    with _search_lock:
        cached = _search_cache.get(key)
    if cached is None or cached[0] != ids:
        texts = [_search_text(kind, r) for r in rows]
        vectorizer = TextVectorizer()
        try:
            matrix = vectorizer.fit_transform(texts)
        except ValueError:  # nothing to index: no rows, or no words
            return {}
        cached = (ids, vectorizer, matrix, [normalise(t) for t in texts])
        with _search_lock:
            _search_cache[key] = cached
            _search_cache.move_to_end(key)
            while len(_search_cache) > 32:
                _search_cache.popitem(last=False)
    _, vectorizer, matrix, normalised = cached
    scores = (matrix @ vectorizer.transform([index_text(query)]).T).toarray().ravel()
    return {
        i: max(float(s), 0.0)
        for i, s, text in zip(ids, scores, normalised, strict=True)
        if all(word in text for word in words)
    }


def _filter_value(kind: str, name: str, value: str | None, errors: list[dict[str, str]]) -> str | None:
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    if name not in _FILTERS[kind]:
        allowed = ", ".join(sorted(_FILTERS[kind] | {"q"}))
        errors.append({"field": name, "message": f"{name}: not a filter of {kind} (filters: {allowed})"})
        return None
    statuses = {
        "events": EVENT_STATUSES,
        "attendees": ATTENDEE_STATUSES,
        "organisations": ORG_STATUSES,
        "milestones": MILESTONE_STATUSES,
    }.get(kind, NEED_STATUSES)
    allowed_values = {"stage": STAGES, "status": statuses, "urgency": URGENCIES}.get(name)
    if allowed_values is not None:
        status_field = {
            "events": "event_status",
            "attendees": "attendee_status",
            "organisations": "org_status",
            "milestones": "milestone_status",
        }
        field = status_field.get(kind, name) if name == "status" else name
        converted = canonical_value(field, value)
        if converted not in allowed_values:
            errors.append(
                {"field": name, "message": f"{name}: must be one of {', '.join(allowed_values)}, got {value!r}"}
            )
            return None
        return converted
    return value


def list_records(
    session: Session,
    kind: str,
    *,
    page: int = 1,
    per_page: int = 20,
    tag: str | None = None,
    county: str | None = None,
    stage: str | None = None,
    status: str | None = None,
    urgency: str | None = None,
    org_id: str | None = None,
    q: str | None = None,
    event_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of live records of ``kind`` and the number of records that pass the filters.

    Filters (each only where it applies; others raise :class:`RecordError`): ``tag`` (tags /
    specialties, compared in normal form), ``county`` (an organisation's county; a need's or project's
    organisation's county; an expert's counties; a resource's county — experts with no county and
    district-wide resources serve every county), ``stage`` (the organisation's stage), ``status`` and
    ``urgency`` (needs; events and attendees have their own statuses), ``org_id``, ``event_id``
    (attendees). ``q`` keeps the records whose text holds every word of the query of two or more
    characters (single characters never match on their own) and ranks them by the project's Chinese
    text pipeline, best first (ties by id), each with ``relevance``; without ``q`` records are ordered by id.
    """
    spec = _kind(kind)
    errors: list[dict[str, str]] = []
    if not isinstance(page, int) or page < 1:
        errors.append({"field": "page", "message": f"page: must be a whole number >= 1, got {page!r}"})
    if not isinstance(per_page, int) or not 1 <= per_page <= _MAX_PER_PAGE:
        errors.append(
            {
                "field": "per_page",
                "message": f"per_page: must be a whole number from 1 to {_MAX_PER_PAGE}, got {per_page!r}",
            }
        )
    given = {"tag": tag, "county": county, "stage": stage, "status": status, "urgency": urgency, "org_id": org_id}
    if event_id is not None:
        given["event_id"] = event_id
    wanted = {name: _filter_value(kind, name, value, errors) for name, value in given.items()}
    if errors:
        raise RecordError(errors)
    every = rows = _rows(session, kind)
    org_of: dict[str, dict[str, Any]] = {}
    if wanted["county"] or wanted["stage"]:
        org_of = {r["id"]: r for r in _rows(session, "organisations")}

    def org(row: dict[str, Any]) -> dict[str, Any]:
        return row if kind == "organisations" else org_of.get(row.get("org_id") or "", {})

    if wanted["tag"]:
        wanted_tag = normalise(wanted["tag"])
        rows = [r for r in rows if wanted_tag in {normalise(t) for t in r[spec.tags]}]
    if wanted["county"]:
        place = normalise(wanted["county"])
        if kind == "experts":
            rows = [r for r in rows if not r["counties"] or place in {normalise(c) for c in r["counties"]}]
        elif kind in ("resources", "events"):
            rows = [r for r in rows if not r["county"] or normalise(r["county"]) == place]
        else:
            rows = [r for r in rows if normalise(org(r).get("county") or "") == place]
    if wanted["stage"]:
        rows = [r for r in rows if (r if kind == "stages" else org(r)).get("stage") == wanted["stage"]]
    for name in ("status", "urgency", "org_id", "event_id"):
        if wanted.get(name):
            rows = [r for r in rows if r.get(name) == wanted[name]]
    scores: dict[str, float] | None = None
    if q is not None and q.strip():
        scores = _relevance(session, kind, every, q.strip())
        rows = sorted((r for r in rows if r["id"] in scores), key=lambda r: (-scores[r["id"]], r["id"]))
    total = len(rows)
    start = (page - 1) * per_page
    chosen = rows[start : start + per_page]
    items = _items(session, kind, chosen)
    if scores is not None:
        for item in items:
            item["relevance"] = round(scores[item["id"]], 6)
    return items, total


# =========================================================================== CRUD


def _live(session: Session, kind: str, record_id: str, *, lock: bool = False) -> Base:
    spec = _kind(kind)
    query = select(spec.table).where(spec.table.id == record_id)
    if lock:
        query = query.with_for_update()
    row = session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()
    if row is None or (spec.soft_delete and row.deleted_at is not None):
        raise NotFoundError(f"there is no {spec.noun} with id {record_id!r}")
    return row


def get_record(session: Session, kind: str, record_id: str) -> dict[str, Any]:
    """One live record as a JSON-ready dict; :class:`NotFoundError` if missing or deleted."""
    return _items(session, kind, [_item_source(_live(session, kind, record_id), kind)])[0]


def _item_source(row: Base, kind: str) -> dict[str, Any]:
    names = [*MODELS[kind].model_fields, *(["updated_at"] if _KINDS[kind].soft_delete else [])]
    return {name: getattr(row, name) for name in names}


def create_record(session: Session, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """Validate and insert a record; :class:`ConflictError` if its id exists (deleted ones too).

    A need without an ``id`` (absent, null or empty) gets the next free number (:func:`next_need_id`).
    """
    spec = _kind(kind)
    if kind == "needs" and isinstance(data, dict) and data.get("id") in (None, ""):
        data = {**data, "id": next_need_id(session)}
    values = _validate(session, kind, data)
    existing = session.get(spec.table, values["id"])
    if existing is not None:
        deleted = spec.soft_delete and existing.deleted_at is not None
        raise ConflictError(
            f"{spec.noun} {values['id']} already exists" + (" (deleted; ids are never reused)" if deleted else "")
        )
    _check_stored(session, spec, values, None)
    row = spec.table(**values)
    if spec.soft_delete:
        row.updated_at = utcnow()
    session.add(row)
    session.flush()
    if kind == "organisations":
        note_stage(session, values["id"], values["stage"], values.get("admitted_on"))
    bump_revision(session)
    return get_record(session, kind, values["id"])


def _today() -> date:
    from matcher.store.records import LOCAL_TZ

    return utcnow().astimezone(LOCAL_TZ).date()


def next_stage_id(session: Session) -> str:
    """The number after the highest ``S<digits>`` stage-step id (deleted ones included)."""
    ids = session.scalars(select(StageStep.id).where(StageStep.id.like("S%")))
    numbers = [int(i[1:]) for i in ids if i[1:].isascii() and i[1:].isdigit()]
    return f"S{max(numbers, default=0) + 1:05d}"


def note_stage(session: Session, org_id: str, stage: str, since: date | None = None) -> None:
    """Add a step to ``org_id``'s stage history when ``stage`` differs from its latest step.

    ``since`` defaults to today (Asia/Shanghai); a step is never dated before the latest one.
    """
    latest = session.scalars(
        select(StageStep)
        .where(StageStep.org_id == org_id, StageStep.deleted_at.is_(None))
        .order_by(StageStep.since.desc(), StageStep.id.desc())
    ).first()
    if latest is not None and latest.stage == stage:
        return
    when = since or _today()
    if latest is not None and when < latest.since:
        when = max(_today(), latest.since)
    session.add(StageStep(id=next_stage_id(session), org_id=org_id, stage=stage, since=when, updated_at=utcnow()))
    session.flush()


def next_need_id(session: Session) -> str:
    """The number after the highest ``N<digits>`` need id, deleted needs included (ids are never reused).

    ``N0501`` after ``N0500``, with at least four digits. The libraries' revision row is locked first
    (PostgreSQL; SQLite transactions already run one writer at a time), so concurrent creations in
    their own transactions never take the same number.
    """
    session.execute(select(Revision.id).where(Revision.id == 1).with_for_update())
    ids = session.scalars(select(Need.id).where(Need.id.like("N%")))
    numbers = [int(i[1:]) for i in ids if i[1:].isascii() and i[1:].isdigit()]
    return f"N{max(numbers, default=0) + 1:04d}"


def replace_record(session: Session, kind: str, record_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Replace a live record as a whole (PUT); :class:`NotFoundError` if missing or deleted.

    Fields left out take their defaults. ``updated_at`` and the revision change only when a value does.
    """
    spec = _kind(kind)
    if isinstance(data, dict):
        data = dict(data)
        if data.setdefault("id", record_id) != record_id:
            message = f"id: {data['id']!r} differs from the id of the record being replaced, {record_id!r}"
            raise RecordError([{"field": "id", "message": message}])
    row = _live(session, kind, record_id, lock=True)
    values = _validate(session, kind, data)
    _check_stored(session, spec, values, row)
    changed = {k: v for k, v in values.items() if getattr(row, k) != v}
    if changed:
        for key, value in changed.items():
            setattr(row, key, value)
        if spec.soft_delete:
            row.updated_at = utcnow()
        session.flush()
        if kind == "organisations" and "stage" in changed:
            note_stage(session, record_id, values["stage"])
        bump_revision(session)
    return get_record(session, kind, record_id)


def _check_stored(session: Session, spec: _Kind, values: dict[str, Any], before: Any | None) -> None:
    """The kind's checks against the stored state (events and attendees): RecordError or ConflictError."""
    if spec.check is not None:
        errors = spec.check(session, values, before)
        if errors:
            raise RecordError(errors)


def _sample(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def delete_record(session: Session, kind: str, record_id: str) -> None:
    """Soft-delete a live record (decisions: delete, unless an engagement refers to them).

    :class:`ConflictError` when live records still refer to it: an organisation with live needs,
    experts or projects; a need, expert, resource or project with open engagements.
    """
    spec = _kind(kind)
    row = _live(session, kind, record_id, lock=True)
    if kind in ("experts", "resources", "events"):
        referring = event_rules.events_referring(session, kind, record_id)
        if referring:
            what = "live attendees" if kind == "events" else "planned or confirmed events"
            raise ConflictError(f"{spec.noun} {record_id} has {what} ({_sample(referring)}); cancel or move them first")
    if kind == "organisations":
        found = []
        for other in ("needs", "experts", "projects"):
            table = _KINDS[other].table
            ids = list(
                session.scalars(
                    select(table.id).where(table.org_id == record_id, table.deleted_at.is_(None)).order_by(table.id)
                )
            )
            if ids:
                found.append(f"{len(ids)} live {other if len(ids) > 1 else _KINDS[other].noun} ({_sample(ids)})")
        if found:
            raise ConflictError(
                f"organisation {record_id} is still referred to by {' and '.join(found)}; delete or move them first"
            )
    elif kind == "decisions":
        used = session.scalar(select(func.count()).select_from(Engagement).where(Engagement.decision_id == record_id))
        if used:
            raise ConflictError(f"decision {record_id} opened an engagement and is kept as its record")
        session.delete(row)
        session.flush()
        bump_revision(session)
        return
    elif kind not in EVENT_KINDS:
        if kind == "needs":
            condition = Engagement.need_id == record_id
            describe = lambda e: f"{e.target_type} {e.target_id}"  # noqa: E731
        else:
            target_type = spec.noun
            condition = (Engagement.target_type == target_type) & (Engagement.target_id == record_id)
            describe = lambda e: f"need {e.need_id}"  # noqa: E731
        engagements = list(
            session.scalars(select(Engagement).where(condition, Engagement.status == "open").order_by(Engagement.id))
        )
        if engagements:
            raise ConflictError(
                f"{spec.noun} {record_id} has {len(engagements)} open engagement"
                f"{'s' if len(engagements) > 1 else ''} ({_sample([describe(e) for e in engagements])}); "
                "complete or cancel them first"
            )
    now = utcnow()
    row.deleted_at = now
    row.updated_at = now
    session.flush()
    bump_revision(session)


# =========================================================================== feedback and engagements


def new_decision_id(now: datetime) -> str:
    """``D`` + UTC time to the microsecond + random hex: unique, and sorted in time order."""
    return f"D{now.strftime('%Y%m%d%H%M%S%f')}{secrets.token_hex(3)}"


def outcome_item(outcome: Outcome | None) -> dict[str, Any] | None:
    """An outcome as a JSON-ready dict (dates ISO 8601), or None."""
    if outcome is None:
        return None
    return {
        "decision_id": outcome.decision_id,
        "engagement_id": outcome.engagement_id,
        "goal_met": outcome.goal_met,
        "rating": outcome.rating,
        "hours": outcome.hours,
        "changed": outcome.changed,
        "follow_up_on": outcome.follow_up_on.isoformat() if outcome.follow_up_on else None,
        "recorded_at": to_local_iso(outcome.recorded_at),
    }


def _outcomes(session: Session, engagement_ids: Iterable[int]) -> dict[int, Outcome]:
    ids = list(engagement_ids)
    if not ids:
        return {}
    return {o.engagement_id: o for o in session.scalars(select(Outcome).where(Outcome.engagement_id.in_(ids)))}


def _engagement_item(
    engagement: Engagement,
    need_title: str | None = None,
    target_name: str | None = None,
    outcome: Outcome | None = None,
) -> dict:
    item = {
        "id": engagement.id,
        "need_id": engagement.need_id,
        "target_type": engagement.target_type,
        "target_id": engagement.target_id,
        "status": engagement.status,
        "opened_at": to_local_iso(engagement.opened_at),
        "closed_at": to_local_iso(engagement.closed_at),
        "decision_id": engagement.decision_id,
        "outcome": outcome_item(outcome),
    }
    if need_title is not None:
        item["need_title"] = need_title
    if target_name is not None:
        item["target_name"] = target_name
    return item


def _open_engagement(session: Session, need_id: str, target_type: str, target_id: str) -> Engagement | None:
    query = (
        select(Engagement)
        .where(
            Engagement.need_id == need_id,
            Engagement.target_type == target_type,
            Engagement.target_id == target_id,
            Engagement.status == "open",
        )
        .order_by(Engagement.id)
        .with_for_update()
    )
    return session.execute(query.execution_options(populate_existing=True)).scalars().first()


def record_feedback(
    session: Session, feedback: FeedbackIn | dict[str, Any], outcome: OutcomeIn | dict[str, Any] | None = None
) -> dict[str, Any]:
    """Record a coordinator's decision; returns ``{"decision": {...}, "engagement": {...} or None}``.

    * ``accepted`` opens an engagement: :class:`ConflictError` when the target is already engaged on
      the need, is an unavailable expert, belongs to the need's own organisation (conflict of
      interest), or is an expert whose open engagements reached the capacity (the expert row is
      locked while counting). The need becomes ``matched``.
    * ``completed`` / ``cancelled`` close the open engagement of (need, target), or ConflictError when
      there is none; a need with no open engagement left becomes ``closed`` (something completed) or
      ``open`` again.
    * ``rejected`` only records the decision.

    Accepting a target for a closed need is :class:`ConflictError` (so is completing or cancelling
    on it: it has no open engagement); a rejection may still be recorded. A missing need or target
    is :class:`NotFoundError`; a deleted target is ConflictError.

    ``outcome`` (:class:`~matcher.store.records.OutcomeIn`, only with ``completed``) is the
    engagement's follow-up, stored with it; the decision's rating is the outcome's (a different
    rating given with both is a RecordError). The result then carries ``outcome``.
    """
    if not isinstance(feedback, FeedbackIn):
        try:
            feedback = FeedbackIn.model_validate(feedback)
        except ValidationError as error:
            raise RecordError(field_errors(error)) from error
    if outcome is not None:
        outcome = _outcome_in(outcome)
        if feedback.decision != "completed":
            message = f"outcome: only a completed engagement has an outcome, not a {feedback.decision} one"
            raise RecordError([{"field": "outcome", "message": message}])
        if feedback.rating is not None and feedback.rating != outcome.rating:
            message = f"rating: {feedback.rating} differs from the outcome's rating {outcome.rating}; give one"
            raise RecordError([{"field": "rating", "message": message}])
        feedback = feedback.model_copy(update={"rating": outcome.rating})
    need = session.get(Need, feedback.need_id)
    if need is None or need.deleted_at is not None:
        raise NotFoundError(f"there is no need with id {feedback.need_id!r}")
    model = _TARGETS[feedback.target_type]
    query = select(model).where(model.id == feedback.target_id).with_for_update()
    target = session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()
    label = f"{feedback.target_type} {feedback.target_id}"
    if target is None:
        raise NotFoundError(f"there is no {feedback.target_type} with id {feedback.target_id!r}")
    if target.deleted_at is not None:
        raise ConflictError(f"{label} was deleted")
    now = utcnow()
    engagement = _open_engagement(session, need.id, feedback.target_type, target.id)
    if feedback.decision == "accepted":
        if engagement is not None:
            raise ConflictError(f"{label} is already engaged on need {need.id} (engagement {engagement.id})")
        if isinstance(target, Expert):
            if not target.available:
                raise ConflictError(f"{label} is not available")
            if conflict_of_interest(target.org_id, need.org_id):
                raise ConflictError(
                    f"{label} belongs to organisation {target.org_id}, which filed need {need.id} (conflict of interest)"
                )
            load = event_rules.open_loads(session, [target.id]).get(target.id, 0)  # engagements and confirmed events
            if free_places(target.capacity, load) <= 0:
                raise ConflictError(f"{label} is fully booked ({load} of {target.capacity})")
        if need.status == "closed":
            raise ConflictError(f"need {need.id} is closed; reopen it (status open) before accepting a target for it")
    elif feedback.decision in ("completed", "cancelled") and engagement is None:
        raise ConflictError(f"{label} has no open engagement on need {need.id} to mark {feedback.decision}")
    decision = Decision(id=new_decision_id(now), decided_at=now, **feedback.model_dump())
    session.add(decision)
    session.flush()
    if feedback.decision == "accepted":
        engagement = Engagement(
            need_id=need.id,
            target_type=feedback.target_type,
            target_id=target.id,
            status="open",
            opened_at=now,
            decision_id=decision.id,
        )
        session.add(engagement)
        if need.status != "matched":
            need.status = "matched"
            need.updated_at = now
    elif feedback.decision in ("completed", "cancelled"):
        engagement.status = feedback.decision
        engagement.closed_at = now
        engagement.closed_decision_id = decision.id
        session.flush()
        remaining = session.scalar(
            select(func.count())
            .select_from(Engagement)
            .where(Engagement.need_id == need.id, Engagement.status == "open")
        )
        if not remaining:
            completed = session.scalar(
                select(func.count())
                .select_from(Engagement)
                .where(Engagement.need_id == need.id, Engagement.status == "completed")
            )
            status = "closed" if completed else "open"
            if need.status != status:
                need.status = status
                need.updated_at = now
    else:
        engagement = None
    stored = None
    if outcome is not None:
        stored = Outcome(decision_id=decision.id, engagement_id=engagement.id, recorded_at=now, **outcome.model_dump())
        session.add(stored)
    session.flush()
    bump_revision(session)
    return {
        "decision": _item("decisions", decision),
        "engagement": _engagement_item(engagement, outcome=stored) if engagement is not None else None,
    }


def _outcome_in(data: OutcomeIn | dict[str, Any] | Any) -> OutcomeIn:
    if isinstance(data, OutcomeIn):
        return data
    if not isinstance(data, dict):
        raise RecordError([{"field": "outcome", "message": "outcome: expected an object of the outcome's fields"}])
    try:
        return OutcomeIn.model_validate(data)
    except ValidationError as error:
        raise RecordError(field_errors(error)) from error


def set_outcome(session: Session, engagement_id: int, data: OutcomeIn | dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Record (or correct) the outcome of a completed engagement; returns ``(engagement item, created)``.

    :class:`NotFoundError` for no such engagement; :class:`ConflictError` when it is not completed.
    The completing decision is left as it was recorded (decisions are the history).
    """
    values = _outcome_in(data)
    engagement = session.get(Engagement, engagement_id, with_for_update=True)
    if engagement is None:
        raise NotFoundError(f"there is no engagement with id {engagement_id!r}")
    if engagement.status != "completed":
        raise ConflictError(
            f"engagement {engagement_id} is {engagement.status}: only a completed engagement has an outcome"
        )
    if engagement.closed_decision_id is None:
        raise ConflictError(f"engagement {engagement_id} has no recorded completing decision to attach an outcome to")
    stored = session.get(Outcome, engagement.closed_decision_id)
    created = stored is None
    if created:
        stored = Outcome(decision_id=engagement.closed_decision_id, engagement_id=engagement.id)
        session.add(stored)
    for key, value in values.model_dump().items():
        setattr(stored, key, value)
    stored.recorded_at = utcnow()
    session.flush()
    bump_revision(session)
    need_title = session.scalar(select(Need.title).where(Need.id == engagement.need_id))
    target = _TARGETS[engagement.target_type]
    name = session.scalar(select(target.name).where(target.id == engagement.target_id)) or ""
    return _engagement_item(engagement, need_title, name, stored), created


_ENGAGEMENT_STATUSES = ("open", "completed", "cancelled")


def list_engagements(
    session: Session,
    *,
    need_id: str | None = None,
    org_id: str | None = None,
    expert_id: str | None = None,
    status: str | None = None,
    page: int = 1,
    per_page: int = 20,
    awaiting_outcome: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """A page of engagements (ordered by id) and their total, filtered by need, the need's
    organisation, expert or status (open/completed/cancelled); ``awaiting_outcome`` keeps the completed
    engagements that have no outcome yet. Items carry ``need_title``, ``target_name`` and ``outcome``."""
    errors = []
    if status is not None and status not in _ENGAGEMENT_STATUSES:
        errors.append(
            {"field": "status", "message": f"status: must be one of {', '.join(_ENGAGEMENT_STATUSES)}, got {status!r}"}
        )
    if not isinstance(page, int) or page < 1:
        errors.append({"field": "page", "message": f"page: must be a whole number >= 1, got {page!r}"})
    if not isinstance(per_page, int) or not 1 <= per_page <= _MAX_PER_PAGE:
        errors.append(
            {"field": "per_page", "message": f"per_page: must be from 1 to {_MAX_PER_PAGE}, got {per_page!r}"}
        )
    if errors:
        raise RecordError(errors)
    query = select(Engagement, Need.title).join(Need, Need.id == Engagement.need_id)
    if need_id:
        query = query.where(Engagement.need_id == need_id)
    if org_id:
        query = query.where(Need.org_id == org_id)
    if expert_id:
        query = query.where(Engagement.target_type == "expert", Engagement.target_id == expert_id)
    if status:
        query = query.where(Engagement.status == status)
    if awaiting_outcome:
        recorded = select(Outcome.engagement_id).where(Outcome.engagement_id.is_not(None))
        query = query.where(Engagement.status == "completed", Engagement.id.not_in(recorded))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(Engagement.id).offset((page - 1) * per_page).limit(per_page)).all()
    names: dict[tuple[str, str], str] = {}
    for target_type, model in _TARGETS.items():
        ids = [e.target_id for e, _ in rows if e.target_type == target_type]
        if ids:
            for target_id, name in session.execute(select(model.id, model.name).where(model.id.in_(ids))):
                names[(target_type, target_id)] = name
    outcomes = _outcomes(session, [e.id for e, _ in rows])
    items = [
        _engagement_item(e, title, names.get((e.target_type, e.target_id), ""), outcomes.get(e.id)) for e, title in rows
    ]
    return items, total


def update_engagement_status(
    session: Session,
    engagement_id: int,
    status: str,
    *,
    rating: int | None = None,
    comment: str = "",
    outcome: OutcomeIn | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Complete or cancel an open engagement, recording the decision as :func:`record_feedback` does."""
    if status not in ("completed", "cancelled"):
        raise RecordError([{"field": "status", "message": f"status: must be completed or cancelled, got {status!r}"}])
    engagement = session.get(Engagement, engagement_id)
    if engagement is None:
        raise NotFoundError(f"there is no engagement with id {engagement_id!r}")
    if engagement.status != "open":
        raise ConflictError(f"engagement {engagement_id} is already {engagement.status}")
    feedback = {
        "need_id": engagement.need_id,
        "target_type": engagement.target_type,
        "target_id": engagement.target_id,
        "decision": status,
        "rating": rating,
        "comment": comment,
    }
    result = record_feedback(session, feedback, outcome)
    session.refresh(engagement)
    return result["engagement"] or _engagement_item(engagement)


# =========================================================================== import


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
        field = aliases.get(header_key(label))
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


def _id_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value).strip()


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
    spec = _kind(kind)
    file = os.fspath(path)
    headers, raw_rows = read_rows(file)
    mapping = _map_headers(file, kind, headers, raw_rows)
    rows = [(number, cells) for number, cells in raw_rows if not all(_blank_cell(c) for c in cells)]
    if not rows:
        raise ImportRejectedError([Problem(file, None, None, "no data rows")])
    header_of = {field: headers[index] for field, index in mapping.items()}
    fields = list(MODELS[kind].model_fields)
    with session_scope(url) as session:
        existing = {r["id"]: r for r in _rows(session, kind, live=False)}
        checker = _Checker(session)
        checker.extra[kind] = {_id_text(cells[mapping["id"]]) for _, cells in rows}
        problems: list[Problem] = []
        seen: dict[str, int] = {}
        creates: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        unchanged = 0
        word = "line" if Path(file).suffix.lower() in (".jsonl", ".ndjson") else "row"
        for number, cells in rows:
            data = {field: cells[index] for field, index in mapping.items()}
            record_id = _id_text(data["id"])
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
                values = _validate(session, kind, data, checker)
                if spec.check is not None:  # events, attendees: against the stored state (not the file's other rows)
                    _check_stored(session, spec, values, session.get(spec.table, record_id) if old else None)
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
        _test_pause()
    report = ImportReport(len(creates), len(updates), unchanged)
    logger.info("imported %s into %s: %s", file, kind, report)
    return report


def _write_import(
    session: Session,
    spec: _Kind,
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


def _test_pause() -> None:
    """Test hook: sleep inside the import transaction so a test can kill the process there."""
    seconds = os.environ.get(IMPORT_PAUSE_ENV)
    if seconds:
        print(
            f"matcher: {IMPORT_PAUSE_ENV}: pausing {seconds} s inside the import transaction",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(float(seconds))


# =========================================================================== export


def _export_rows(session: Session, kind: str) -> list[dict[str, Any]]:
    return _rows(session, kind, live=True)


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
    spec = _kind(kind)
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
