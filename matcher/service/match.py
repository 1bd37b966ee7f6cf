"""One match request in, one response body out: the single path behind the CLI and the HTTP API.

:class:`MatchService` holds what a process serves with: the active model version (followed through
``models/ACTIVE``), the libraries from the database (reloaded when their revision changes) and the
model's target index kept in step with them, so that a new, edited, deleted or fully booked target is
matched correctly at once, without retraining.

Every request checks ``models/ACTIVE`` (one small file read), so each process of a server switches
to a newly activated version on its next request, without a restart and without dropping a
request; a version that fails its checks is logged and the loaded one keeps serving.

Personal data: the need's text goes to the model through :func:`matcher.text.privacy.index_text`, so
phone, ID card, e-mail and bank card numbers are never matched on and never shown in ``need.text``
or in the matched terms; logs get the need's id or length, never its text.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from matcher.errors import FieldError
from matcher.inputs.frames import need_record
from matcher.inputs.library import Libraries
from matcher.jobs.sources import sync_index
from matcher.matching import persist
from matcher.matching.estimator import Matcher
from matcher.matching.rank import WEAK_SCORE
from matcher.matching.reasons import term_spans
from matcher.quality.gaps import find_gaps
from matcher.quality.supply import coverage
from matcher.store.db import database_url as default_database_url
from matcher.store.db import dispose_engines
from matcher.store.libraries import load_libraries_db
from matcher.store.seed import ensure_database
from matcher.store.transactions import peek_revision, revision, transaction
from matcher.text.normalise import normalise
from matcher.text.privacy import index_text, redact, shown_index_text

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_K",
    "MAX_TEXT_LENGTH",
    "Filters",
    "MatchRequest",
    "MatchResponse",
    "MatchService",
    "resolve_need",
]

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
    tags: list[str] | None = Field(
        default=None,
        max_length=20,
        description=(
            "Tags of a free-text need: labels of the taxonomy (400 otherwise). Absent: inferred from the text "
            "(see `need.inferred_tags`); `[]` or a list: exactly those."
        ),
    )
    k: int = Field(default=5, ge=1, le=MAX_K, description="Results per target type.")
    targets: list[TargetType] | None = Field(default=None, min_length=1, max_length=3)
    filters: Filters | None = None
    profiles: bool = Field(
        default=False,
        description=(
            "Add each target's `profile` (its normalised text, tags, counties and, for experts, capacity and "
            "load) and each matched term's `profile_spans` in that text: what the web page highlights."
        ),
    )

    @model_validator(mode="after")
    def _one_need(self) -> MatchRequest:
        if (self.text is None) == (self.need_id is None):
            raise ValueError("give exactly one of 'text' and 'need_id'")
        if self.need_id is not None and self.tags is not None:
            raise ValueError("'tags' goes with 'text'; a stored need has its own tags")
        return self


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


Span = Annotated[list[int], Field(min_length=2, max_length=2)]


class Term(_Out):
    """A matched term: its weight in the score and its ``[start, end)`` spans in ``need.text``."""

    term: str
    weight: float
    spans: list[Span]
    profile_spans: list[Span] | None = Field(
        default=None, description="Spans of the term in the target's `profile.text` (with `profiles`)."
    )


class Region(_Out):
    match: bool = Field(description="Whether the target serves one of the need's counties.")
    counties: list[str] = Field(description="The need's counties.")


class Components(_Out):
    """The parts of the score; they sum to it."""

    text: float
    tags: float
    region: float
    name: float = Field(default=0.0, description="The part of a target's name (or brand) found in the need.")


class RerankFeature(BaseModel):
    model_config = ConfigDict(extra="allow")

    feature: str
    label: str | None = Field(default=None, description="The factor for a reader, in Chinese (`地区不同`, `类型：高校学者`).")
    value: float
    effect: float = Field(description="Effect on the logit of acceptance, against the training mean.")


class RerankReason(BaseModel):
    """Present when a re-ranker trained on coordinators' decisions re-scored the target."""

    model_config = ConfigDict(extra="allow")

    model: str
    base: float
    features: list[RerankFeature]


