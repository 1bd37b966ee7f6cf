"""Training a model version from the libraries: the one recipe behind ``matcher train``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from matcher import persist
from matcher.library import Libraries, needs_frame, targets_frame
from matcher.model import build_matcher

logger = logging.getLogger(__name__)

__all__ = ["stored_libraries", "train_version"]


def stored_libraries(database_url: str | None = None, data: Path | None = None) -> Libraries:
    """The libraries from the database, created and filled from ``data`` on first use."""
    from matcher.store.repository import ensure_database, load_libraries_db, transaction

    ensure_database(database_url, data)
    with transaction(database_url) as session:
        return load_libraries_db(session)


def train_version(
    params: dict[str, Any] | None = None,
    *,
    data: Path | None = None,
    models: Path | None = None,
    database_url: str | None = None,
    activate: bool = True,
    evaluate: bool = True,
) -> str:
    """Fit the default matcher (with ``params``) on the stored libraries, save it, return its version.

    The matcher is fitted on the current profiles, its tag classifier on the stored needs' tags and the
    taxonomy, and its re-ranker on every recorded decision (a target type with too little feedback, or
    one that does not beat the weighted sum on held-back later decisions, keeps the weighted sum). With ``evaluate``, the manifest's
    ``metrics`` also hold the held-out figures of the same recipe fitted on the decisions before a
    cutoff and tested on the last quarter (see :func:`matcher.evaluate.evaluate_history`).
    """
    model = build_matcher(params)  # unknown parameters fail before any work
    libs = stored_libraries(database_url, data)
    model.fit(targets_frame(libs))
    model.fit_tagger(needs_frame(libs), libs.taxonomy)
    model.fit_reranker(libs)
    metrics: dict[str, Any] = {"reranker": model.reranker_.summary()}
    if model.tagger_ is not None:
        metrics["tagger"] = {
            "threshold": model.tagger_.threshold_,
            "cv_micro_f1": None if model.tagger_.cv_f1_ is None else round(model.tagger_.cv_f1_, 4),
            "labels": len(model.tagger_.classes_),
        }
    if evaluate and len(libs.decisions):
        metrics["held_out"] = _held_out(libs, params)
    return persist.save(
        model,
        root=models,
        libraries={"sizes": libs.sizes(), "content_hash": libs.content_hash},
        metrics=metrics,
        activate_version=activate,
    )


def _held_out(libs: Libraries, params: dict[str, Any] | None) -> dict[str, Any]:
    """nDCG@5 of the re-ranker and the untrained fusion on the last quarter of the decisions."""
    from matcher.evaluate import evaluate_history

    result = evaluate_history(libs, params, n_resamples=200)
    figures: dict[str, Any] = {"cutoff": result.cutoff.isoformat(), "test_share": 0.25}
    for row in result.rows:
        if row["metric"] == "nDCG" and row["k"] == 5 and row["method"] in ("reranker", "fusion", "char_tfidf"):
            figures[f"ndcg@5_{row['method']}"] = [row["value"], row["ci_low"], row["ci_high"]]
            figures["sessions"] = row["n"]
    return figures
