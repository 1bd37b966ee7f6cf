"""Before an assignment is solved: does supply meet demand? A report in plain words, per category and county.

Demand is the places the needs want, counted per taxonomy category (each tag of a need) and county
(the need's county); supply is the free places of the available targets that carry that category and
serve that county (a target with no county serves every county). A category and county whose demand
exceeds its supply is a *shortfall*, told as one sentence with what to change, in English and Chinese:

    14 needs in 雄县 need 个案管理 experts but only 3 places are free: raise capacities or add experts
    雄县有14个需求需要个案管理方面的专家，但只有3个空闲名额：请提高专家容量或增加专家

The check is advice, not a proof: a need may still be served by a target of another category (its
text may match), and a target with several categories counts in each. It also reports the overall
balance and the needs that have no candidate at all, which no solver can help.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from matcher.text.normalise import normalise

__all__ = ["FeasibilityReport", "Finding", "check_feasibility"]

_NOUNS = {"expert": ("expert", "experts", "专家"), "resource": ("resource", "resources", "资源")}
NO_COUNTY = ""


@dataclass(frozen=True)
class Finding:
    """One thing to fix, in both languages.

    Attributes
    ----------
    kind : str
        ``shortfall`` (a category and county), ``overall`` (all places), ``no_candidate``,
        ``conflicts`` (needs whose every candidate has a conflict of interest).
    en, zh : str
        The sentence, in English and in Chinese.
    needs : int
        Needs concerned.
    wanted, free : int or None
        Places wanted and free (shortfalls and overall).
    category, county : str or None
        The category and county of a shortfall.
    """

    kind: str
    en: str
    zh: str
    needs: int
    wanted: int | None = None
    free: int | None = None
    category: str | None = None
    county: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class FeasibilityReport:
    """The findings for one target type; ``feasible`` when there is none."""

    target_type: str
    findings: list[Finding] = field(default_factory=list)
    wanted: int = 0
    free: float = 0.0

    @property
    def feasible(self) -> bool:
        return not self.findings

    def lines(self, language: str = "en") -> list[str]:
        """The findings as sentences (``en`` or ``zh``), or one sentence saying all is well."""
        if self.feasible:
            noun = _NOUNS[self.target_type]
            if language == "zh":
                return [f"各类别和区县的{noun[2]}空闲名额足以满足需求"]
            return [f"every category and county has enough free {noun[1]} for its needs"]
        return [finding.zh if language == "zh" else finding.en for finding in self.findings]


def _places(n: int) -> str:
    return "1 place" if n == 1 else f"{n} places"


def _needs(n: int) -> str:
    return "1 need" if n == 1 else f"{n} needs"


def check_feasibility(
    needs: pd.DataFrame,
    targets: pd.DataFrame,
    slots: Mapping[str, int],
    *,
    target_type: str = "expert",
    candidates: Mapping[str, int] | None = None,
    lost_to_conflicts: Iterable[str] = (),
    min_score: float = 0.0,
    examples: int = 5,
) -> FeasibilityReport:
    """Compare the places wanted with the free places, per category and county, in plain words.

    Parameters
    ----------
    needs : DataFrame with ``id, tags, counties``
        The needs to assign.
    targets : DataFrame with ``id, tags, counties, free, available``
        The targets of ``target_type``; ``free`` is the free places (None or NaN: unlimited).
    slots : mapping of need id to places wanted
        Needs that want nothing are left out.
    candidates : mapping of need id to number of candidates, optional
        Candidates left after conflicts and the minimum score; needs with none are reported.
    lost_to_conflicts : need ids
        Needs that had candidates but lost them all to conflicts of interest.
    min_score : float
        The minimum score, quoted in the advice.

    Returns
    -------
    FeasibilityReport
        Shortfalls first (largest first), then the overall balance, then needs without candidates.
    """
    singular, plural, chinese = _NOUNS.get(target_type, (target_type, f"{target_type}s", target_type))
    report = FeasibilityReport(target_type)
    supply: dict[tuple[str, str], float] = defaultdict(float)
    serves_all: dict[str, float] = defaultdict(float)
    providers: dict[str, set[str]] = defaultdict(set)  # category -> counties served ("" = all)
    labels: dict[str, str] = {}
    total_free = 0.0
    for row in targets.itertuples(index=False):
        if not bool(row.available):
            continue
        free = math.inf if row.free is None or pd.isna(row.free) else max(0.0, float(row.free))
        total_free += free
        counties = {normalise(c) for c in row.counties}
        for tag in {normalise(t) for t in row.tags}:
            providers[tag].update(counties or {NO_COUNTY})
            if counties:
                for county in counties:
                    supply[(tag, county)] += free
            else:
                serves_all[tag] += free

    demand: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # needs, places
    county_names: dict[str, str] = {}
    wanted_total = needs_total = 0
    for row in needs.itertuples(index=False):
        wanted = int(slots.get(row.id, 0))
        if wanted <= 0:
            continue
        wanted_total += wanted
        needs_total += 1
        counties = [normalise(c) for c in row.counties] or [NO_COUNTY]
        for county, name in zip(counties, list(row.counties) or [NO_COUNTY], strict=True):
            county_names.setdefault(county, name)
            for tag in dict.fromkeys(row.tags):
                key = normalise(tag)
                labels.setdefault(key, tag)
                cell = demand[(key, county)]
                cell[0] += 1
                cell[1] += wanted
    report.wanted, report.free = wanted_total, total_free

    shortfalls = []
    for (tag, county), (n_needs, wanted) in demand.items():
        if county == NO_COUNTY:
            free = serves_all[tag] + sum(v for (t, _), v in supply.items() if t == tag)
        else:
            free = serves_all[tag] + supply[(tag, county)]
        if wanted > free:
            shortfalls.append((wanted - free, tag, county, n_needs, wanted, int(free)))
    for _, tag, county, n_needs, wanted, free in sorted(shortfalls, key=lambda s: (-s[0], s[1], s[2])):
        label, place = labels[tag], county_names[county]
        where_en = f" in {place}" if place else " without a county"
        where_zh = place if place else "未注明区县的"
        asked = "" if wanted == n_needs else f" ({_places(wanted)} in all)"
        verb = "needs" if n_needs == 1 else "need"
        asked_zh = "" if wanted == n_needs else f"（共{wanted}个名额）"
        served = providers.get(tag, set())
        if not (NO_COUNTY in served or (county in served if county else served)):
            serves_en = f" serves {place}" if place else " is available"
            en = f"{_needs(n_needs)}{where_en} {verb} {label} {plural}{asked} but no {label} {singular}{serves_en}: add {plural}"
            zh = f"{where_zh}有{n_needs}个需求需要{label}方面的{chinese}{asked_zh}，但没有服务该区县的{label}{chinese}：请增加{chinese}"
        else:
            has = "no place is free" if free == 0 else f"only {_places(free)} {'is' if free == 1 else 'are'} free"
            en = f"{_needs(n_needs)}{where_en} {verb} {label} {plural}{asked} but {has}: raise capacities or add {plural}"
            has_zh = "没有空闲名额" if free == 0 else f"只有{free}个空闲名额"
            zh = f"{where_zh}有{n_needs}个需求需要{label}方面的{chinese}{asked_zh}，但{has_zh}：请提高{chinese}容量或增加{chinese}"
        report.findings.append(Finding("shortfall", en, zh, n_needs, wanted, free, label, place or None))

    if wanted_total > total_free:
        free = int(total_free)
        en = (
            f"{_needs(needs_total)} want {_places(wanted_total)} in all but only {free} "
            f"{'is' if free == 1 else 'are'} free: at most {free} can be filled; raise capacities or add {plural}"
        )
        zh = f"{needs_total}个需求共需要{wanted_total}个名额，但总共只有{free}个空闲名额：最多只能安排{free}个；请提高{chinese}容量或增加{chinese}"
        report.findings.append(Finding("overall", en, zh, needs_total, wanted_total, free))

    conflicted = sorted(set(lost_to_conflicts))
    if conflicted:
        shown = ", ".join(conflicted[:examples]) + (", …" if len(conflicted) > examples else "")
        en = (
            f"{_needs(len(conflicted))} lost every candidate {singular} to conflicts of interest ({shown}): "
            f"add {plural} without those ties"
        )
        zh = f"{len(conflicted)}个需求的候选{chinese}全部存在利益冲突（{shown}）：请增加没有这些关联的{chinese}"
        report.findings.append(Finding("conflicts", en, zh, len(conflicted)))
    if candidates is not None:
        empty = sorted(
            n for n in needs["id"] if slots.get(n, 0) > 0 and not candidates.get(n, 0) and n not in set(conflicted)
        )
        if empty:
            shown = ", ".join(empty[:examples]) + (", …" if len(empty) > examples else "")
            floor = f" scoring at least {min_score:g}" if min_score > 0 else ""
            floor_zh = f"得分不低于{min_score:g}的" if min_score > 0 else ""
            advice = "lower --min-score, " if min_score > 0 else ""
            en = (
                f"{_needs(len(empty))} {'has' if len(empty) == 1 else 'have'} no eligible {singular}{floor} "
                f"({shown}): {advice}add {plural} or free their capacity"
            )
            zh = f"{len(empty)}个需求没有{floor_zh}可用{chinese}（{shown}）：{'请降低最低分或' if min_score > 0 else '请'}增加{chinese}或释放容量"
            report.findings.append(Finding("no_candidate", en, zh, len(empty)))
    return report