class Reasons(_Out):
    terms: list[Term]
    tags: list[str] = Field(description="The need's tags the target carries.")
    region: Region
    components: Components
    rerank: RerankReason | None = None


class Profile(_Out):
    """What the target's match was computed on (present with ``profiles``)."""

    text: str = Field(description="The normalised profile text (personal data redacted) that `profile_spans` index.")
    tags: list[str]
    counties: list[str]
    capacity: int | None = Field(default=None, description="An expert's capacity (open engagements at a time).")
    load: int | None = Field(default=None, description="An expert's open engagements now.")
    available: bool


class MatchResult(_Out):
    id: str
    name: str
    score: float = Field(description="Higher is better; comparable across needs for one model version.")
    reasons: Reasons
    profile: Profile | None = None


class InferredTag(_Out):
    tag: str = Field(description="A taxonomy label.")
    probability: float = Field(ge=0, le=1, description="The tag classifier's probability of the label.")


class MatchedNeed(_Out):
    id: str | None = Field(description="The stored need's id; null for free text.")
    text: str = Field(description="The normalised need text (personal data redacted) that term spans index.")
    tags: list[str] = Field(description="The tags matched on: the stored or given ones, or those inferred.")
    counties: list[str]
    org_id: str | None
    inferred_tags: list[InferredTag] | None = Field(
        default=None,
        description=(
            "Present when the request sent free text without `tags`: the tags inferred from the text, most "
            "probable first (those above the model's threshold; they are `tags`)."
        ),
    )


class MatchResults(_Out):
    """Ranked targets of each requested type, best first."""

    expert: list[MatchResult] | None = None
    resource: list[MatchResult] | None = None
    project: list[MatchResult] | None = None


class MatchResponse(_Out):
    """The body of ``POST /v1/match`` (and of ``matcher match --json``)."""

    model_version: str
    need: MatchedNeed
    results: MatchResults


def _taxonomy_labels(tags: list[str], libraries: Libraries) -> list[str]:
    """``tags`` as the taxonomy's labels (compared in normal form); :class:`FieldError` naming any other."""
    labels = {normalise(label): label for label in libraries.taxonomy["label"]}
    found, errors = [], []
    for index, tag in enumerate(tags):
        label = labels.get(normalise(tag))
        if label is None:
            errors.append({"field": f"tags.{index}", "message": f"tags.{index}: {tag!r} is not a tag of the taxonomy"})
        elif label not in found:
            found.append(label)
    if errors:
        raise FieldError(errors)
    return found


def resolve_need(request: MatchRequest, libraries: Libraries) -> dict[str, Any]:
    """The need a request names: a stored need (with tags, county, organisation) or the free text.

    A free-text need's ``tags`` must be labels of the taxonomy (:class:`FieldError` otherwise), or None
    when the request sent none (the model infers them). A free-text need filtered to a county is taken
    to be in that county (its region reason matches).
    """
    if request.need_id is None:
        county = request.filters.county if request.filters else None  # a free-text need is where it is asked for
        return {
            "id": None,
            "text": request.text,
            "tags": None if request.tags is None else _taxonomy_labels(request.tags, libraries),  # None: inferred
            "counties": [county] if county else [],
            "org_id": None,
        }
    return need_record(libraries, request.need_id)


