"""Known-item search: does typing a target's name find it?

A coordinator who types a project's brand or a resource's title expects that item near the top. For
each target, :func:`query_forms` gives the four ways its name is typed; :func:`known_item_table`
sends each as free text (no tags: they are inferred, as on the page) through the matcher's batch path
(the same ranking as ``POST /v1/match``) and records whether the item is in the first k;
:func:`evaluate_known_items` turns it into rows of the evaluation results table (``matcher evaluate``).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import numpy as np
import opencc
import pandas as pd

from matcher.inputs.frames import needs_frame, targets_frame
from matcher.inputs.library import Libraries
from matcher.matching.estimator import Matcher, build_matcher
from matcher.matching.names import NAME_SUFFIXES, strip_suffix
from matcher.quality import metrics
from matcher.quality.results import result_row

__all__ = [
    "FORMS",
    "evaluate_known_items",
    "known_item_rates",
    "known_item_table",
    "query_forms",
    "without_reranker",
]

#: The query forms: the name (or the brand inside its quotes) as written, the same in traditional
#: characters, the brand without its quotes, and the name without its generic ending.
FORMS = ("as_written", "traditional", "brand_bare", "no_suffix")
_OPEN, _CLOSE = "“\"「『《‘'【", "”\"」』》’'】"


@lru_cache(maxsize=1)
def _to_traditional():
    return opencc.OpenCC("s2t")


def _brand(name: str) -> str | None:
    """The brand inside the first pair of quotation marks or title brackets, with its marks, or None."""
    for position, mark in enumerate(name):
        if mark in _OPEN:
            end = name.find(_CLOSE[_OPEN.index(mark)], position + 1)
            if end > position + 1:
                return name[position : end + 1]
    return None


def query_forms(name: str) -> dict[str, str]:
    """The four ways a target's ``name`` is typed, by :data:`FORMS`.

    ``“心语小屋”儿童关爱服务项目`` gives ``“心语小屋”``, ``“心語小屋”``, ``心语小屋`` and
    ``“心语小屋”儿童关爱`` (服务项目 is one generic ending); a name without quotes is its own brand.
    """
    written = _brand(name) or name
    return {
        "as_written": written,
        "traditional": _to_traditional().convert(written),
        "brand_bare": written[1:-1] if written != name or _brand(name) == name else written,
        "no_suffix": strip_suffix(name, NAME_SUFFIXES),
    }


def known_item_table(model: Matcher, target_type: str, *, k: int = 3) -> pd.DataFrame:
    """Each available target of ``target_type`` searched by each of its name's forms.

    Returns ``target_id, form, query, rank`` (0 when the target is not in the first ``k``). Targets the
    hard rules exclude for any free-text need (unavailable or fully booked) are left out.
    """
    frame = model.targets(target_type)
    index = model.index_[target_type]
    allowed = index.available & (index.free > 0)
    rows = []
    for target_id, name in zip(frame["id"][allowed], frame["name"][allowed], strict=True):
        for form, query in query_forms(name).items():
            rows.append({"target_id": target_id, "form": form, "query": query})
    table = pd.DataFrame(rows, columns=["target_id", "form", "query"])
    if table.empty:
        return table.assign(rank=np.zeros(0, dtype=int))
    needs = pd.DataFrame({"id": [f"q{i}" for i in range(len(table))], "text": table["query"], "tags": None})
    found = model.match(needs, k=k, target_types=[target_type])
    rank = {(n, t): r for n, t, r in zip(found["need_id"], found["target_id"], found["rank"], strict=True)}
    table["rank"] = [rank.get((f"q{i}", t), 0) for i, t in enumerate(table["target_id"])]
    return table


def known_item_rates(model: Matcher, target_type: str, ks: tuple[int, ...] = (1, 3)) -> pd.DataFrame:
    """Success@k of each form: ``form, k, success, n`` (the share of targets found in the first k)."""
    table = known_item_table(model, target_type, k=max(ks))
    rows = []
    for form in FORMS:
        part = table.loc[table["form"] == form, "rank"].to_numpy()
        for k in ks:
            hits = (part >= 1) & (part <= k)
            rows.append({"form": form, "k": k, "success": float(hits.mean()) if len(part) else float("nan"), "n": len(part)})
    return pd.DataFrame(rows)


def evaluate_known_items(libs: Libraries, params: dict[str, Any] | None = None, *, n_resamples: int = 1000) -> list[dict]:
    """Known-item success@1 and @3 of each target type and query form (:func:`known_item_table`), as result rows.

    The model is fitted as ``matcher train`` fits it (current profiles, tag classifier, gated
    re-ranker); ``method`` is ``reranker`` (what serves) or ``base`` (the base score alone). Rows have
    dataset ``known_item/<type>``, metric ``success:<form>`` and a bootstrap interval over the targets.
    """
    model = build_matcher(params).fit(targets_frame(libs))
    model.fit_tagger(needs_frame(libs), libs.taxonomy).fit_reranker(libs)
    rows = []
    for method, scorer in (("reranker", model), ("base", without_reranker(model))):
        for target_type in model.target_types_:
            table = known_item_table(scorer, target_type, k=3)
            for form in FORMS:
                ranks = table.loc[table["form"] == form, "rank"].to_numpy()
                for k in (1, 3):
                    hits = ((ranks >= 1) & (ranks <= k)).astype(float)
                    estimate = metrics.bootstrap_ci(hits, n_resamples=n_resamples)
                    rows.append(result_row(f"known_item/{target_type}", method, f"success:{form}", k, estimate, len(hits)))
    return rows


def without_reranker(model: Matcher) -> Matcher:
    """A shallow twin of ``model`` that serves its base score: the re-ranker left out, all else shared."""
    twin = copy.copy(model)
    twin.reranker_ = None
    return twin
