"""Training a model version, from the database or from files: the one recipe behind ``matcher train``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matcher.errors import BatchError
from matcher.inputs.frames import needs_frame, table_needs_frame, table_targets_frame, targets_frame
from matcher.inputs.library import Libraries
from matcher.jobs import batch
from matcher.matching import persist
from matcher.matching.estimator import build_matcher
from matcher.matching.judgments import read_judgments
from matcher.quality.history import evaluate_history
from matcher.store.libraries import load_libraries_db
from matcher.store.seed import ensure_database
from matcher.store.transactions import transaction

logger = logging.getLogger(__name__)

__all__ = ["stored_libraries", "train_files", "train_version"]


def stored_libraries(database_url: str | None = None, data: Path | None = None) -> Libraries:
    """The libraries from the database, created and filled from ``data`` on first use."""
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
    cutoff and tested on the last quarter (see :func:`matcher.quality.history.evaluate_history`).
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
    result = evaluate_history(libs, params, n_resamples=200)
    figures: dict[str, Any] = {"cutoff": result.cutoff.isoformat(), "test_share": 0.25}
    for row in result.rows:
        if row["metric"] == "nDCG" and row["k"] == 5 and row["method"] in ("reranker", "fusion", "char_tfidf"):
            figures[f"ndcg@5_{row['method']}"] = [row["value"], row["ci_low"], row["ci_high"]]
            figures["sessions"] = row["n"]
    return figures


def train_files(
    needs: str | os.PathLike[str],
    targets: Mapping[str, str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    judgments: str | os.PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    command: list[str] | None = None,
) -> str:
    """``matcher train --needs``: fit a model version on files, without the database; never activated.

    The matcher is fitted on the target files (as ``matcher batch`` fits it), the tag classifier as
    batch file mode fits it (:func:`matcher.jobs.batch.fit_tagger`), and with ``judgments`` the re-ranker on
    the graded judgments (:meth:`Matcher.fit_judgments`). The version folder ``out`` holds
    ``model.joblib`` and ``manifest.json`` (``source`` ``files``, the command, the inputs' sha256).
    Nothing is written when any input is invalid.

    Raises
    ------
    TableError
        An input file is invalid (naming the file, row and column).
    BatchError, ModelError
        Bad parameters or output folder.
    """
    out = Path(os.fspath(out))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BatchError(f"{out}: already exists and is not an empty folder; choose a new --out")
    if not targets:
        raise BatchError("no target files: give at least one of experts, resources and projects")
    batch.checked_matcher(params)
    need_table, tables = batch.read_inputs(needs, targets)
    need_rows = table_needs_frame(need_table)
    judged = None
    if judgments is not None:
        judged = read_judgments(
            judgments, needs=need_rows["id"], targets={t: table.frame["id"] for t, table in tables.items()}
        )
    model = batch.fit_matcher(table_targets_frame(tables), params)
    batch.fit_tagger(model, need_rows)
    metrics: dict[str, Any] = {}
    if judged is not None:
        model.fit_judgments(need_rows, judged)
        metrics["reranker"] = model.reranker_.summary()
        metrics["judgments"] = {"pairs": len(judged), "needs": int(judged["need_id"].nunique())}
    inputs = {"needs": Path(os.fspath(needs)), **{f"{t}s": Path(os.fspath(p)) for t, p in targets.items()}}
    if judgments is not None:
        inputs["judgments"] = Path(os.fspath(judgments))
    sizes = {"needs": len(need_rows), **{f"{t}s": len(table.frame) for t, table in tables.items()}}
    return persist.save_folder(
        model, out, libraries={"sizes": sizes}, metrics=metrics, command=command, inputs=inputs
    )
