"""The evaluation results table: its columns, one row with its confidence interval, and its CSV file.

Every figure of ``matcher evaluate`` (history, known items, benchmark) is one row of this table, with a
bootstrap confidence interval (:func:`matcher.quality.metrics.bootstrap_ci`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from matcher.documents.writer import write_frame_csv

__all__ = ["RESULT_COLUMNS", "result_row", "write_results"]

RESULT_COLUMNS = ("dataset", "method", "metric", "k", "value", "ci_low", "ci_high", "n")


def result_row(
    dataset: str, method: str, metric: str, k: int | None, estimate: tuple[float, float, float], n: int
) -> dict:
    """One row of ``RESULT_COLUMNS``: ``estimate`` is (value, ci_low, ci_high) over ``n`` units; no k is ``""``."""
    value, low, high = estimate
    return {
        "dataset": dataset,
        "method": method,
        "metric": metric,
        "k": k if k is not None else "",
        "value": round(value, 4),
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        "n": n,
    }


def write_results(rows: list[dict], path: Path) -> None:
    """The results table as CSV (``RESULT_COLUMNS``), in a stable order."""
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    write_frame_csv(frame, path)
