"""Text normalisation and Chinese word segmentation.

Everything that turns raw, messy input text into the canonical form the model sees lives here:
``normalise`` (one string in, one string out) and ``segment`` (one normalised string in, words out).
Both are module-level functions so that estimators holding them can be pickled.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources

__all__ = [
    "latin_terms",
    "latin_tokens",
    "normalise",
    "normalise_many",
    "prepare_segments",
    "script_views",
    "segment",
    "split_list",
    "stem",
    "stop_word_set",
    "tokenize",
]

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
# Tokens that are only punctuation, symbols or spaces carry no meaning for matching.
_MEANINGLESS = re.compile(r"^[\W_]+$")


@lru_cache(maxsize=1)
def _converter():
    import opencc

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


_tokenizer_lock = threading.Lock()


@lru_cache(maxsize=1)
def _tokenizer():
    """A private jieba tokenizer with the social-work user dictionary, built on first use."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    with _tokenizer_lock:
        tokenizer.initialize()
        dictionary = resources.files("matcher.dict").joinpath("social_work.txt")
        with dictionary.open("r", encoding="utf-8") as handle:
            for line in handle:
                parts = line.split()
                if parts and not parts[0].startswith("#"):
                    freq = int(parts[1]) if len(parts) > 1 else None
                    tokenizer.add_word(parts[0], freq=freq)
    return tokenizer


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    words = resources.files("matcher.dict").joinpath("stop_words.txt").read_text(encoding="utf-8")
    return frozenset(w for w in words.split() if not w.startswith("#"))


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Segment normalised ``text`` into ``(word, start, end)`` character spans.

    Spaces, punctuation and stop words are dropped; Latin words stay whole, so English text is
    segmented into words.
    """
    stop = _stop_words()
    return [
        (word, start, end)
        for word, start, end in _tokenizer().tokenize(text)
        if word not in stop and not _MEANINGLESS.match(word)
    ]


#: Distinct text blocks whose words :func:`segment` remembers (per process).
SEGMENT_CACHE_SIZE = 1 << 17


@lru_cache(maxsize=1)
def _blocks() -> re.Pattern[str]:
    """jieba's own block pattern: it segments each run of these characters independently of the rest."""
    import jieba

    return jieba.re_han_default


#: Distinct new blocks from which :func:`prepare_segments` segments them in parallel processes.
PARALLEL_BLOCKS = 4000
_SEGMENTED: dict[str, tuple[str, ...]] = {}


def _words_of_block(block: str) -> tuple[str, ...]:
    return tuple(word for word, _, _ in tokenize(block))


def _remember(block: str, words: tuple[str, ...]) -> None:
    if len(_SEGMENTED) >= SEGMENT_CACHE_SIZE:  # full: start again rather than grow without bound
        _SEGMENTED.clear()
    _SEGMENTED[block] = words


def _segment_block(block: str) -> tuple[str, ...]:
    words = _SEGMENTED.get(block)
    if words is None:
        words = _words_of_block(block)
        _remember(block, words)
    return words


#: From this many texts on, :func:`normalise_many` normalises them in parallel processes.
PARALLEL_TEXTS = 5000


def _cores() -> int:
    """Cores to fork onto: 1 where fork is unsafe (no fork, or other threads that may hold locks)."""
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def normalise_many(texts: Sequence[str]) -> list[str]:
    """``[normalise(t) for t in texts]``, by a pool of forked processes (one per core) when there are many."""
    cores = _cores()
    if cores < 2 or len(texts) < PARALLEL_TEXTS:
        return [normalise(t) for t in texts]
    _converter()  # loaded once, before the fork
    try:
        with multiprocessing.get_context("fork").Pool(min(cores, 4)) as pool:
            return pool.map(normalise, texts, chunksize=512)
    except (OSError, pickle.PicklingError):  # no processes to be had
        logging.getLogger(__name__).debug("normalising in processes failed", exc_info=True)
        return [normalise(t) for t in texts]


def prepare_segments(texts: Iterable[str]) -> int:
    """Segment the distinct blocks of ``texts`` that :func:`segment` does not remember yet, in parallel.

    With at least :data:`PARALLEL_BLOCKS` of them and more than one core, a pool of forked processes
    (one per core) segments them and :func:`segment` remembers the words (up to
    :data:`SEGMENT_CACHE_SIZE` blocks); otherwise nothing happens and :func:`segment` segments as it
    goes. Either way :func:`segment` then returns the same words. Returns the number of blocks
    segmented here.
    """
    cores = _cores()
    if cores < 2:
        return 0
    split = _blocks().split
    new = list({block for text in texts for block in split(text) if block and block not in _SEGMENTED})
    if len(new) < PARALLEL_BLOCKS:
        return 0
    _tokenizer()  # loaded once, before the fork, and shared by the processes
    new = new[: max(0, SEGMENT_CACHE_SIZE - len(_SEGMENTED))]
    try:
        with multiprocessing.get_context("fork").Pool(min(cores, 4)) as pool:
            segmented = pool.map(_words_of_block, new, chunksize=256)
    except (OSError, pickle.PicklingError):  # no processes to be had: segment() does it as it goes
        logging.getLogger(__name__).debug("segmenting in processes failed", exc_info=True)
        return 0
    _SEGMENTED.update(zip(new, segmented, strict=True))
    return len(new)


def segment(text: str) -> list[str]:
    """Segment normalised ``text`` into words (jieba, with the social-work user dictionary).

    jieba cuts a text into blocks (runs of Chinese characters, letters and digits, and what lies
    between them) and segments each block on its own, so the words of a block are remembered
    (up to :data:`SEGMENT_CACHE_SIZE` blocks): phrases that recur across
    profiles and needs are segmented once (the memory is emptied when full). The words are exactly
    those of :func:`tokenize`.
    """
    words: list[str] = []
    for block in _blocks().split(text):
        if block:
            words.extend(_segment_block(block))
    return words


# ---------------------------------------------------------------------------------- scripts
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
    words = resources.files("matcher.dict").joinpath("stop_words_en.txt").read_text(encoding="utf-8")
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
def _stemmer(language: str):
    import Stemmer

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


_LIST_SEPARATORS = re.compile(r"[;；、]")


def split_list(value: object) -> list[str]:
    """Split a list cell (``a;b``, ``a；b``, ``a、b``) or take a list as is; blanks dropped."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        text = str(value)
        if not text or text.lower() == "nan":
            return []
        items = _LIST_SEPARATORS.split(text)
    return [item.strip() for item in items if item and item.strip()]
