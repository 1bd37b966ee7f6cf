"""Known-item search: does typing a target's name find it?

A coordinator who types a project's brand or a resource's title expects that item near the top. For
each target, :func:`query_forms` gives the four ways its name is typed; :func:`known_item_table`
sends each as free text (no tags: they are inferred, as on the page) through the matcher's batch path
(the same ranking as ``POST /v1/match``) and records whether the item is in the first k.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from matcher.matching.estimator import Matcher
from matcher.matching.names import NAME_SUFFIXES, strip_suffix

__all__ = ["FORMS", "known_item_rates", "known_item_table", "query_forms"]

#: The query forms: the name (or the brand inside its quotes) as written, the same in traditional
#: characters, the brand without its quotes, and the name without its generic ending.
FORMS = ("as_written", "traditional", "brand_bare", "no_suffix")
_OPEN, _CLOSE = "“\"「『《‘'【", "”\"」』》’'】"


@lru_cache(maxsize=1)
def _to_traditional():
    import opencc

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