class MatchService:
    """The model, libraries and database one process serves with.

    Parameters
    ----------
    models_dir : the model folder (``models/``).
    data_dir : the embedded sample libraries that fill an empty database.
    database_url : the database (``DATABASE_URL``; default the embedded SQLite file).
    signing_key : the key model versions must be signed with (default ``$MATCHER_SIGNING_KEY``; see
        :mod:`matcher.matching.persist`).
    """

    def __init__(
        self,
        models_dir: str | Path,
        data_dir: str | Path,
        database_url: str | None = None,
        *,
        signing_key: str | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.data_dir = Path(data_dir)
        self.database_url = database_url or default_database_url()
        self.signing_key = signing_key
        self._lock = threading.RLock()
        self._ready = False
        self._model: Matcher | None = None
        self._manifest: dict[str, Any] = {}
        self._failed: str | None = None
        self._libraries: tuple[int, Libraries] | None = None
        self._synced: tuple[str, int] | None = None
        self._targets: pd.DataFrame | None = None  # the frame the index was last synced with, by (type, id)

    # ---------------------------------------------------------------- libraries
    def ensure_database(self) -> None:
        """Create, migrate and (when empty) fill the database, once per process."""
        with self._lock:
            if not self._ready:
                ensure_database(self.database_url, self.data_dir)
                self._ready = True

    def libraries(self) -> Libraries:
        """The libraries as stored now (reloaded when their revision changes).

        Every call reads the revision from the database (one ``SELECT`` outside any transaction, so
        concurrent requests never queue on SQLite's write lock); only a new revision loads the
        libraries, in a transaction.
        """
        self.ensure_database()
        cached = self._libraries
        if cached is not None and peek_revision(self.database_url) == cached[0]:
            return cached[1]
        with self._lock, transaction(self.database_url) as session:
            current = revision(session)
            if self._libraries is None or self._libraries[0] != current:
                self._libraries = (current, load_libraries_db(session))
            return self._libraries[1]

    def revision(self) -> int:
        """The revision of the libraries last loaded (-1 before any)."""
        return self._libraries[0] if self._libraries else -1

    def close(self) -> None:
        """Dispose of the database engine (its pooled connections); a later call opens a new one."""
        dispose_engines(self.database_url)

    # ---------------------------------------------------------------- model
    def _load_active(self) -> None:
        wanted = persist.active_version(self.models_dir)
        loaded = self._manifest.get("version")
        if wanted and wanted != loaded and wanted != self._failed:
            try:
                self._model, self._manifest = persist.load(wanted, root=self.models_dir, key=self.signing_key)
                self._failed = None
                self._synced = None
                logger.info("serving model version %s", wanted)
            except Exception as error:
                self._failed = wanted
                if self._model is None:
                    raise
                logger.error("could not load model version %s, still serving %s: %s", wanted, loaded, error)
        if self._model is None:
            persist.load(root=self.models_dir, key=self.signing_key)  # raises the reason there is none

    def model(self) -> tuple[Matcher, dict[str, Any]]:
        """The model to serve, its index in step with the libraries, and its manifest.

        A version that fails to load (missing, corrupt, checksum or signature mismatch) is logged
        and the version already loaded keeps serving.
        """
        model, manifest, _ = self._serving()
        return model, manifest

    def _serving(self) -> tuple[Matcher, dict[str, Any], Libraries]:
        libraries = self.libraries()
        with self._lock:
            self._load_active()
            state = (self._manifest["version"], self.revision())
            if self._synced != state:
                frame, counts = sync_index(self._model, libraries)
                self._targets = frame.set_index(["target_type", "id"])
                self._synced = state
                if any(counts.values()):
                    logger.info("target index refreshed: %s", counts)
            return self._model, self._manifest, libraries

    def status(self) -> dict[str, Any]:
        """What /health reports."""
        return {"model_version": self._manifest.get("version"), "failed_version": self._failed}

    # ---------------------------------------------------------------- matching
    def match(self, request: MatchRequest) -> dict[str, Any]:
        """The response body of a match request (see :class:`MatchResponse`).

        ``{"model_version", "need": {"id", "text" (normalised, personal data redacted: the text that
        reason spans index), "tags", "counties", "org_id", "inferred_tags" (free text without tags)},
        "results": {target_type: [{"id", "name",
        "score", "reasons"}]}}``.
        """
        model, manifest, libraries = self._serving()
        with self._lock:
            need = resolve_need(request, libraries)
            org_name = need.pop("org_name", None)
            shown = redact(need["text"] or "")
            county = request.filters.county if request.filters else None
            text = index_text(shown)
            if need["tags"] is None:  # what the batch infers for the same text, through the same model
                need["inferred_tags"] = model.infer_tags([text])[0]
                need["tags"] = [item["tag"] for item in need["inferred_tags"]]
            results = model.recommend(
                {**need, "text": text, "org_name": org_name}, k=request.k, target_types=request.targets, county=county
            )
            if request.profiles:
                self._add_profiles(model, results)
        logger.info("matched need %s (%d characters)", need["id"] or "<free text>", len(shown))
        return {
            "model_version": manifest["version"],
            "need": {**need, "text": model.vectorizer_.preprocessor(shown)},
            "results": results,
        }

    def _add_profiles(self, model: Matcher, results: dict[str, list[dict[str, Any]]]) -> None:
        """Give each result its ``profile`` and each matched term its ``profile_spans`` in it."""
        for target_type, matches in results.items():
            for match in matches:
                row = self._targets.loc[(target_type, match["id"])]
                text = model.vectorizer_.preprocessor(shown_index_text("\n".join(t for t in row["texts"] if t)))
                is_expert = target_type == "expert"
                match["profile"] = {
                    "text": text,
                    "tags": list(row["tags"]),
                    "counties": list(row["counties"]),
                    "capacity": int(row["capacity"]) if is_expert and pd.notna(row["capacity"]) else None,
                    "load": int(row["load"]) if is_expert else None,
                    "available": bool(row["available"]),
                }
                for term in match["reasons"]["terms"]:
                    term["profile_spans"] = term_spans(text, term["term"])

    # ---------------------------------------------------------------- the base's overview
    def overview(self, *, weakest: int = 10, threshold: float = WEAK_SCORE) -> dict[str, Any]:
        """Open needs against free expert places per category, and the weakest-served open needs.

        ``{"model_version", "threshold", "categories": [{"category", "open_needs", "experts",
        "free_places", "resources", "projects"}], "weakest": [{"need_id", "title", "org_id",
        "org_name", "county", "tags", "best_score", "best_id", "best_name"}], "weak_needs"}``: the
        supply-gap analysis of ``matcher gaps`` (a need is weak when its best expert scores below
        ``threshold``) on the libraries as stored now.
        """
        model, manifest, libraries = self._serving()
        with self._lock:
            gaps, _ = find_gaps(model, libraries, status="open", threshold=threshold)
            names = model.targets("expert").set_index("id")["name"]
        needs = libraries.needs.set_index("id")
        orgs = libraries.organisations.set_index("id")["name"]
        gaps = gaps.sort_values(["best_score", "need_id"], kind="stable")
        categories = coverage(libraries).reset_index()
        columns = ["category", "open_needs", "experts", "free_places", "resources", "projects"]
        return {
            "model_version": manifest["version"],
            "threshold": threshold,
            "categories": [
                {key: (value if key == "category" else int(value)) for key, value in row.items()}
                for row in categories[columns].to_dict("records")
            ],
            "weak_needs": int(gaps["weak"].sum()),
            "weakest": [
                {
                    "need_id": row.need_id,
                    "title": row.title,
                    "org_id": needs.at[row.need_id, "org_id"] or None,
                    "org_name": orgs.get(needs.at[row.need_id, "org_id"]),
                    "county": row.county or None,
                    "tags": list(needs.at[row.need_id, "tags"]),
                    "best_score": float(row.best_score),
                    "best_id": row.best_id or None,
                    "best_name": names.get(row.best_id) if row.best_id else None,
                }
                for row in gaps.head(weakest).itertuples()
            ],
        }
