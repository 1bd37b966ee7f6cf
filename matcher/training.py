"""Training a model version from the libraries: the one recipe behind ``matcher train``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from matcher import persist
from matcher.library import load_libraries, targets_frame
from matcher.model import build_matcher

logger = logging.getLogger(__name__)

__all__ = ["train_version"]


def train_version(
    params: dict[str, Any] | None = None,
    *,
    data: Path | None = None,
    models: Path | None = None,
    activate: bool = True,
) -> str:
    """Fit the default matcher (with ``params``) on the libraries, save it, and return its version."""
    libs = load_libraries(data)
    model = build_matcher(params).fit(targets_frame(libs))
    return persist.save(
        model,
        root=models,
        libraries={"sizes": libs.sizes(), "content_hash": libs.content_hash},
        activate_version=activate,
    )
