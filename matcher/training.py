"""Training a model version from the libraries: the one recipe behind ``matcher train``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from matcher import persist
from matcher.library import Libraries, targets_frame
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
) -> str:
    """Fit the default matcher (with ``params``) on the stored libraries, save it, return its version."""
    model = build_matcher(params)  # unknown parameters fail before any work
    libs = stored_libraries(database_url, data)
    model.fit(targets_frame(libs))
    return persist.save(
        model,
        root=models,
        libraries={"sizes": libs.sizes(), "content_hash": libs.content_hash},
        activate_version=activate,
    )
