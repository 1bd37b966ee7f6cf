"""Model versions in ``models/``: ``<version>/model.joblib`` + ``manifest.json``, and ``ACTIVE``.

joblib is pickle, and unpickling can execute arbitrary code, so an artefact is unpickled only after
its sha256 matches the one its manifest records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import tempfile
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib

from matcher.errors import ModelError, NotFoundError

logger = logging.getLogger(__name__)

__all__ = ["activate", "active_version", "list_versions", "load", "models_dir", "read_manifest", "save"]

ARTEFACT = "model.joblib"
MANIFEST = "manifest.json"
ACTIVE = "ACTIVE"
VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}Z$")
PACKAGES = ("matcher", "scikit-learn", "numpy", "scipy", "pandas", "joblib", "jieba", "opencc")


def models_dir() -> Path:
    """The model folder: ``$MATCHER_MODELS_DIR`` or ``./models`` under the working directory."""
    return Path(os.environ.get("MATCHER_MODELS_DIR") or "models")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _new_version(root: Path) -> str:
    """A UTC timestamp ``YYYYMMDDTHHMMSSZ`` that no existing version uses (later seconds if taken)."""
    moment = datetime.now(UTC)
    while (root / moment.strftime("%Y%m%dT%H%M%SZ")).exists():
        moment += timedelta(seconds=1)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _write_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
        temporary = Path(handle.name)
    os.replace(temporary, path)


def save(
    model: Any,
    *,
    root: Path | None = None,
    params: dict[str, Any] | None = None,
    libraries: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    activate_version: bool = True,
) -> str:
    """Write ``model`` as a new version and return the version string.

    The manifest records the version, creation time, parameters, library sizes and content hash,
    package versions and the artefact's sha256. The version folder appears whole or not at all.
    """
    root = root or models_dir()
    root.mkdir(parents=True, exist_ok=True)
    version = _new_version(root)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    artefact = staging / ARTEFACT
    joblib.dump(model, artefact, compress=3)
    manifest = {
        "version": version,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": type(model).__name__,
        "params": _jsonable(params if params is not None else model.get_params(deep=True)),
        "libraries": libraries or {},
        "metrics": metrics or {},
        "packages": _package_versions(),
        "artefact": ARTEFACT,
        "sha256": _sha256(artefact),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, root / version)
    logger.info("saved model version %s", version)
    if activate_version:
        activate(version, root=root)
    return version


def _jsonable(value: Any) -> Any:
    """Parameters as JSON: estimators and callables by their name, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    return type(value).__name__


def list_versions(root: Path | None = None) -> list[str]:
    """Saved versions, oldest first."""
    root = root or models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name))


def active_version(root: Path | None = None) -> str | None:
    """The version named in ``models/ACTIVE``, or None when there is none."""
    path = (root or models_dir()) / ACTIVE
    try:
        version = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return version or None


def activate(version: str, *, root: Path | None = None) -> None:
    """Make ``version`` the active one (an atomic rewrite of ``ACTIVE``)."""
    root = root or models_dir()
    if not VERSION_PATTERN.match(version) or not (root / version / MANIFEST).is_file():
        raise NotFoundError(f"no model version {version!r} in {root}")
    _write_atomic(root / ACTIVE, version + "\n")


def read_manifest(version: str, *, root: Path | None = None) -> dict[str, Any]:
    """The manifest of ``version``."""
    path = (root or models_dir()) / version / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise NotFoundError(f"no model version {version!r}: {path} not found") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: not a valid manifest ({error})") from error


def load(version: str | None = None, *, root: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Load ``version`` (default: the active one) after checking its sha256.

    Raises
    ------
    NotFoundError
        No such version.
    ModelError
        No active version, or the artefact is missing or its sha256 differs from the manifest's; it is then not unpickled.
    """
    root = root or models_dir()
    version = version or active_version(root)
    if version is None:
        raise ModelError(f"no active model in {root}: run `matcher train` first")
    manifest = read_manifest(version, root=root)
    artefact = root / version / manifest.get("artefact", ARTEFACT)
    if not artefact.is_file():
        raise ModelError(f"{artefact}: model artefact not found")
    digest = _sha256(artefact)
    if digest != manifest.get("sha256"):
        raise ModelError(
            f"{artefact}: sha256 {digest[:12]}… does not match the manifest's "
            f"{str(manifest.get('sha256'))[:12]}…; refusing to load it"
        )
    return joblib.load(artefact), manifest
