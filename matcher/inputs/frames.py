"""The one builder of the flat frames the model works on: from the libraries, and from user files.

The libraries come from the files of ``data/`` (:func:`matcher.inputs.library.load_libraries`) or from
the database (:func:`matcher.store.libraries.load_libraries_db`); both give the same frames here. The
user files of ``matcher batch``, ``assign`` and ``train`` file mode (one text a record,
:class:`~matcher.inputs.files.Table`) give the same columns (:func:`table_targets_frame`,
:func:`table_needs_frame`):

* a *targets* frame, one row per expert, resource or project: ``TARGET_COLUMNS``;
* a *needs* frame, one row per stored need: ``NEED_COLUMNS`` plus ``org_name`` (the need's own
  organisation, never matched as a target's name); :func:`need_record` is one such row as a dict,
  with the text as written, for a caller that redacts and shows it (the match service).

Personal data never reaches the model: every text of these frames goes through
:func:`matcher.text.privacy.index_text`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from matcher.errors import BatchError
from matcher.inputs.files import Table
from matcher.inputs.library import TARGET_TYPES, Libraries
from matcher.text.privacy import index_text

__all__ = [
    "NEED_COLUMNS",
    "TARGET_COLUMNS",
    "check_target_types",
    "need_record",
    "needs_frame",
    "table_needs_frame",
    "table_targets_frame",
    "targets_frame",
]

TARGET_COLUMNS = ("target_type", "id", "name", "texts", "tags", "counties", "org_id", "capacity", "load", "available")
NEED_COLUMNS = ("id", "text", "tags", "counties", "org_id")


def _engaged_need_titles(libs: Libraries, until: pd.Timestamp | None) -> dict[str, list[str]]:
    """Titles of the needs each expert accepted or completed: part of the expert's profile."""
    rows = libs.decisions.loc[
        (libs.decisions["target_type"] == "expert") & libs.decisions["decision"].isin(["accepted", "completed"])
    ]
    if until is not None:
        rows = rows.loc[rows["decided_at"] <= until]
    titles = libs.needs.set_index("id")["title"]
    pairs = rows[["target_id", "need_id"]].drop_duplicates().sort_values(["target_id", "need_id"])
    pairs = pairs.assign(title=pairs["need_id"].map(titles))
    return pairs.groupby("target_id")["title"].agg(list).to_dict()


