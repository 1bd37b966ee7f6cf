"""The pair files of ``matcher assign``: conflicts of interest (``--conflicts``) and forced pairs (``--forced``).

Each is a CSV, JSONL or XLSX file read like every user file (:func:`matcher.inputs.files.read_rows`),
its headers and cells by the cell rules (:mod:`matcher.inputs.cells`); a missing column or a half-empty
row is an :class:`~matcher.jobs.assign.solver.AssignmentError` naming the file, the row and the column.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from matcher.inputs.cells import HEADER_ALIASES, aliases_of, cell_at, cell_key, cell_text
from matcher.inputs.files import TableError, read_rows
from matcher.jobs.assign.solver import AssignmentError

__all__ = ["read_conflicts", "read_forced"]


def _cell(cells: list[Any], index: int | None) -> str:
    """A pair file's cell as trimmed text (:func:`~matcher.inputs.cells.cell_text`), blank where absent."""
    return cell_text(cell_at(cells, index)).strip()


def _header_map(file: str, headers: list[str], kind: str, required: tuple[str, ...]) -> dict:
    """Field -> column index of a ``kind`` file (:data:`matcher.inputs.cells.HEADER_ALIASES`)."""
    keys = {cell_key(h): i for i, h in enumerate(headers)}
    wanted = dict.fromkeys(HEADER_ALIASES[kind].values())
    mapping = {}
    for name in wanted:
        for alias in aliases_of(kind, name):
            if alias in keys:
                mapping[name] = keys[alias]
                break
    missing = [name for name in required if name not in mapping]
    if missing:
        raise AssignmentError(f"{file}: missing column {missing[0]!r} (columns: {', '.join(wanted)})")
    return mapping


def _pairs(path: str | os.PathLike[str], kind: str, first: str, second: str) -> tuple[dict[str, int], list[tuple[int, str, str, list[Any]]]]:
    """The rows of a ``kind`` pair file as ``(row number, first, second, cells)``; blank rows skipped, half-empty refused."""
    file = os.fspath(path)
    try:
        headers, rows = read_rows(file)
    except TableError as error:
        raise AssignmentError(str(error)) from error
    mapping = _header_map(file, headers, kind, (first, second))
    pairs = []
    for number, cells in rows:
        a, b = _cell(cells, mapping[first]), _cell(cells, mapping[second])
        if not a and not b:
            continue
        if not a or not b:
            raise AssignmentError(f"{file}: row {number}, column {first if not a else second!r}: empty")
        pairs.append((number, a, b, cells))
    return mapping, pairs


def read_conflicts(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A conflicts file (CSV, JSONL or XLSX): ``expert_id, org_id, relation`` (same organisation, supervisor,
    evaluator, funder…). The expert is never assigned to a need of that organisation.

    Raises
    ------
    AssignmentError
        A missing column or a row without an expert or organisation, naming the file and row.
    """
    mapping, pairs = _pairs(path, "conflicts", "expert_id", "org_id")
    records = [
        {"expert_id": expert, "org_id": org, "relation": _cell(cells, mapping.get("relation"))}
        for _, expert, org, cells in pairs
    ]
    return pd.DataFrame(records, columns=["expert_id", "org_id", "relation"])


def read_forced(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A forced-assignments file: ``need_id, expert_id``, pairs that must be in the assignment."""
    _, pairs = _pairs(path, "forced", "need_id", "expert_id")
    records = [{"need_id": need, "expert_id": expert, "row": number} for number, need, expert, _ in pairs]
    return pd.DataFrame(records, columns=["need_id", "expert_id", "row"]).drop_duplicates(["need_id", "expert_id"])
