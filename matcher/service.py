"""One match request in, one response body out: the single path behind the CLI and the HTTP API.

:class:`MatchService` holds what a process serves with: the active model version (followed through
``models/ACTIVE``), the libraries from the database (reloaded when their revision changes) and the
model's target index kept in step with them, so that a new, edited, deleted or fully booked target is
matched correctly at once, without retraining.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from matcher import persist
from matcher.library import Libraries, targets_frame
from matcher.model import Matcher

logger = logging.getLogger(__name__)

__all__ = ["MAX_K", "MAX_TEXT_LENGTH", "Filters", "MatchRequest", "MatchService", "resolve_need"]

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
    """The need a request names: a stored need (with tags, county, organisation) or the free text.

    A free-text need filtered to a county is taken to be in that county (its region reason matches).
    """
    if request.need_id is None:
        county = request.filters.county if request.filters else None  # a free-text need is where it is asked for
        return {
            "id": None,
            "text": request.text,
            "tags": request.tags or [],
            "counties": [county] if county else [],
            "org_id": None,
        }
    need = libraries.need(request.need_id)
    county = libraries.organisations.set_index("id")["county"].get(need["org_id"], "")
    return {
        "id": need["id"],
        "text": f"{need['title']}\n{need['description']}",
        "tags": list(need["tags"]),
        "counties": [county] if county else [],
        "org_id": need["org_id"] or None,
    }


class MatchService:
    """The model, libraries and database one process serves with.

    Parameters
    ----------
    models_dir : the model folder (``models/``).
    data_dir : the embedded sample libraries that fill an empty database.
    database_url : the database (``DATABASE_URL``; default the embedded SQLite file).
    """

    def __init__(self, models_dir: str | Path, data_dir: str | Path, database_url: str | None = None) -> None:
        from matcher.store.db import database_url as default_url

        self.models_dir = Path(models_dir)
        self.data_dir = Path(data_dir)
        self.database_url = database_url or default_url()
        self._lock = threading.RLock()
        self._ready = False
        self._model: Matcher | None = None
        self._manifest: dict[str, Any] = {}
        self._failed: str | None = None
        self._libraries: tuple[int, Libraries] | None = None
        self._synced: tuple[str, int] | None = None

    # ---------------------------------------------------------------- libraries
    def ensure_database(self) -> None:
        """Create, migrate and (when empty) fill the database, once per process."""
        from matcher.store.repository import ensure_database

        with self._lock:
            if not self._ready:
                ensure_database(self.database_url, self.data_dir)
                self._ready = True

    def libraries(self) -> Libraries:
        """The libraries as stored now (reloaded when their revision changes)."""
        from matcher.store.repository import load_libraries_db, revision, transaction

        self.ensure_database()
        with self._lock, transaction(self.database_url) as session:
            current = revision(session)
            if self._libraries is None or self._libraries[0] != current:
                self._libraries = (current, load_libraries_db(session))
            return self._libraries[1]

    def revision(self) -> int:
        """The revision of the libraries last loaded (-1 before any)."""
        return self._libraries[0] if self._libraries else -1

    # ---------------------------------------------------------------- model
    def _load_active(self) -> None:
        wanted = persist.active_version(self.models_dir)
        loaded = self._manifest.get("version")
        if wanted and wanted != loaded and wanted != self._failed:
            try:
                self._model, self._manifest = persist.load(wanted, root=self.models_dir)
                self._failed = None
                self._synced = None
                logger.info("serving model version %s", wanted)
            except Exception as error:
                self._failed = wanted
                if self._model is None:
                    raise
                logger.error("could not load model version %s, still serving %s: %s", wanted, loaded, error)
        if self._model is None:
            persist.load(root=self.models_dir)  # raises the reason there is none

    def model(self) -> tuple[Matcher, dict[str, Any]]:
        """The model to serve, its index in step with the libraries, and its manifest.

        A version that fails to load (missing, corrupt, checksum mismatch) is logged and the version
        already loaded keeps serving.
        """
        libraries = self.libraries()
        with self._lock:
            self._load_active()
            state = (self._manifest["version"], self.revision())
            if self._synced != state:
                counts = self._model.sync_targets(targets_frame(libraries))
                self._synced = state
                if any(counts.values()):
                    logger.info("target index refreshed: %s", counts)
            return self._model, self._manifest

    def status(self) -> dict[str, Any]:
        """What /health reports."""
        return {"model_version": self._manifest.get("version"), "failed_version": self._failed}

    # ---------------------------------------------------------------- matching
    def match(self, request: MatchRequest) -> dict[str, Any]:
        """The response body of a match request.

        ``{"model_version", "need": {"id", "text" (normalised: the text that reason spans index),
        "tags", "counties", "org_id"}, "results": {target_type: [{"id", "name", "score", "reasons"}]}}``.
        """
        model, manifest = self.model()
        with self._lock:
            need = resolve_need(request, self.libraries())
            county = request.filters.county if request.filters else None
            results = model.recommend(need, k=request.k, target_types=request.targets, county=county)
        logger.info("matched need %s (%d characters)", need["id"] or "<free text>", len(need["text"] or ""))
        return {
            "model_version": manifest["version"],
            "need": {**need, "text": model.vectorizer_.preprocessor(need["text"])},
            "results": results,
        }