def targets_frame(libs: Libraries, *, history: bool = True, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """The experts, resources and projects as one frame of ``TARGET_COLUMNS``.

    ``texts`` holds each profile's separate texts (for experts: specialties, bio, courses taught and,
    with ``history``, the titles of needs they took on), so that an expert with an empty bio is still
    matchable. ``load`` counts open engagements from the decisions up to ``until``.
    """
    load = libs.load(until)
    engaged = _engaged_need_titles(libs, until) if history else {}
    org_county = libs.organisations.set_index("id")["county"]

    experts = libs.experts
    expert_rows = pd.DataFrame(
        {
            "target_type": "expert",
            "id": experts["id"],
            "name": experts["name"],
            "texts": [
                [f"专长：{'、'.join(spec)}" if spec else "", bio, *courses, *engaged.get(eid, [])]
                for eid, spec, bio, courses in zip(
                    experts["id"], experts["specialties"], experts["bio"], experts["courses"], strict=True
                )
            ],
            "tags": experts["specialties"],
            "counties": experts["counties"],
            "org_id": experts["org_id"].replace("", None),
            "capacity": experts["capacity"],
            "load": experts["id"].map(load).fillna(0).astype(int),
            "available": experts["available"],
        }
    )
    resources = libs.resources
    resource_rows = pd.DataFrame(
        {
            "target_type": "resource",
            "id": resources["id"],
            "name": resources["name"],
            "texts": [[name, desc] for name, desc in zip(resources["name"], resources["description"], strict=True)],
            "tags": resources["tags"],
            "counties": [[c] if c else [] for c in resources["county"]],
            "org_id": None,
            "capacity": pd.array([None] * len(resources), dtype="Int64"),
            "load": 0,
            "available": True,
        }
    )
    projects = libs.projects
    project_rows = pd.DataFrame(
        {
            "target_type": "project",
            "id": projects["id"],
            "name": projects["name"],
            "texts": [
                [name, desc, outcomes]
                for name, desc, outcomes in zip(
                    projects["name"], projects["description"], projects["outcomes"], strict=True
                )
            ],
            "tags": projects["tags"],
            "counties": [[org_county[o]] if o in org_county.index else [] for o in projects["org_id"]],
            "org_id": projects["org_id"].replace("", None),
            "capacity": pd.array([None] * len(projects), dtype="Int64"),
            "load": 0,
            "available": True,
        }
    )
    frame = pd.concat([expert_rows, resource_rows, project_rows], ignore_index=True)
    frame["texts"] = [[index_text(t) for t in texts] for texts in frame["texts"]]  # personal data never indexed
    return frame.loc[:, list(TARGET_COLUMNS)]


def _need_rows(libs: Libraries, needs: pd.DataFrame) -> pd.DataFrame:
    """``needs`` (rows of ``libs.needs``) with their county, organisation and name: the text as written."""
    organisations = libs.organisations.set_index("id")
    county = needs["org_id"].map(organisations["county"])
    return pd.DataFrame(
        {
            "id": needs["id"],
            "text": needs["title"] + "\n" + needs["description"],
            "tags": needs["tags"],
            "counties": [[c] if isinstance(c, str) and c else [] for c in county],
            "org_id": needs["org_id"].replace("", None),
            "org_name": needs["org_id"].map(organisations["name"]),  # never matched as a target's name
        }
    )


def needs_frame(libs: Libraries, need_ids: list[str] | None = None) -> pd.DataFrame:
    """Stored needs as a frame of ``NEED_COLUMNS`` and ``org_name`` (all needs, or ``need_ids`` in that order)."""
    needs = libs.needs if need_ids is None else libs.needs.set_index("id").loc[need_ids].reset_index()
    frame = _need_rows(libs, needs)
    frame["text"] = frame["text"].map(index_text)  # personal data redacted
    return frame


def need_record(libs: Libraries, need_id: str) -> dict[str, Any]:
    """The stored need ``need_id`` as a row of :func:`needs_frame`, but with its text as written (not redacted).

    ``{"id", "text", "tags", "counties", "org_id", "org_name"}`` (None for no organisation or name);
    :class:`~matcher.errors.NotFoundError` when there is no such need.
    """
    libs.need(need_id)  # NotFoundError
    row = _need_rows(libs, libs.needs.loc[libs.needs["id"] == need_id]).iloc[0]
    return {
        "id": row["id"],
        "text": row["text"],
        "tags": list(row["tags"]),
        "counties": list(row["counties"]),
        "org_id": _text_or_none(row["org_id"]),
        "org_name": _text_or_none(row["org_name"]),
    }


def _text_or_none(value: Any) -> str | None:
    """A text cell of a frame, None for a blank or missing one (NaN, None)."""
    return value if isinstance(value, str) and value else None

def table_needs_frame(table: Table) -> pd.DataFrame:
    """The needs of a user file (``matcher batch``, ``assign``, ``train`` file mode) as the model's needs frame: ``id, text, tags, counties, org_id``.

    A need without tags (no ``tags`` column, or an empty cell) gets None: the model infers its tags,
    as ``POST /v1/match`` does for free text sent without ``tags``.
    """
    frame = table.frame
    return pd.DataFrame(
        {
            "id": frame["id"].astype(object),
            "text": frame["text"].map(index_text).astype(object),  # personal data never matched on
            "tags": pd.Series([list(t) if len(t) else None for t in frame["tags"]], dtype=object),
            "counties": frame["counties"],
            "org_id": frame["org_id"],
            "org_name": frame["org_name"],  # the need's own organisation: never matched as a target's name
        }
    ).reset_index(drop=True)

def table_targets_frame(tables: Mapping[str, Table]) -> pd.DataFrame:
    """The targets of user files (target type -> table) as one frame of ``TARGET_COLUMNS``.

    Each target has one text; a blank capacity means unlimited; ``load`` is 0. Columns absent from a
    file hold their defaults (no tags, no counties, no organisation, unlimited, available).
    """
    check_target_types(tables)
    parts = []
    for target_type in TARGET_TYPES:
        if target_type not in tables:
            continue
        frame = tables[target_type].frame.reset_index(drop=True)
        parts.append(
            pd.DataFrame(
                {
                    "target_type": [target_type] * len(frame),
                    "id": frame["id"].astype(object),
                    "name": frame["name"].astype(object),
                    "texts": [[index_text(text)] for text in frame["text"]],  # personal data never indexed
                    "tags": frame["tags"],
                    "counties": frame["counties"],
                    "org_id": frame["org_id"],
                    "capacity": pd.array(frame["capacity"], dtype="Int64"),
                    "load": np.zeros(len(frame), dtype=int),
                    "available": frame["available"].astype(bool),
                }
            )
        )
    if not parts:
        raise BatchError("no target files: give at least one of experts, resources and projects")
    return pd.concat(parts, ignore_index=True).loc[:, list(TARGET_COLUMNS)]

def check_target_types(targets: Mapping[str, object]) -> None:
    """Refuse a target type other than expert, resource and project (a :class:`~matcher.errors.BatchError`)."""
    unknown = sorted(set(targets) - set(TARGET_TYPES))
    if unknown:
        raise BatchError(f"unknown target type {unknown[0]!r}; expected one of {TARGET_TYPES}")
