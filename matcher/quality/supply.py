"""Demand against supply by counting the libraries, without any model: what analysts look at first.

Needs per category, county, stage, status or urgency, and each category's open needs against the
experts' free places, resources and projects. :mod:`matcher.quality.gaps`, by contrast, scores the
needs with a fitted model and finds those whose best match is weak.
"""

from __future__ import annotations

import pandas as pd

from matcher.inputs.library import Libraries

__all__ = ["coverage", "needs_by"]

DIMENSIONS = ("category", "county", "stage", "status", "urgency")


def _needs_with_orgs(libs: Libraries) -> pd.DataFrame:
    orgs = libs.organisations.set_index("id")
    needs = libs.needs.assign(
        county=libs.needs["org_id"].map(orgs["county"]), stage=libs.needs["org_id"].map(orgs["stage"])
    )
    return needs.explode("tags").rename(columns={"tags": "category"})


def needs_by(libs: Libraries, by: str, *, status: str | None = None) -> pd.Series:
    """Number of needs per value of ``by`` (category, county, stage, status or urgency), largest first.

    A need with several tags counts once in each of its categories. ``status`` keeps only needs
    with that status (e.g. ``"open"``).
    """
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {DIMENSIONS}, got {by!r}")
    needs = _needs_with_orgs(libs)
    if status is not None:
        needs = needs.loc[needs["status"] == status]
    if by != "category":
        needs = needs.drop_duplicates("id")
    return needs.groupby(by)["id"].nunique().sort_values(ascending=False).rename("needs")


def coverage(libs: Libraries) -> pd.DataFrame:
    """Per category: open needs against the supply of the expert, resource and project libraries.

    Columns: ``open_needs``, ``experts`` (available experts with that specialty), ``free_places``
    (their capacity minus open engagements), ``resources``, ``projects``, and ``places_per_need``.
    Rows follow the taxonomy order.
    """
    categories = libs.taxonomy["label"].tolist()
    open_needs = needs_by(libs, "category", status="open").reindex(categories, fill_value=0)
    experts = libs.experts.loc[libs.experts["available"]].copy()
    experts["free"] = (experts["capacity"].fillna(0) - experts["id"].map(libs.load()).fillna(0)).clip(lower=0)
    by_specialty = experts.explode("specialties").groupby("specialties")
    frame = pd.DataFrame(
        {
            "open_needs": open_needs,
            "experts": by_specialty["id"].nunique().reindex(categories, fill_value=0),
            "free_places": by_specialty["free"].sum().reindex(categories, fill_value=0).astype(int),
            "resources": libs.resources.explode("tags")
            .groupby("tags")["id"]
            .nunique()
            .reindex(categories, fill_value=0),
            "projects": libs.projects.explode("tags").groupby("tags")["id"].nunique().reindex(categories, fill_value=0),
        },
        index=pd.Index(categories, name="category"),
    )
    frame["places_per_need"] = (frame["free_places"] / frame["open_needs"].where(frame["open_needs"] > 0)).round(2)
    return frame
