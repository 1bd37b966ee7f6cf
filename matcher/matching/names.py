"""Names as a field: the name forms of targets and organisations, and where a need names them.

A coordinator who types a project's brand (``心语小屋``), a resource's title or an expert's name means
that target. :func:`name_forms` lists the forms a name is typed in: the name as written, without its
quotation marks, the brand inside the quotes, and each without its generic suffix (项目, 服务, 计划…);
:class:`NameIndex` finds every form of every target in a need's text at once (Aho–Corasick, from
``pyahocorasick``). The need's own organisation's name and its short forms (:func:`organisation_forms`)
are blanked out of the text first, so a need of 红心社会工作服务中心 never names the project 红心社工.

All forms are compared in the normal form of :func:`matcher.text.normalise.normalise` (traditional characters,
full-width punctuation and case folded), so a name typed in traditional characters is found as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import ahocorasick
import numpy as np
import scipy.sparse as sp

from matcher.text.normalise import normalise

__all__ = ["NameIndex", "mask_organisation", "name_forms", "organisation_forms", "strip_suffix"]

#: Quotation marks and title brackets around a brand: “心语小屋”, 「…」, 《…》, "…".
_QUOTED = re.compile(r"[“\"「『《‘'【]([^”\"」』》’'】]{2,})[”\"」』》’'】]")
_QUOTES = re.compile(r"[“”\"「」『』《》‘’'【】]")
#: Generic endings of project and resource names, longest first.
NAME_SUFFIXES = ("服务项目", "建设项目", "项目", "服务", "计划", "工程", "试点")
#: Generic endings of organisation names, longest first: 红心社会工作服务中心 -> 红心.
ORGANISATION_SUFFIXES = (
    "社会工作服务中心",
    "社会工作服务站",
    "社会工作事务所",
    "社工服务中心",
    "社工服务站",
    "服务中心",
    "服务站",
    "社工站",
    "协会",
    "中心",
)
_COUNTIES = ("雄安新区", "雄县", "容城县", "安新县", "容城", "安新")
#: A form shorter than this (in characters) never counts as a name on its own.
MIN_FORM = 2


def strip_suffix(name: str, suffixes: Sequence[str] = NAME_SUFFIXES) -> str:
    """``name`` without one generic ending (the longest that leaves at least two characters)."""
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) - len(suffix) >= MIN_FORM:
            return name[: -len(suffix)]
    return name


def name_forms(name: str) -> list[str]:
    """The normalised forms a target's name is typed in, longest first, each of two characters or more.

    The name as written, without its quotation marks, the brand inside the quotes, and each of these
    without a generic ending: ``“心语小屋”儿童关爱服务项目`` gives ``“心语小屋”儿童关爱服务项目``,
    ``心语小屋儿童关爱服务项目``, ``“心语小屋”儿童关爱服务``, ``心语小屋儿童关爱服务`` and ``心语小屋``.
    """
    text = normalise(name or "")
    forms = {text, _QUOTES.sub("", text)}
    forms |= {m.group(1).strip() for m in _QUOTED.finditer(text)}
    forms |= {strip_suffix(f) for f in list(forms)}
    return sorted((f for f in forms if len(f) >= MIN_FORM), key=lambda f: (-len(f), f))


def organisation_forms(name: str) -> list[str]:
    """The forms of an organisation's own name that a need may contain: the name, without its county,
    and its short name without the generic ending (``红心社会工作服务中心`` -> ``红心``), longest first."""
    text = _QUOTES.sub("", normalise(name or ""))
    forms = {text}
    for county in _COUNTIES:
        if text.startswith(county) and len(text) > len(county):
            forms.add(text[len(county) :])
    forms |= {strip_suffix(f, ORGANISATION_SUFFIXES) for f in list(forms)}
    return sorted((f for f in forms if len(f) >= MIN_FORM), key=lambda f: (-len(f), f))


def mask_organisation(text: str, organisation: str | None) -> str:
    """``text`` (normalised) with every form of ``organisation``'s name blanked out (same length)."""
    if not organisation:
        return text
    for form in organisation_forms(organisation):
        text = text.replace(form, "\0" * len(form))
    return text


class NameIndex:
    """Every name form of one target type's targets, found in needs' texts at once.

    Parameters
    ----------
    names : sequence of str, shape (n_targets,)
        The targets' names, in index row order.
    person : bool
        The names are people's (experts): taken as written, not cut into :func:`name_forms`.
    """

    def __init__(self, names: Sequence[str], *, person: bool = False) -> None:
        self.names = list(names)
        self.person = person
        self.n_targets = len(self.names)

    def __getstate__(self) -> dict:
        return {"names": self.names, "person": self.person, "n_targets": self.n_targets}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def _automaton(self) -> ahocorasick.Automaton:
        """The automaton of all forms -> target rows, built on first use (never pickled)."""
        automaton = self.__dict__.get("_built")
        if automaton is None:
            rows: dict[str, list[int]] = {}
            for row, name in enumerate(self.names):
                forms = [normalise(name or "")] if self.person else name_forms(name)
                for form in forms:
                    if len(form) >= MIN_FORM:
                        rows.setdefault(form, []).append(row)
            automaton = ahocorasick.Automaton()
            for form, targets in rows.items():
                automaton.add_word(form, (form, tuple(sorted(set(targets)))))
            if rows:
                automaton.make_automaton()
            self.__dict__["_built"] = automaton
        return automaton

    def find(self, texts: Sequence[str], organisations: Iterable[str | None] | None = None) -> sp.csr_matrix:
        """Which targets each normalised text names: binary CSR of shape (n_texts, n_targets).

        ``organisations`` (one per text, or None) are the texts' own organisations' names, blanked
        out before the search.
        """
        owners = list(organisations) if organisations is not None else [None] * len(texts)
        automaton = self._automaton()
        columns: list[int] = []
        indptr = [0] * (len(texts) + 1)
        if len(automaton):
            for row, (text, owner) in enumerate(zip(texts, owners, strict=True)):
                found = {t for _, (_, targets) in automaton.iter(mask_organisation(text, owner)) for t in targets}
                columns.extend(sorted(found))
                indptr[row + 1] = len(columns)
        data = np.ones(len(columns), dtype=np.float64)
        return sp.csr_matrix((data, columns, indptr), shape=(len(texts), self.n_targets))

    def spans(self, text: str, row: int, organisation: str | None = None) -> tuple[str, list[list[int]]] | None:
        """The longest form of target ``row`` found in ``text`` and its ``[start, end)`` spans, or None."""
        best: dict[str, list[list[int]]] = {}
        automaton = self._automaton()
        if not len(automaton):
            return None
        for end, (form, targets) in automaton.iter(mask_organisation(text, organisation)):
            if row in targets:
                best.setdefault(form, []).append([end - len(form) + 1, end + 1])
        if not best:
            return None
        form = max(best, key=lambda f: (len(f), f))
        return form, best[form]
