"""Migrate the database and, when it is empty, fill it from the library files of ``data/``.

Seeding runs under an advisory lock on PostgreSQL (and ``BEGIN IMMEDIATE`` on SQLite), so two workers
starting at once fill an empty database once.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from matcher.errors import LibraryError
from matcher.inputs.library import Libraries, check_data_dir, load_libraries
from matcher.inputs.library import data_dir as default_data_dir
from matcher.store.checks import RecordError, validated
from matcher.store.db import database_url, engine_for, session_scope, upgrade
from matcher.store.kinds import SPECS
from matcher.store.records import EVENT_KINDS, FILE_KINDS, KINDS, MODELS, OutcomeIn, field_errors
from matcher.store.schema import Engagement, Organisation, Outcome, Revision, Tag, utcnow
from matcher.store.transactions import bump_revision, translate_db_errors

logger = logging.getLogger(__name__)

__all__ = ["ensure_database"]

_MIGRATE_LOCK = 0x6D61_7463_6801  # pg_advisory_lock keys ("match" + 1/2)
_SEED_LOCK = 0x6D61_7463_6802


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
        spec = SPECS[kind]
        model = MODELS[kind]
        frame = getattr(libs, kind)
        rows = []
        for record in _frame_records(frame):
            values = {k: v for k, v in record.items() if k in model.model_fields}
            rows.append(validated(kind, values))
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
                rows.append({**validated(kind, record), "updated_at": now})
            except RecordError as error:
                raise LibraryError(f"{path}: row {number}: {error}") from error
        if rows:
            session.execute(insert(SPECS[kind].table), rows)


def _seed_file(session: Session, directory: str | os.PathLike | None) -> None:
    """The organisation file of ``data/`` when present: ``stages.csv`` (``org_id,stage,since``; ids
    ``S00001``… in file order), ``milestones.csv`` and ``outcomes.csv`` (keyed by the id of the
    ``completed`` decision that closed the engagement). Each row is validated as the API validates it."""

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
