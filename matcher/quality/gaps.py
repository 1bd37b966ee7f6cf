"""Supply gaps as the model sees them: needs whose best match scores weak, counted by category and county.

Scored with a fitted model (``matcher gaps``, the overview page); :mod:`matcher.quality.supply`, by
contrast, counts demand against supply in the libraries without any model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from matcher.inputs.frames import needs_frame
from matcher.inputs.library import Libraries
from matcher.matching.estimator import Matcher
from matcher.matching.rank import WEAK_SCORE

__all__ = ["GAP_COLUMNS", "find_gaps"]

GAP_COLUMNS = ("dimension", "value", "needs", "weak", "weak_share", "mean_best")


def find_gaps(
    model: Matcher, libs: Libraries, *, target_type: str = "expert", threshold: float = WEAK_SCORE, status: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Needs whose best available match is weak, and their counts by category (tag) and county.

    A need's best match is its highest weighted-sum score over the available targets of
    ``target_type`` (fully booked ones included: a booked-out expert still shows that the need has
    supply, and unmet demand for them is a reason to recruit). Scores are comparable across needs,
    so one ``threshold`` serves them all.

    Returns
    -------
    needs : DataFrame ``need_id, title, county, tags, best_score, best_id, weak``.
    summary : DataFrame of ``GAP_COLUMNS``, one row per category and per county, most weak needs first.
    """
    chosen = libs.needs if status is None else libs.needs.loc[libs.needs["status"] == status]
    needs = needs_frame(libs, chosen["id"].tolist())
    scores = model.score(needs, target_type)
    targets = model.targets(target_type)
    scores[:, ~targets["available"].to_numpy(dtype=bool)] = -np.inf
    best = scores.argmax(axis=1) if scores.shape[1] else np.zeros(len(needs), dtype=int)
    best_score = scores[np.arange(len(needs)), best] if scores.shape[1] else np.zeros(len(needs))
    county = chosen["org_id"].map(libs.organisations.set_index("id")["county"]).fillna("")
    frame = pd.DataFrame(
        {
            "need_id": needs["id"].to_numpy(),
            "title": chosen["title"].to_numpy(),
            "county": county.to_numpy(),
            "tags": ["、".join(t) for t in chosen["tags"]],
            "best_score": np.round(np.maximum(best_score, 0.0), 6),
            "best_id": targets["id"].to_numpy()[best] if len(targets) else "",
        }
    )
    frame["weak"] = frame["best_score"] < threshold
    summary = []
    for dimension, values in (("category", chosen["tags"].tolist()), ("county", [[c] if c else [] for c in county])):
        exploded = pd.DataFrame({"value": values, "weak": frame["weak"], "best": frame["best_score"]}).explode("value")
        exploded = exploded.dropna(subset=["value"])
        for value, group in exploded.groupby("value"):
            summary.append(
                {
                    "dimension": dimension,
                    "value": value,
                    "needs": len(group),
                    "weak": int(group["weak"].sum()),
                    "weak_share": round(float(group["weak"].mean()), 4),
                    "mean_best": round(float(group["best"].mean()), 4),
                }
            )
    summary_frame = pd.DataFrame(summary, columns=list(GAP_COLUMNS))
    summary_frame = summary_frame.sort_values(["dimension", "weak", "value"], ascending=[True, False, True], kind="stable")
    return frame, summary_frame.reset_index(drop=True)
