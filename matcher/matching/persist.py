"""Model versions in ``models/``: ``<version>/model.joblib`` + ``manifest.json``, ``ACTIVE`` and ``HISTORY``.

joblib is pickle, and unpickling can execute arbitrary code, so an artefact is unpickled only after
its sha256 matches the one its manifest records. When a signing key is configured
(``MATCHER_SIGNING_KEY``), manifests also carry ``artefact_hmac``, the HMAC-SHA256 of the artefact's
sha256 under that key, and a version without it, or with a wrong one, is refused: whoever can write
to ``models/`` but does not hold the key cannot get a model loaded.

``ACTIVE`` names the version to serve (every server process follows it, see
:class:`matcher.service.match.MatchService`); ``HISTORY`` is an append-only JSON-lines record of every
activation and rollback, which :func:`rollback` replays to find the version active before.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import hmac
import importlib
import json
import logging
import os
import platform
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import joblib
from joblib import numpy_pickle

from matcher.config import SIGNING_KEY_ENV, Settings
from matcher.errors import ConflictError, ModelError, NotFoundError

logger = logging.getLogger(__name__)

__all__ = [
    "activate",
    "active_version",
    "describe_versions",
    "file_sha256",
    "history",
    "jsonable",
    "list_versions",
    "load",
    "load_folder",
    "models_dir",
    "moved",
    "read_manifest",
    "rollback",
    "save",
    "save_folder",
    "sign",
    "signing_key",
    "unpickle",
    "verify",
]

ARTEFACT = "model.joblib"
MANIFEST = "manifest.json"
ACTIVE = "ACTIVE"
HISTORY = "HISTORY"
LOCK = ".lock"
VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}Z$")
PACKAGES = ("matcher", "scikit-learn", "numpy", "scipy", "pandas", "joblib", "jieba", "rjieba", "opencc")


def models_dir() -> Path:
    """The model folder: ``$MATCHER_MODELS_DIR`` or ``./models`` under the working directory."""
    return Settings.from_env().models_dir


def signing_key(key: str | None = None) -> str | None:
    """``key`` when given, else ``$MATCHER_SIGNING_KEY``; None (or empty) means versions are not signed."""
    key = key if key is not None else Settings.from_env().signing_key
    return key or None


def _hmac(key: str, digest: str) -> str:
    return hmac.new(key.encode("utf-8"), digest.encode("ascii"), hashlib.sha256).hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of the file at ``path`` (hex), read a megabyte at a time."""
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
    key: str | None = None,
) -> str:
    """Write ``model`` as a new version and return the version string.

    The manifest records the version, creation time, parameters, library sizes and content hash,
    package versions and the artefact's sha256, ``source`` ``database``, and, with a signing key
    (``key`` or ``$MATCHER_SIGNING_KEY``), ``artefact_hmac``. The version folder appears whole or not at all.
    """
    root = root or models_dir()
    root.mkdir(parents=True, exist_ok=True)
    version = _new_version(root)
    _write_version(
        model, root / version, version, params=params, libraries=libraries, metrics=metrics, key=key,
        extra={"source": "database"},
    )
    logger.info("saved model version %s", version)
    if activate_version:
        activate(version, root=root, key=key)
    return version


