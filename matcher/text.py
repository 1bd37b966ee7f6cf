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

__all__ = ["normalise", "normalise_many", "prepare_segments", "segment", "split_list", "tokenize"]

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
