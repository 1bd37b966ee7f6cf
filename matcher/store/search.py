"""Listing records: filters, paging, and the free-text search that ranks them.

The search index of a kind (the project's vectoriser fitted on the kind's texts) is cached per
database, kind, revision and row ids, so a write invalidates it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from matcher.matching.vectorize import TextVectorizer
from matcher.store.checks import RecordError, check_kind
from matcher.store.items import MAX_PER_PAGE, record_items
from matcher.store.kinds import live_rows
from matcher.store.records import (
    ATTENDEE_STATUSES,
    EVENT_STATUSES,
    MILESTONE_STATUSES,
    NEED_STATUSES,
    ORG_STATUSES,
    STAGES,
    URGENCIES,
    canonical_value,
)
from matcher.store.transactions import revision
from matcher.text.normalise import normalise
from matcher.text.privacy import index_text
from matcher.text.segment import segment

__all__ = ["list_records"]

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


@dataclass(frozen=True)
class _Corpus:
    """The rows a search index is fitted on, named by what determines them: database, kind, revision, ids.

    Equal and hashed by the name alone (``rows`` is left out), so it keys :func:`_search_index`; the
    cache keeps the key, so :func:`_relevance` empties ``rows`` (a copy) once the index is fitted.
    """

    url: str
    kind: str
    revision: int
    ids: tuple[str, ...]
    rows: list[dict[str, Any]] = field(compare=False, repr=False)


@dataclass(frozen=True)
class _SearchIndex:
    vectorizer: TextVectorizer
    matrix: Any  # sparse, one row per id of the corpus
    texts: list[str]  # each row's text in normal form, for the every-word rule


@functools.lru_cache(maxsize=32)
def _search_index(corpus: _Corpus) -> _SearchIndex:
    """The vectoriser fitted on the corpus's texts; ValueError when there is nothing to index (not cached)."""
    texts = [_search_text(corpus.kind, r) for r in corpus.rows]
    vectorizer = TextVectorizer()
    matrix = vectorizer.fit_transform(texts)
    return _SearchIndex(vectorizer, matrix, [normalise(t) for t in texts])


def _search_text(kind: str, row: dict[str, Any]) -> str:
    parts = []
    for name in _SEARCH_FIELDS[kind]:
        value = row.get(name)
        parts.append("、".join(value) if isinstance(value, list) else str(value or ""))
    return index_text("\n".join(p for p in parts if p))  # personal data can never be searched for


def _relevance(session: Session, kind: str, rows: list[dict[str, Any]], query: str) -> dict[str, float]:
    """Score of each row that holds every word of ``query`` (of two or more characters).

    Rows are ranked by the project's vectoriser fitted on the kind's texts (:func:`_search_index`);
    a row is kept only when each query word of two or more characters occurs in its text, so a
    single character never matches on its own (``养老`` does not find a text with only ``老师``;
    ``个案`` finds ``个案管理``). A query without such a word matches nothing.
    """
    words = [w for w in dict.fromkeys(segment(normalise(index_text(query)))) if len(w) >= 2]
    if not words:
        return {}
    ids = [r["id"] for r in rows]
    corpus = _Corpus(str(session.get_bind().url), kind, revision(session), tuple(ids), list(rows))
    try:
        index = _search_index(corpus)
    except ValueError:  # nothing to index: no rows, or no words
        return {}
    finally:
        corpus.rows.clear()  # the index is fitted (or failed): the cache need not hold the rows
    scores = (index.matrix @ index.vectorizer.transform([index_text(query)]).T).toarray().ravel()
    return {
        i: max(float(s), 0.0)
        for i, s, text in zip(ids, scores, index.texts, strict=True)
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
    spec = check_kind(kind)
    errors: list[dict[str, str]] = []
    if not isinstance(page, int) or page < 1:
        errors.append({"field": "page", "message": f"page: must be a whole number >= 1, got {page!r}"})
    if not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
        errors.append(
            {
                "field": "per_page",
                "message": f"per_page: must be a whole number from 1 to {MAX_PER_PAGE}, got {per_page!r}",
            }
        )
    given = {"tag": tag, "county": county, "stage": stage, "status": status, "urgency": urgency, "org_id": org_id}
    if event_id is not None:
        given["event_id"] = event_id
    wanted = {name: _filter_value(kind, name, value, errors) for name, value in given.items()}
    if errors:
        raise RecordError(errors)
    every = rows = live_rows(session, kind)
    org_of: dict[str, dict[str, Any]] = {}
    if wanted["county"] or wanted["stage"]:
        org_of = {r["id"]: r for r in live_rows(session, "organisations")}

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
    items = record_items(session, kind, chosen)
    if scores is not None:
        for item in items:
            item["relevance"] = round(scores[item["id"]], 6)
    return items, total