def save_folder(
    model: Any,
    folder: Path,
    *,
    libraries: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    command: list[str] | None = None,
    inputs: dict[str, Path] | None = None,
    key: str | None = None,
) -> str:
    """Write a model fitted on files as the version folder ``folder`` (``model.joblib`` + ``manifest.json``).

    The folder must not exist or be empty; it appears whole or not at all and is never activated. The
    manifest records ``source`` ``files``, the ``command`` and each input file's path and sha256
    (``inputs``: role -> path). Returns the version string (a UTC timestamp, as :func:`save`).
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ModelError(f"{folder}: already exists and is not an empty folder; choose a new --out")
    folder.parent.mkdir(parents=True, exist_ok=True)
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    files = {role: {"path": str(path), "sha256": file_sha256(Path(path))} for role, path in (inputs or {}).items()}
    if folder.exists():
        folder.rmdir()
    _write_version(
        model, folder, version, libraries=libraries, metrics=metrics, key=key,
        extra={"source": "files", "command": list(command or []), "inputs": files},
    )
    logger.info("saved model version %s in %s (fitted on files, not activated)", version, folder)
    return version


def _write_version(
    model: Any,
    folder: Path,
    version: str,
    *,
    params: dict[str, Any] | None = None,
    libraries: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    key: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Stage the artefact and manifest beside ``folder``, then move them into place in one rename."""
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=folder.parent))
    artefact = staging / ARTEFACT
    joblib.dump(model, artefact, compress=3)
    manifest = {
        "version": version,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": type(model).__name__,
        "params": jsonable(params if params is not None else model.get_params(deep=True)),
        "libraries": libraries or {},
        "metrics": metrics or {},
        "packages": _package_versions(),
        "segmenter": _segmenter_of(model),
        "artefact": ARTEFACT,
        "sha256": file_sha256(artefact),
        **(extra or {}),
    }
    key = signing_key(key)
    if key:
        manifest["artefact_hmac"] = _hmac(key, manifest["sha256"])
    (staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, folder)


def _segmenter_of(model: Any) -> dict[str, str] | None:
    """The word segmenter that built ``model``'s vocabulary (:func:`matcher.text.segment.segmenter` at fit time),
    None when its text analysis has no segmented words."""
    return getattr(getattr(model, "vectorizer_", None), "segmenter_", None)


