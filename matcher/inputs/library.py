"""The four libraries (needs, experts, resources, projects) plus organisations, taxonomy and history.

This module reads the embedded library files of ``data/`` into pandas frames (:class:`Libraries`) and
checks them; :mod:`matcher.inputs.frames` turns libraries (from the files or from the database) into
the flat need and target frames the model works on.

Everything public speaks in external ids; only :mod:`matcher.matching.estimator` knows matrix rows.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from matcher.config import DATA_DIR_ENV, Settings
from matcher.errors import LibraryError, NotFoundError
from matcher.inputs.cells import split_list, yes_no
from matcher.text.normalise import normalise

logger = logging.getLogger(__name__)

__all__ = [
    "TARGET_TYPES",
    "Libraries",
    "check_data_dir",
    "data_dir",
    "load_libraries",
    "load_places",
    "load_taxonomy",
    "open_engagements",
]

TARGET_TYPES = ("expert", "resource", "project")

# file name -> required columns (other columns are kept as they are)
FILES: dict[str, tuple[str, ...]] = {
    "taxonomy": ("code", "label", "label_en", "description", "keywords"),
    "organisations": ("id", "name", "stage", "county", "township", "founded_year", "staff_count"),
    "needs": ("id", "org_id", "title", "description", "tags", "urgency", "status", "created_at"),
    "experts": (
        "id",
        "name",
        "affiliation",
        "org_id",
        "title",
        "specialties",
        "bio",
        "counties",
        "capacity",
        "available",
        "phone",
        "email",
        "courses",
    ),
    "resources": ("id", "type", "name", "description", "provider", "county", "quantity", "tags"),
    "projects": ("id", "name", "org_id", "tags", "description", "outcomes"),
    "decisions": ("id", "need_id", "target_type", "target_id", "decision", "rating", "decided_at", "rank"),
}
#: Columns a file may lack (files written before the organisation file): name -> value when absent.
OPTIONAL_COLUMNS: dict[str, dict[str, str]] = {
    "organisations": {
        "kind": "agency",
        "status": "resident",
        "admitted_on": "",
        "left_on": "",
        "licensed_social_workers": "",
    },
    "resources": {"seats": "", "amount_yuan": ""},
}
LIST_COLUMNS = {"tags", "specialties", "counties", "courses", "keywords"}
STAGES = ("初创期", "成长期", "成熟期")


PLACES_FILE = "places.csv"


def data_dir() -> Path:
    """The library folder: ``$MATCHER_DATA_DIR`` or ``./data`` under the working directory."""
    return Settings.from_env().data_dir


def check_data_dir(directory: str | os.PathLike | None = None) -> Path:
    """``directory`` (default :func:`data_dir`) when it holds the library files; else a :class:`LibraryError`.

    The message names the folder looked in (absolute) and the variable that sets it, so that a
    command run outside the project folder says so before it creates anything.
    """
    root = Path(directory) if directory is not None else data_dir()
    missing = [f"{name}.csv" for name in FILES if not (root / f"{name}.csv").is_file()]
    if missing:
        looked = root.resolve()
        what = (
            f"the library folder {looked} does not exist" if not root.is_dir() else f"{looked / missing[0]}: not found"
        )
        raise LibraryError(
            f"{what}: run matcher in the project folder, or set {DATA_DIR_ENV} to the folder that holds "
            "taxonomy.csv and the other library files"
        )
    return root


_places_cache: dict[tuple[str, float], dict[str, tuple[str, ...]]] = {}


def load_places(directory: str | os.PathLike | None = None) -> dict[str, tuple[str, ...]] | None:
    """County → its townships (and 片区), from ``places.csv`` of ``directory`` (default :func:`data_dir`).

    The one table of places: record validation and ``data/generate.py`` read it. None when the
    file is absent (places are then not checked).
    """
    path = (Path(directory) if directory is not None else data_dir()) / PLACES_FILE
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError:
        return None
    if key not in _places_cache:
        frame = _read(path, ("county", "township"))
        places: dict[str, list[str]] = {}
        for county, township in zip(frame["county"], frame["township"], strict=True):
            places.setdefault(county, []).append(township)
        _places_cache[key] = {county: tuple(towns) for county, towns in places.items()}
    return _places_cache[key]


@dataclass
class Libraries:
    """The embedded libraries as frames, one attribute per file of ``data/``."""

    taxonomy: pd.DataFrame
    organisations: pd.DataFrame
    needs: pd.DataFrame
    experts: pd.DataFrame
    resources: pd.DataFrame
    projects: pd.DataFrame
    decisions: pd.DataFrame
    content_hash: str = ""
    engagements: pd.DataFrame | None = None  # from the database: need_id, target_type, target_id, status
    event_loads: pd.Series | None = None  # from the database: confirmed events per expert id

    def load(self, until: pd.Timestamp | None = None) -> pd.Series:
        """Open engagements per expert id: from the engagements table when there is one, else the history.

        A confirmed event counts as one open engagement of each of its experts (``event_loads``).
        """
        if self.engagements is not None and until is None:
            rows = self.engagements
            rows = rows.loc[(rows["target_type"] == "expert") & (rows["status"] == "open")]
            load = rows.groupby("target_id").size().rename("load")
            if self.event_loads is not None and len(self.event_loads):
                load = load.add(self.event_loads, fill_value=0).astype("int64").rename("load")
            return load
        return open_engagements(self.decisions, until)

    def sizes(self) -> dict[str, int]:
        """Number of rows of each library."""
        return {name: len(getattr(self, name)) for name in FILES}

    def need(self, need_id: str) -> pd.Series:
        """The stored need ``need_id``; raises :class:`NotFoundError` if there is none."""
        rows = self.needs.loc[self.needs["id"] == need_id]
        if rows.empty:
            raise NotFoundError(f"unknown need_id {need_id!r}")
        return rows.iloc[0]


def _read(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise LibraryError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError) as error:
        raise LibraryError(f"{path}: cannot read as UTF-8 CSV: {error}") from error
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise LibraryError(f"{path}: missing column {missing[0]!r}")
    for column in frame.columns:
        frame[column] = frame[column].str.strip()
    if "id" in frame.columns:
        _check_ids(frame, path)
    return frame


def _row(frame: pd.DataFrame, index: int) -> int:
    """The data row as a person sees it in the file: 1 is the first line after the header."""
    return int(index) + 1


def _check_ids(frame: pd.DataFrame, path: Path) -> None:
    empty = frame.index[frame["id"] == ""]
    if len(empty):
        raise LibraryError(f"{path}: row {_row(frame, empty[0])}, column 'id': empty id")
    duplicated = frame.index[frame["id"].duplicated()]
    if len(duplicated):
        index = duplicated[0]
        raise LibraryError(f"{path}: row {_row(frame, index)}, column 'id': duplicate id {frame.at[index, 'id']!r}")


def _parse_int(frame: pd.DataFrame, column: str, path: Path, *, minimum: int = 0) -> pd.Series:
    values = pd.to_numeric(frame[column].replace("", None), errors="coerce")
    bad = frame.index[(frame[column] != "") & (values.isna() | (values < minimum) | (values % 1 != 0))]
    if len(bad):
        index = bad[0]
        raise LibraryError(
            f"{path}: row {_row(frame, index)}, column {column!r}: "
            f"expected a whole number >= {minimum}, got {frame.at[index, column]!r}"
        )
    return values.astype("Int64")


def _parse_bool(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = frame[column].map(yes_no)  # True, False, or None (blank or not a yes/no word)
    bad = frame.index[values.isna() & (frame[column] != "")]
    if len(bad):
        index = bad[0]
        raise LibraryError(
            f"{path}: row {_row(frame, index)}, column {column!r}: expected true or false, got {frame.at[index, column]!r}"
        )
    available = pd.Series(True, index=frame.index)  # a blank cell: available
    given = values.notna()
    available[given] = values[given].astype(bool)
    return available


def _check_reference(frame: pd.DataFrame, column: str, known: pd.Series, path: Path, what: str) -> None:
    known_ids = set(known)
    bad = frame.index[(frame[column] != "") & ~frame[column].isin(known_ids)]
    if len(bad):
        index = bad[0]
        raise LibraryError(
            f"{path}: row {_row(frame, index)}, column {column!r}: unknown {what} {frame.at[index, column]!r}"
        )


def _check_tags(frame: pd.DataFrame, column: str, labels: set[str], path: Path) -> None:
    for index, tags in frame[column].items():
        for tag in tags:
            if tag not in labels:
                raise LibraryError(
                    f"{path}: row {_row(frame, index)}, column {column!r}: tag {tag!r} is not in the taxonomy"
                )


def load_libraries(directory: str | os.PathLike | None = None) -> Libraries:
    """Read and check every library file of ``directory`` (default :func:`data_dir`).

    Raises
    ------
    LibraryError
        Naming the file, the data row (1 = first line after the header) and the column.
    """
    root = Path(directory) if directory is not None else data_dir()
    digest = hashlib.sha256()
    frames: dict[str, pd.DataFrame] = {}
    for name, required in FILES.items():
        path = root / f"{name}.csv"
        frames[name] = _read(path, required)
        digest.update(name.encode() + b"\0" + path.read_bytes())
        for column in LIST_COLUMNS & set(frames[name].columns):
            frames[name][column] = frames[name][column].map(split_list)

    paths = {name: root / f"{name}.csv" for name in FILES}
    labels = set(frames["taxonomy"]["label"])
    for name, column in (("needs", "tags"), ("experts", "specialties"), ("resources", "tags"), ("projects", "tags")):
        _check_tags(frames[name], column, labels, paths[name])
    orgs = frames["organisations"]["id"]
    for name in ("needs", "experts", "projects"):
        _check_reference(frames[name], "org_id", orgs, paths[name], "organisation")
    _check_reference(frames["decisions"], "need_id", frames["needs"]["id"], paths["decisions"], "need")
    experts = frames["experts"]
    experts["capacity"] = _parse_int(experts, "capacity", paths["experts"])
    experts["available"] = _parse_bool(experts, "available", paths["experts"])
    frames["resources"]["quantity"] = _parse_int(frames["resources"], "quantity", paths["resources"])
    for name, optional in OPTIONAL_COLUMNS.items():  # files before events or the organisation file lack them
        frame = frames[name]
        for column, default in optional.items():
            if column not in frame.columns:
                frame[column] = default
            elif default:
                frame[column] = frame[column].where(frame[column].astype(str).str.strip() != "", default)
    for column in ("seats", "amount_yuan"):
        frames["resources"][column] = _parse_int(frames["resources"], column, paths["resources"])
    decisions = frames["decisions"]
    decisions["rating"] = _parse_int(decisions, "rating", paths["decisions"], minimum=1)
    decisions["rank"] = _parse_int(decisions, "rank", paths["decisions"], minimum=1)
    for name, column in (("needs", "created_at"), ("decisions", "decided_at")):
        frames[name][column] = _parse_time(frames[name], column, paths[name])
    return Libraries(**frames, content_hash=digest.hexdigest())


def load_taxonomy(directory: str | os.PathLike | None = None) -> pd.DataFrame | None:
    """The taxonomy of ``directory`` (default :func:`data_dir`), or None when the folder has none.

    What a file-mode job (``matcher batch``) fits the tag classifier on, beside the needs file's tags.
    """
    path = (Path(directory) if directory is not None else data_dir()) / "taxonomy.csv"
    if not path.is_file():
        return None
    return _read(path, FILES["taxonomy"])


def _parse_time(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_datetime(frame[column], utc=True, errors="coerce", format="ISO8601")
    bad = frame.index[values.isna()]
    if len(bad):
        index = bad[0]
        raise LibraryError(
            f"{path}: row {_row(frame, index)}, column {column!r}: expected an ISO 8601 time, got {frame.at[index, column]!r}"
        )
    return values


def open_engagements(decisions: pd.DataFrame, until: pd.Timestamp | None = None) -> pd.Series:
    """Open engagements per expert id: accepted decisions not later completed or cancelled.

    Only decisions up to ``until`` (inclusive) count when it is given.
    """
    rows = decisions.loc[decisions["target_type"] == "expert"]
    if until is not None:
        rows = rows.loc[rows["decided_at"] <= until]
    rows = rows.sort_values(["decided_at", "id"])
    last = rows.groupby(["need_id", "target_id"])["decision"].last()
    open_pairs = last.loc[last == "accepted"].reset_index()
    return open_pairs.groupby("target_id").size().rename("load")


def normalised_labels(labels: list[str]) -> list[str]:
    """Tags compare in normal form, so ``個案管理`` and ``个案管理`` are one tag."""
    return [normalise(label) for label in labels]
