"""One match request in, one response body out: the single path behind the CLI and the HTTP API."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from matcher.library import Libraries
from matcher.model import Matcher

logger = logging.getLogger(__name__)

__all__ = ["MAX_K", "MAX_TEXT_LENGTH", "Filters", "MatchRequest", "match_body"]

MAX_TEXT_LENGTH = 5000
MAX_K = 50
TargetType = Literal["expert", "resource", "project"]


class Filters(BaseModel):
    """Optional filters of a match request."""

    model_config = ConfigDict(extra="forbid", strict=True)

    county: str | None = Field(
        default=None, min_length=1, max_length=50, description="Keep targets serving this county."
    )


class MatchRequest(BaseModel):
    """A request for matches: a free-text need, or a stored need by id."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_LENGTH, description="The need, as typed.")
    need_id: str | None = Field(default=None, min_length=1, max_length=100, description="A stored need.")
    tags: list[str] | None = Field(default=None, max_length=20, description="Tags of a free-text need.")
    k: int = Field(default=5, ge=1, le=MAX_K, description="Results per target type.")
    targets: list[TargetType] | None = Field(default=None, min_length=1, max_length=3)
    filters: Filters | None = None

    @model_validator(mode="after")
    def _one_need(self) -> MatchRequest:
        if (self.text is None) == (self.need_id is None):
            raise ValueError("give exactly one of 'text' and 'need_id'")
        if self.need_id is not None and self.tags is not None:
            raise ValueError("'tags' goes with 'text'; a stored need has its own tags")
        return self


def resolve_need(request: MatchRequest, libraries: Libraries) -> dict[str, Any]:
    """The need a request names: a stored need (with tags, county, organisation) or the free text."""
    if request.need_id is None:
        return {"id": None, "text": request.text, "tags": request.tags or [], "counties": [], "org_id": None}
    need = libraries.need(request.need_id)
    organisations = libraries.organisations.set_index("id")
    county = organisations["county"].get(need["org_id"], "")
    return {
        "id": need["id"],
        "text": f"{need['title']}\n{need['description']}",
        "tags": list(need["tags"]),
        "counties": [county] if county else [],
        "org_id": need["org_id"] or None,
    }


def match_body(request: MatchRequest, model: Matcher, version: str, libraries: Libraries) -> dict[str, Any]:
    """The response body of a match request.

    ``{"model_version", "need": {"id", "text" (normalised, the text that reason spans index),
    "tags", "counties", "org_id"}, "results": {target_type: [{"id", "name", "score", "reasons"}]}}``.
    """
    need = resolve_need(request, libraries)
    county = request.filters.county if request.filters else None
    results = model.recommend(need, k=request.k, target_types=request.targets, county=county)
    normalised = model.vectorizer_.preprocessor(need["text"])
    logger.info("matched need %s (%d characters)", need["id"] or "<free text>", len(need["text"]))
    return {
        "model_version": version,
        "need": {**need, "text": normalised},
        "results": results,
    }
