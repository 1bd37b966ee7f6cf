"""The one loader of the database mode: the active model, its index in step with the stored libraries, the open needs.

Every job that works on the database (``matcher batch`` and ``matcher assign`` without ``--needs``,
``matcher gaps``, event planning) and the HTTP service read their inputs by the same rule:

1. the model is the active version of the model folder (no model: fail before touching the database);
2. the libraries are read in one transaction, with their revision, after the database is created,
   migrated and (when empty) filled from the data folder;
3. the model's target index is brought in step with the libraries (:func:`sync_index`: deleted,
   unavailable and fully booked targets as the database has them now);
4. the needs to match are the open ones, in id order (:func:`open_needs`).

:func:`load_active` does all four and returns an :class:`ActiveSources`; the service, which caches the
model and the libraries between requests, calls the steps it needs (:func:`sync_index`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from matcher.inputs.frames import needs_frame, targets_frame
from matcher.inputs.library import Libraries
from matcher.inputs.library import data_dir as default_data_dir
from matcher.matching import persist
from matcher.matching.estimator import Matcher
from matcher.store.db import database_url as default_database_url
from matcher.store.libraries import load_libraries_db
from matcher.store.seed import ensure_database
from matcher.store.transactions import revision, transaction

logger = logging.getLogger(__name__)

__all__ = ["ActiveSources", "load_active", "open_needs", "read_libraries", "sync_index"]


@dataclass(frozen=True)
class ActiveSources:
    """What the database mode works on.

    Attributes
    ----------
    model : Matcher
        The active model, its target index in step with ``libraries``.
    manifest : dict
        The model version's manifest.
    libraries : Libraries
        The libraries as stored when they were read.
    revision : int
        Their revision (bumped by every write).
    needs : DataFrame
        The open needs as the model's needs frame (:func:`open_needs`), in id order.
    database_url : str
        The database read (the resolved URL, with its password: never log it, see
        :func:`matcher.store.db.safe_url`).
    load_seconds, sync_seconds : float
        Seconds to load the model and the libraries, and to sync the index and build the needs frame.
    """

    model: Matcher
    manifest: dict[str, Any]
    libraries: Libraries
    revision: int
    needs: pd.DataFrame
    database_url: str
    load_seconds: float = 0.0
    sync_seconds: float = 0.0

    @property
    def model_version(self) -> str:
        """The version of the model (as the manifest names it)."""
        return str(self.manifest.get("version"))


def open_needs(libraries: Libraries) -> pd.DataFrame:
    """The needs with status ``open`` as the model's needs frame (``id, text, tags, counties, org_id, org_name``)."""
    open_ids = libraries.needs.loc[libraries.needs["status"] == "open", "id"].tolist()
    return needs_frame(libraries, open_ids)


def sync_index(model: Matcher, libraries: Libraries) -> tuple[pd.DataFrame, dict[str, int]]:
    """Bring ``model``'s target index in step with ``libraries`` (:meth:`Matcher.sync_targets`).

    Returns the targets frame the index now holds and the counts of targets added, changed and removed.
    """
    frame = targets_frame(libraries)
    counts = model.sync_targets(frame)
    return frame, counts


def read_libraries(url: str) -> tuple[int, Libraries]:
    """The libraries stored at ``url`` and their revision, read in one transaction."""
    with transaction(url) as session:
        return revision(session), load_libraries_db(session)


def load_active(
    *,
    database_url: str | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    key: str | None = None,
) -> ActiveSources:
    """The active model synced with the database, and the open needs (see the module docstring).

    ``database_url`` defaults to ``DATABASE_URL``, ``models_dir`` to ``MATCHER_MODELS_DIR``
    (``./models``), ``data_dir`` (where an empty database is filled from) to ``MATCHER_DATA_DIR``;
    ``key`` is the signing key the model version is checked with (default ``MATCHER_SIGNING_KEY``).

    Raises
    ------
    matcher.errors.ModelError
        No active model, or a corrupt one (the database is not touched then).
    matcher.errors.DatabaseUnavailableError
        The database cannot be reached.
    """
    started = time.perf_counter()
    url = database_url or default_database_url()
    root = Path(os.fspath(models_dir)) if models_dir is not None else persist.models_dir()
    model, manifest = persist.load(root=root, key=key)  # no model: fail before touching the database
    ensure_database(url, data_dir if data_dir is not None else default_data_dir())
    library_revision, libraries = read_libraries(url)
    loaded = time.perf_counter()
    sync_index(model, libraries)
    needs = open_needs(libraries)
    return ActiveSources(
        model=model,
        manifest=manifest,
        libraries=libraries,
        revision=library_revision,
        needs=needs,
        database_url=url,
        load_seconds=loaded - started,
        sync_seconds=time.perf_counter() - loaded,
    )
