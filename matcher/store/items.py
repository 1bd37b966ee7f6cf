"""A stored record as a JSON-ready item (what GET returns and PUT accepts back), and the page size limit."""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from matcher.store.events import engagement_loads
from matcher.store.kinds import SPECS
from matcher.store.records import MODELS, to_local_iso
from matcher.store.schema import Base

__all__ = [
    "MAX_PER_PAGE",
    "READ_ONLY_FIELDS",
    "record_item",
    "record_items",
]

#: Keys of the item dicts this module returns that are not fields of the records; accepted and
#: ignored on input so that a record read with GET can be sent back with PUT.
READ_ONLY_FIELDS = frozenset({"updated_at", "open_engagements", "relevance"})
#: The largest page a listing returns.
MAX_PER_PAGE = 1000


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_local_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return list(value)
    return value


def record_item(kind: str, row: dict[str, Any] | Base) -> dict[str, Any]:
    """A row (dict or ORM object) as a JSON-ready item: the record's fields (times local ISO 8601), ``updated_at``."""
    get = row.get if isinstance(row, dict) else functools.partial(getattr, row)
    item = {name: _json_value(get(name)) for name in MODELS[kind].model_fields}
    if SPECS[kind].soft_delete:
        item["updated_at"] = to_local_iso(get("updated_at"))
    return item


def record_items(session: Session, kind: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as items; experts also carry ``open_engagements``."""
    items = [record_item(kind, r) for r in rows]
    if kind == "experts" and items:
        loads = engagement_loads(session, [i["id"] for i in items] if len(items) <= 500 else None)
        for item in items:
            item["open_engagements"] = loads.get(item["id"], 0)
    return items
