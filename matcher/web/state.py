"""What the running service holds: the active model and the libraries, reloaded when they change."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from matcher import persist
from matcher.library import Libraries, load_libraries
from matcher.model import Matcher

logger = logging.getLogger(__name__)


class MatchState:
    """The loaded model and libraries of one worker.

    The model follows ``models/ACTIVE``: when it names another version, that version is loaded; if
    loading fails (missing, corrupt, checksum mismatch) the error is logged and the version already
    loaded keeps serving.
    """

    def __init__(self, models_dir: str | Path, data_dir: str | Path) -> None:
        self.models_dir = Path(models_dir)
        self.data_dir = Path(data_dir)
        self._lock = threading.Lock()
        self._model: Matcher | None = None
        self._manifest: dict[str, Any] = {}
        self._failed: str | None = None
        self._libraries: Libraries | None = None

    def model(self) -> tuple[Matcher, dict[str, Any]]:
        """The model to serve with its manifest; raises if none was ever loaded."""
        wanted = persist.active_version(self.models_dir)
        with self._lock:
            loaded = self._manifest.get("version")
            if wanted and wanted != loaded and wanted != self._failed:
                try:
                    self._model, self._manifest = persist.load(wanted, root=self.models_dir)
                    self._failed = None
                    logger.info("serving model version %s", wanted)
                except Exception as error:
                    self._failed = wanted
                    if self._model is None:
                        raise
                    logger.error("could not load model version %s, still serving %s: %s", wanted, loaded, error)
            if self._model is None:
                return persist.load(root=self.models_dir)  # raises the reason there is none
            return self._model, self._manifest

    def libraries(self) -> Libraries:
        """The embedded libraries, read once."""
        with self._lock:
            if self._libraries is None:
                self._libraries = load_libraries(self.data_dir)
            return self._libraries

    def status(self) -> dict[str, Any]:
        """What /health reports."""
        return {"model_version": self._manifest.get("version"), "failed_version": self._failed}
