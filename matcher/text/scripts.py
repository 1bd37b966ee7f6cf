"""Scripts: a text's CJK runs apart from its other letters, and the Latin words (stems, stop words) of the rest.

The vectoriser segments the CJK runs (:func:`script_views`) with :mod:`matcher.text.segment` and counts
the rest as words (:func:`latin_tokens`): lower-cased, English stop words dropped, Snowball-stemmed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

import Stemmer

__all__ = ["CJK", "latin_terms", "latin_tokens", "script_views", "stem", "stop_word_set"]

#: Characters of the scripts written without spaces between words (Han, kana, Hangul, bopomofo):
#: they are cut into character n-grams and jieba words; every other letter is a word script.
CJK = (
    "\u1100-\u11ff\u3007\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31bf\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
)
# A run of CJK characters, with the digits written against it and against nothing else (``2023年``,
# ``第3届``, ``39健康网``): a number inside Chinese text reads as part of it. Digits that touch a
# Latin letter (``5g``, ``iso9001``) are not part of the run.
_CJK_RUN = re.compile(rf"(?:(?<![^\W_])\d+(?=[{CJK}]))?[{CJK}]+(?:\d+[{CJK}]+)*(?:\d+(?![^\W_]))?")
_CJK_CHAR = re.compile(rf"[{CJK}]")
# A number that touches no letter or digit (``1605 中毒``, ``in 2020``).
_LONE_NUMBER = re.compile(r"(?<![^\W_])\d+(?![^\W_])")
# A letter or digit of no CJK script.
_WORD_CHAR = re.compile(rf"[^\W_{CJK}]")
# A word of a word script: letters and digits, with inner apostrophes (``children's``).
_LATIN_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
#: How far a lone number looks for the letter whose script it takes.
_NUMBER_CONTEXT = 20


def _number_is_cjk(text: str, start: int, end: int) -> bool:
    """Whether the lone number ``text[start:end]`` takes the CJK script: that of the nearest letter
    before it (within :data:`_NUMBER_CONTEXT` characters), else after it; Latin when there is none."""
    for char in reversed(text[max(0, start - _NUMBER_CONTEXT) : start]):
        if char.isalpha():
            return _CJK_CHAR.match(char) is not None
    for char in text[end : end + _NUMBER_CONTEXT]:
        if char.isalpha():
            return _CJK_CHAR.match(char) is not None
    return False


def script_views(text: str) -> tuple[str, str]:
    """``(cjk, latin)``: ``text`` with everything outside its CJK runs blanked, and with its CJK runs blanked.

    A CJK run holds the digits written against it; a number standing alone takes the script of the
    nearest letter before it, else after it (``1605 中毒`` is Chinese, ``in 2020`` Latin, as the Unicode
    script-run rules give the script of the text around it to characters common to all scripts). Both
    views have the length of ``text`` (blanked characters become spaces), so offsets in a view are
    offsets in ``text``. ``"swot分析 2023年"`` gives ``("    分析 2023年", "swot         ")``.
    """
    spans = [match.span() for match in _CJK_RUN.finditer(text)]
    numbers = [m.span() for m in _LONE_NUMBER.finditer(text) if _number_is_cjk(text, *m.span())]
    if numbers:
        spans = sorted(spans + numbers)
    cjk: list[str] = []
    latin: list[str] = []
    last = 0
    for start, end in spans:
        cjk.append(" " * (start - last))
        cjk.append(text[start:end])
        latin.append(text[last:start])
        latin.append(" " * (end - start))
        last = end
    cjk.append(" " * (len(text) - last))
    latin.append(text[last:])
    return "".join(cjk), "".join(latin)


@lru_cache(maxsize=4)
def _english_stop_words() -> frozenset[str]:
    words = resources.files("matcher.text.dict").joinpath("stop_words_en.txt").read_text(encoding="utf-8")
    return frozenset(w for line in words.splitlines() if not line.startswith("#") for w in line.split())


def stop_word_set(stop_words: str | Iterable[str] | None) -> frozenset[str]:
    """The stop words named by ``stop_words``: ``"english"`` (the package's list), None (none) or the words."""
    if stop_words is None:
        return frozenset()
    if isinstance(stop_words, str):
        if stop_words != "english":
            raise ValueError(f"latin_stop_words must be 'english', None or a list of words, got {stop_words!r}")
        return _english_stop_words()
    return frozenset(str(w).lower() for w in stop_words)


@lru_cache(maxsize=8)
def _stemmer(language: str) -> Stemmer.Stemmer:
    try:
        return Stemmer.Stemmer(language)
    except KeyError:
        raise ValueError(
            f"latin_stem must be a Snowball language ({', '.join(Stemmer.algorithms())}) or None, got {language!r}"
        ) from None


# English spelling variants that Snowball's English (Porter2) stemmer leaves apart, joined after it:
# -ize/-ise and -yze/-yse (``organiz``/``organis``), -sis/-se (``analysi``/``analys``), -our/-or
# (``behaviour``), -tre/-ter (``centr``/``center``) and -mme (``programm``/``program``).
_ENGLISH_VARIANTS = (("iz", "is"), ("yz", "ys"), ("tr", "ter"), ("mm", "m"))


@lru_cache(maxsize=1 << 16)
def stem(word: str, language: str = "english") -> str:
    """The Snowball stem of a lower-case ``word`` (English: with its spelling variants joined).

    >>> stem("analysing"), stem("analysis"), stem("analyzed"), stem("organisations")
    ('analys', 'analys', 'analys', 'organis')
    """
    stemmed = _stemmer(language).stemWord(word)
    if language != "english":
        return stemmed
    if word.endswith("sis") and stemmed.endswith("si"):
        stemmed = stemmed[:-1]
    elif len(stemmed) >= 6 and stemmed.endswith("our"):
        stemmed = stemmed[:-3] + "or"
    for suffix, replacement in _ENGLISH_VARIANTS:
        if stemmed.endswith(suffix) and len(stemmed) > len(suffix) + 2:
            return stemmed[: -len(suffix)] + replacement
    return stemmed


def latin_tokens(
    text: str, language: str | None = "english", stop_words: str | Iterable[str] | None = "english"
) -> list[tuple[str, int, int]]:
    """The words and numbers of ``text`` outside its CJK runs, as ``(term, start, end)``.

    ``text`` is normalised (lower case). A token of letters is dropped when it is a stop word and
    otherwise stemmed (Snowball ``language``; None keeps it as written); a token with a digit (``2020``,
    ``5g``, ``iso9001``) is kept whole. ``text[start:end]`` is the token as written. Digits written
    against CJK characters belong to the CJK run (:func:`script_views`), not here.
    """
    if not _WORD_CHAR.search(text):  # only CJK (the common case of a Chinese text): nothing here
        return []
    _, latin = script_views(text)
    stop = stop_word_set(stop_words)
    tokens = []
    for match in _LATIN_TOKEN.finditer(latin):
        word = match.group().lower().replace("’", "'")
        if not word.replace("'", "").isalpha():
            tokens.append((word, match.start(), match.end()))  # numbers and mixed tokens: whole
            continue
        if word in stop:
            continue
        term = stem(word, language) if language else word
        tokens.append((term, match.start(), match.end()))
    return tokens


def latin_terms(
    text: str, language: str | None = "english", stop_words: str | Iterable[str] | None = "english"
) -> list[str]:
    """The terms of :func:`latin_tokens` (the analyser of the vectoriser's Latin-script block)."""
    return [term for term, _, _ in latin_tokens(text, language, stop_words)]
