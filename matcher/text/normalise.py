"""Text normalisation: one raw string in, its canonical form out (width, pinyin notes, case, script, spaces).

``normalise`` is what the model sees of every text; it is a module-level function so that estimators
holding it can be pickled. :func:`fold_full_width` is the length-keeping fold of full-width characters
that the redaction (:mod:`matcher.text.privacy`) looks for numbers in.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import opencc

from matcher.text.processes import fork_cores, fork_map

__all__ = ["PARALLEL_TEXTS", "fold_full_width", "normalise", "normalise_many"]

# A CJK ideograph followed by a parenthesised pinyin syllable: `首頁(yè)`, `導(dǎo)`, `行(xing2)`.
# Only syllables that carry a tone (a tone mark, ü or a tone digit) count as annotations, so that
# ordinary bracketed Latin text after Chinese, such as `社会组织(NGO)` or `(SWOT)`, is kept.
_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňǹḿ"
# One or more syllables, separated by spaces or apostrophes (`(gè àn)`, `(xī'ān)`, `(ge4 an4)`), with at
# least one tone mark or tone digit in the group.
_SYLLABLE = rf"[a-z{_TONED}]+[1-5]?"
_PINYIN_ANNOTATION = re.compile(
    rf"(?<=[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])"
    rf"\((?=[^()]*[{_TONED}1-5])\s*{_SYLLABLE}(?:[\s'’]+{_SYLLABLE})*\s*\)",
    re.IGNORECASE,
)
_WHITESPACE = re.compile(r"\s+")

#: Full-width ASCII (U+FF01-U+FF5E) and the ideographic space to their ASCII forms: one character
#: for one, as NFKC maps them, so that ``１３８ １２３４ ５６７８`` reads as a phone number.
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_HAS_FULL_WIDTH = re.compile("[\uff01-\uff5e\u3000]")

#: From this many texts on, :func:`normalise_many` normalises them in parallel processes.
PARALLEL_TEXTS = 5000


@lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    """OpenCC's traditional-to-simplified converter, built on first use."""
    return opencc.OpenCC("t2s")


def normalise(text: str) -> str:
    """Return the canonical form of ``text``.

    Steps, in order: Unicode NFKC (full-width letters, digits, punctuation and the ideographic space
    become half-width), inline pinyin annotations removed (``首頁(yè)`` -> ``首頁``), Latin lower-cased,
    traditional characters converted to simplified (OpenCC ``t2s``), whitespace collapsed to single
    spaces and trimmed. The function is idempotent: ``normalise(normalise(s)) == normalise(s)``.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalise() expects a string, not {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text)
    text = _PINYIN_ANNOTATION.sub("", text)
    text = text.lower()
    text = _converter().convert(text)
    return _WHITESPACE.sub(" ", text).strip()


def normalise_many(texts: Sequence[str]) -> list[str]:
    """``[normalise(t) for t in texts]``, by a pool of forked processes (one per core) when there are many."""
    cores = fork_cores()
    if cores < 2 or len(texts) < PARALLEL_TEXTS:
        return [normalise(t) for t in texts]
    _converter()  # loaded once, before the fork
    normalised = fork_map(normalise, texts, cores=cores, chunksize=512, doing="normalising")
    return normalised if normalised is not None else [normalise(t) for t in texts]


def fold_full_width(text: str) -> str:
    """``text`` with full-width ASCII and the ideographic space as ASCII, one character for one.

    Unlike NFKC the length never changes, so a span found in the folded text holds in ``text``.
    """
    # str.translate is slow: only where there is something to fold
    return text.translate(_FULL_WIDTH) if _HAS_FULL_WIDTH.search(text) else text