def load_folder(folder: Path, *, key: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Load the version folder ``folder`` (as :func:`load`: only after its sha256, and HMAC, check)."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise NotFoundError(f"{folder}: not a model version folder (no {MANIFEST})")
    return load(folder.name, root=folder.parent, key=key)


def jsonable(value: Any) -> Any:
    """Parameters as JSON: dicts with sorted text keys, estimators and callables by their name, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
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


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialise activations and rollbacks of one models folder (across processes)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _append_history(root: Path, entry: dict[str, Any]) -> None:
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    with (root / HISTORY).open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def _check_exists(version: str, root: Path) -> None:
    if not VERSION_PATTERN.match(version) or not (root / version / MANIFEST).is_file():
        raise NotFoundError(f"no model version {version!r} in {root}")


def activate(
    version: str, *, root: Path | None = None, key: str | None = None, by: str | None = None, check: bool = True
) -> str | None:
    """Make ``version`` the active one (an atomic rewrite of ``ACTIVE``) and record it in ``HISTORY``.

    With ``check`` (the default) the artefact is verified first (:func:`verify`: sha256, and the
    HMAC when a signing key is configured); a version that fails is refused with :class:`ModelError`
    and ``ACTIVE`` is left as it was. Returns the version that was active before.
    """
    root = root or models_dir()
    _check_exists(version, root)
    if read_manifest(version, root=root).get("source") == "files":
        raise ModelError(
            f"model version {version} was fitted on files (matcher train --needs): its vocabulary and targets "
            "are not the database's, so it cannot serve; use it with matcher batch --model"
        )
    if check:
        verify(version, root=root, key=key)
    with _locked(root):
        previous = active_version(root)
        _write_atomic(root / ACTIVE, version + "\n")
        _append_history(
            root, {"at": _now(), "action": "activate", "version": version, "previous": previous, "by": by or _who()}
        )
    logger.info("activated model version %s (was %s)", version, previous)
    return previous


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def history(root: Path | None = None) -> list[dict[str, Any]]:
    """The entries of ``HISTORY``, oldest first (unreadable lines are skipped)."""
    path = (root or models_dir()) / HISTORY
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("version"), str):
            entries.append(entry)
    return entries


def _stack(root: Path) -> list[str]:
    """The chain of versions activated, each rollback undoing the last step, ending at ``ACTIVE``."""
    stack: list[str] = []
    for entry in history(root):
        version = entry["version"]
        if entry.get("action") == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != version:
                stack.append(version)
        elif not stack or stack[-1] != version:
            stack.append(version)
    current = active_version(root)
    if current and (not stack or stack[-1] != current):
        stack.append(current)
    return stack


def rollback(*, root: Path | None = None, key: str | None = None, by: str | None = None) -> tuple[str, str]:
    """Go back to the version that was active before the current one; returns ``(from, to)``.

    The previous version is verified like any activation; when it fails, or when there is no
    previous version, nothing changes (:class:`ModelError` / :class:`ConflictError`).
    """
    root = root or models_dir()
    with _locked(root):
        stack = _stack(root)
        if len(stack) < 2:
            raise ConflictError(f"no previous model version to roll back to in {root}")
        current, target = stack[-1], stack[-2]
        _check_exists(target, root)
        verify(target, root=root, key=key)
        _write_atomic(root / ACTIVE, target + "\n")
        _append_history(
            root, {"at": _now(), "action": "rollback", "version": target, "previous": current, "by": by or _who()}
        )
    logger.info("rolled back model version %s to %s", current, target)
    return current, target


def describe_versions(root: Path | None = None) -> list[dict[str, Any]]:
    """Every version, newest first: ``version, created_at, model, active, signed, libraries, metrics``.

    Artefacts are not hashed here (see :func:`verify`); a version whose manifest cannot be read is
    listed with ``error``.
    """
    root = root or models_dir()
    active = active_version(root)
    rows = []
    for version in reversed(list_versions(root)):
        row: dict[str, Any] = {"version": version, "active": version == active}
        try:
            manifest = read_manifest(version, root=root)
        except (ModelError, NotFoundError) as error:
            rows.append({**row, "created_at": None, "model": None, "signed": False, "error": str(error)})
            continue
        rows.append(
            {
                **row,
                "created_at": manifest.get("created_at"),
                "model": manifest.get("model"),
                "signed": bool(manifest.get("artefact_hmac")),
                "libraries": manifest.get("libraries") or {},
                "metrics": manifest.get("metrics") or {},
            }
        )
    return rows


def sign(version: str, *, root: Path | None = None, key: str | None = None) -> str:
    """Add (or replace) ``artefact_hmac`` in a version's manifest, after checking its sha256; returns the HMAC.

    For versions saved before a signing key was configured.
    """
    root = root or models_dir()
    key = signing_key(key)
    if not key:
        raise ModelError(f"no signing key: set {SIGNING_KEY_ENV}")
    _check_exists(version, root)
    manifest = verify(version, root=root, key="")
    manifest["artefact_hmac"] = _hmac(key, manifest["sha256"])
    _write_atomic(root / version / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    return manifest["artefact_hmac"]


def read_manifest(version: str, *, root: Path | None = None) -> dict[str, Any]:
    """The manifest of ``version``."""
    path = (root or models_dir()) / version / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise NotFoundError(f"no model version {version!r}: {path} not found") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: not a valid manifest ({error})") from error


def verify(version: str, *, root: Path | None = None, key: str | None = None) -> dict[str, Any]:
    """Check a version without unpickling it; returns its manifest.

    Raises
    ------
    NotFoundError
        No such version.
    ModelError
        The artefact is missing or its sha256 differs from the manifest's; or a signing key is
        configured (``key``, else ``$MATCHER_SIGNING_KEY``; ``key=""`` skips the check) and the
        manifest has no ``artefact_hmac`` or a wrong one.
    """
    root = root or models_dir()
    manifest = read_manifest(version, root=root)
    artefact = root / version / manifest.get("artefact", ARTEFACT)
    if not artefact.is_file():
        raise ModelError(f"{artefact}: model artefact not found")
    digest = file_sha256(artefact)
    if digest != manifest.get("sha256"):
        raise ModelError(
            f"{artefact}: sha256 {digest[:12]}… does not match the manifest's "
            f"{str(manifest.get('sha256'))[:12]}…; refusing to load it"
        )
    key = signing_key(key)
    if key:
        signature = manifest.get("artefact_hmac")
        if not isinstance(signature, str) or not signature:
            raise ModelError(f"model version {version} is not signed (no artefact_hmac) and a signing key is set")
        if not hmac.compare_digest(signature, _hmac(key, digest)):
            raise ModelError(f"model version {version}: artefact_hmac does not match the signing key; refusing it")
    return manifest


def load(version: str | None = None, *, root: Path | None = None, key: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Load ``version`` (default: the active one) after :func:`verify` (sha256, and HMAC when signing).

    Raises
    ------
    NotFoundError
        No such version.
    ModelError
        No active version, or :func:`verify` refuses it (it is then not unpickled), or it was saved by
        an older matcher whose classes have since gone (retrain it).
    """
    root = root or models_dir()
    version = version or active_version(root)
    if version is None:
        raise ModelError(f"no active model in {root}: run `matcher train` first")
    manifest = verify(version, root=root, key=key)
    artefact = root / version / manifest.get("artefact", ARTEFACT)
    try:
        return unpickle(artefact), manifest
    except (AttributeError, ImportError) as error:  # a class it names has gone
        raise ModelError(
            f"model version {version} was saved by an older matcher whose classes have gone ({error}); "
            "train a new version with `matcher train`"
        ) from error


# ------------------------------------------------------------------ versions saved before the move
#: Where the modules of the flat package went when it was grouped by job: a version saved before
#: names ``matcher.model.Matcher`` or the function ``matcher.text.normalise``; each name is looked up
#: in the new modules, in this order (the renamed private classes in :data:`_RENAMED`).
_MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "matcher.model": (
        "matcher.matching.estimator",
        "matcher.matching.index",
        "matcher.matching.scoring",
        "matcher.matching.reasons",
    ),
    "matcher.vectorize": ("matcher.matching.vectorize",),
    "matcher.rerank": ("matcher.matching.rerank",),
    "matcher.judgments": ("matcher.matching.judgments",),
    "matcher.tagging": ("matcher.matching.tagging",),
    "matcher.names": ("matcher.matching.names",),
    "matcher.rank": ("matcher.matching.rank",),
    "matcher.grades": ("matcher.matching.grades",),
    "matcher.text": ("matcher.text.normalise", "matcher.text.segment", "matcher.text.scripts"),
}
_RENAMED = {"_TypeIndex": "TypeIndex", "_NeedBlock": "NeedBlock", "_Ranking": "Ranking"}
_unpickling = threading.Lock()


def moved(module: str, name: str) -> tuple[str, str]:
    """Where ``module.name``, as pickled by a matcher before the move, lives now (unchanged when it did not move)."""
    candidates = _MOVED_MODULES.get(module)
    if candidates is None:
        return module, name
    new_name = _RENAMED.get(name, name)
    for candidate in candidates:
        found = getattr(importlib.import_module(candidate), new_name, None)
        if found is not None and not isinstance(found, ModuleType):
            return candidate, new_name
    return module, name  # not found: unpickling says which name is missing


class _Unpickler(numpy_pickle.NumpyUnpickler):
    """joblib's unpickler, reading the names of versions saved before the move where they live now."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(*moved(module, name))


def unpickle(path: Path) -> Any:
    """``joblib.load(path)``, with the classes and functions of versions saved before the move found (:func:`moved`)."""
    with _unpickling:  # joblib.load builds numpy_pickle.NumpyUnpickler: ours, for this call
        plain, numpy_pickle.NumpyUnpickler = numpy_pickle.NumpyUnpickler, _Unpickler
        try:
            return joblib.load(path)
        finally:
            numpy_pickle.NumpyUnpickler = plain
