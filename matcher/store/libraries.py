"""The live libraries read from the database as :class:`~matcher.inputs.library.Libraries` frames.

The database's twin of :func:`matcher.inputs.library.load_libraries`: same columns and dtypes, so the
model's need and target frames (:mod:`matcher.inputs.frames`) are built the same way from either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.inputs.library import FILES, OPTIONAL_COLUMNS, Libraries
from matcher.store import events as event_rules
from matcher.store.kinds import SPECS, live_rows
from matcher.store.records import KINDS, to_utc_iso
from matcher.store.schema import Engagement, Tag
from matcher.store.transactions import revision

__all__ = ["load_libraries_db"]

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
        rows = live_rows(session, kind)
        if kind == "decisions":
            live_needs = set(frames["needs"]["id"])
            rows = [r for r in rows if r["need_id"] in live_needs]
        columns = SPECS[kind].columns if kind in OPTIONAL_COLUMNS else FILES[kind]
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
