"""The checks a record passes before it is stored: its fields, taxonomy tags, places and references to live records.

Field validation itself is :mod:`matcher.store.records` (pydantic); this module adds what needs the
database. Every problem is one :class:`RecordError` listing ``{"field", "message"}`` items.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.errors import FieldError
from matcher.inputs.cells import split_list
from matcher.inputs.library import load_places
from matcher.store.items import READ_ONLY_FIELDS
from matcher.store.kinds import ALL_KINDS, SPECS, TARGET_KINDS, Kind
from matcher.store.records import FILE_KINDS, MODELS, canonical_value, field_errors
from matcher.store.schema import Tag
from matcher.text.normalise import normalise

__all__ = [
    "Checker",
    "RecordError",
    "check_kind",
    "id_text",
    "validate",
    "validated",
]


class RecordError(FieldError):
    """An invalid record: ``errors`` lists ``{"field", "message"}``; each message names its field."""


def validated(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` validated by the kind's model (fields only, no database), as stored; else :class:`RecordError`."""
    try:
        return MODELS[kind].model_validate(values).model_dump()
    except ValidationError as error:
        raise RecordError(field_errors(error)) from error


class Checker:
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
            spec = SPECS[kind]
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
        field = SPECS[kind].tags
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
            if values.get("target_type") in TARGET_KINDS:
                target = TARGET_KINDS[values["target_type"]]
                references.append(("target_id", target, values.get("target_id"), False))
        for name, target, value, live in references:
            if value is not None and value not in self.ids(target, live=live):
                noun = SPECS[target].noun
                errors.append({"field": name, "message": f"{name}: there is no {noun} with id {value!r}"})
        return errors


def _partial(kind: str, data: dict[str, Any], bad: set[str]) -> dict[str, Any]:
    """The reference fields of an invalid record that are valid on their own, for :meth:`Checker.check`."""
    partial: dict[str, Any] = {}
    tags = SPECS[kind].tags
    if tags and tags in data and tags not in bad:
        partial[tags] = split_list(data[tags])
    for name in ("org_id", "need_id", "target_id"):
        if name in data and name not in bad:
            value = id_text(data[name])
            partial[name] = value or None
    if "target_type" in data and "target_type" not in bad:
        partial["target_type"] = canonical_value("target_type", data["target_type"])
    return partial


def validate(session: Session, kind: str, data: Any, checker: Checker | None = None) -> dict[str, Any]:
    """``data`` (a request body or an import row) validated and checked against the database, as stored.

    Read-only item keys are ignored; every problem of fields and references is one :class:`RecordError`.
    """
    if not isinstance(data, dict):
        raise RecordError([{"field": "body", "message": "body: expected an object of the record's fields"}])
    data = {k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}
    checker = checker or Checker(session)
    try:
        values = validated(kind, data)
    except RecordError as error:
        extra = checker.check(kind, _partial(kind, data, {e["field"] for e in error.errors}))
        raise RecordError(error.errors + extra) from error
    errors = checker.check(kind, values)
    if errors:
        raise RecordError(errors)
    return values


def check_kind(kind: str) -> Kind:
    """The kind named ``kind``; :class:`RecordError` naming the kinds when there is none."""
    try:
        return SPECS[kind]
    except KeyError:
        raise RecordError(
            [{"field": "kind", "message": f"kind: unknown kind {kind!r}; use one of {', '.join(ALL_KINDS)}"}]
        ) from None


def id_text(value: Any) -> str:
    """An id cell as text (``12.0`` read from a spreadsheet is ``12``; blank is ``""``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value).strip()
