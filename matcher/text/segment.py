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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources

from matcher.config import Settings

__all__ = [
    "latin_terms",
    "latin_tokens",
    "normalise",
    "normalise_many",
    "parallelism",
    "prepare_segments",
    "script_views",
    "segment",
    "segment_blocks",
    "segmenter",
    "split_list",
    "stem",
    "stop_word_set",
    "text_blocks",
    "tokenize",
    "usable_cores",
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

#: The word segmenters, in the order they are tried: jieba-rs through its binding ``rjieba`` (native
#: code, about five times faster), then jieba itself. Both cut with jieba's dictionary, its HMM for
#: unknown words and the social-work user dictionary, and give the same words (see :func:`segmenter`).
SEGMENTERS = ("rjieba", "jieba")


def _user_words() -> list[tuple[str, int | None]]:
    """The user dictionary ``matcher/text/dict/social_work.txt``: ``(word, frequency or None)`` per line."""
    words = []
    dictionary = resources.files("matcher.text.dict").joinpath("social_work.txt")
    for line in dictionary.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#"):
            words.append((parts[0], int(parts[1]) if len(parts) > 1 else None))
    return words


@lru_cache(maxsize=1)
def _tokenizer():
    """A private jieba tokenizer with the social-work user dictionary, built on first use."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    with _tokenizer_lock:
        tokenizer.initialize()
        for word, freq in _user_words():
            tokenizer.add_word(word, freq=freq)
    return tokenizer


def _jieba_frequencies(words: Iterable[str]) -> dict[str, int]:
    """The frequencies that jieba's own dictionary (``jieba/dict.txt``) gives ``words`` (those it has)."""
    wanted = sorted(set(words), key=len, reverse=True)
    if not wanted:
        return {}
    text = resources.files("jieba").joinpath("dict.txt").read_text(encoding="utf-8")
    line = re.compile(rf"^({'|'.join(map(re.escape, wanted))}) (\d+)", re.MULTILINE)
    return {match.group(1): int(match.group(2)) for match in line.finditer(text)}


#: A word no text can hold (a private-use character: never inside one of jieba's blocks).
_PADDING_WORD = "\ue000"


@lru_cache(maxsize=1)
def _native():
    """A jieba-rs tokenizer (``rjieba``) cutting as :func:`_tokenizer` does, or None where it cannot.

    None when rjieba is not installed, when ``MATCHER_SEGMENTER=jieba``, or when a user word has no
    frequency (jieba and jieba-rs suggest one differently). jieba adds a user word's frequency to its
    dictionary total even when the word was already in its dictionary, where jieba-rs replaces the old
    frequency; the difference is added as a word no text can contain, so that both totals, and so
    both segmentations, agree.
    """
    if Settings.from_env().segmenter == "jieba":
        return None
    try:
        import rjieba
    except ImportError:
        return None
    words = _user_words()
    if any(freq is None for _, freq in words):
        logging.getLogger(__name__).warning("a user word has no frequency: segmenting with jieba, not rjieba")
        return None
    tokenizer = rjieba.Jieba()
    known = _jieba_frequencies(word for word, _ in words if tokenizer.has_word(word))
    for word, freq in words:
        tokenizer.add_word(word, freq, None)
    replaced = sum(known.values())
    if replaced:
        tokenizer.add_word(_PADDING_WORD, replaced, None)
    return tokenizer


@lru_cache(maxsize=1)
def segmenter() -> dict[str, str]:
    """The word segmenter this process uses, as a model manifest records it.

    ``{"name": "rjieba", "version": "0.2.2", "jieba": "0.42.1"}``: ``name`` is one of
    :data:`SEGMENTERS`; ``jieba`` is the version of jieba, whose dictionary both use.
    """
    from importlib import metadata

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    name = "rjieba" if _native() is not None else "jieba"
    return {"name": name, "version": version(name), "jieba": version("jieba")}


_SKIP = re.compile(r"(\r\n|\s)")
# In a block that holds Latin letters or the symbols of jieba's block pattern (``9.5``, ``a-b``), jieba
# and jieba-rs group them differently; blocks of Chinese characters and digits only are cut alike.
_NOT_NATIVE = re.compile(r"[^\u4e00-\u9fd50-9]")


def _native_cut(text: str) -> list[str]:
    """The words of jieba's ``cut(text)`` (default mode, HMM), by jieba-rs.

    jieba-rs takes a few more characters than jieba as Chinese (CJK extension A, U+9FD6 to U+9FFF,
    compatibility and supplementary ideographs), so the text is cut into jieba's own blocks first:
    jieba-rs segments each block of Chinese characters and digits, jieba the blocks that also hold
    Latin letters or symbols (which the two group differently: ``9.5``, ``a-b``), and the rest is cut
    as jieba cuts it (each whitespace, each other character alone). The texts the vectoriser segments
    (the CJK runs of a text, :func:`script_views`) hold no Latin letters or symbols.
    """
    native = _native()
    words: list[str] = []
    for number, block in enumerate(_blocks().split(text)):
        if not block:
            continue
        if number % 2:  # a match of jieba's block pattern
            if _NOT_NATIVE.search(block) is None:
                words.extend(native.cut(block, True))
            else:
                words.extend(_tokenizer().cut(block))
            continue
        for piece in _SKIP.split(block):
            if _SKIP.match(piece):
                words.append(piece)
            else:
                words.extend(piece)
    return words


def _cut(text: str) -> list[str]:
    """Every word of ``text`` as jieba cuts it (default mode with HMM), spaces and punctuation included."""
    if _native() is not None:
        return _native_cut(text)
    return list(_tokenizer().cut(text))


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    words = resources.files("matcher.text.dict").joinpath("stop_words.txt").read_text(encoding="utf-8")
    return frozenset(w for w in words.split() if not w.startswith("#"))


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Segment normalised ``text`` into ``(word, start, end)`` character spans.

    Spaces, punctuation and stop words are dropped; Latin words stay whole, so English text is
    segmented into words. The words and spans are those of jieba's ``tokenize`` with the user
    dictionary, whichever segmenter (:func:`segmenter`) cuts them.
    """
    stop = _stop_words()
    spans = []
    start = 0
    for word in _cut(text):
        end = start + len(word)
        if word not in stop and not _MEANINGLESS.match(word):
            spans.append((word, start, end))
        start = end
    return spans


#: Distinct text blocks whose words :func:`segment` remembers (per process).
SEGMENT_CACHE_SIZE = 1 << 17


@lru_cache(maxsize=1)
def _blocks() -> re.Pattern[str]:
    """jieba's own block pattern: it segments each run of these characters independently of the rest."""
    import jieba

    return jieba.re_han_default


#: Distinct new blocks from which :func:`prepare_segments` segments them in parallel processes (jieba only).
PARALLEL_BLOCKS = 4000
_SEGMENTED: dict[str, tuple[str, ...]] = {}


def _words_of_block(block: str) -> tuple[str, ...]:
    """The words of :func:`tokenize` in one of jieba's blocks."""
    native = _native()
    if native is not None and _NOT_NATIVE.search(block) is None:  # Chinese and digits: every word means something
        stop = _stop_words()
        return tuple(word for word in native.cut(block, True) if word not in stop)
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
_WORKERS: int | None = None  # the limit set by :func:`parallelism`


@contextmanager
def parallelism(workers: int | None) -> Iterator[None]:
    """Within the block, this module's pools use at most ``workers`` processes (1: none; None: one per core)."""
    global _WORKERS
    before = _WORKERS
    _WORKERS = workers
    try:
        yield
    finally:
        _WORKERS = before


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cores() -> int:
    """Cores to fork onto: 1 where fork is unsafe (no fork, or other threads that may hold locks)."""
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return 1
    cores = usable_cores()
    return cores if _WORKERS is None else max(1, min(cores, _WORKERS))


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


def _segment_in_processes(blocks: list[str]) -> list[tuple[str, ...]] | None:
    """The words of ``blocks`` from a pool of forked processes (one per core), or None where none can be had.

    Only for jieba, and only for many blocks: jieba-rs cuts faster than processes pass the words back.
    """
    cores = _cores()
    if cores < 2 or len(blocks) < PARALLEL_BLOCKS or _native() is not None:
        return None
    _tokenizer()  # loaded once, before the fork, and shared by the processes
    try:
        with multiprocessing.get_context("fork").Pool(min(cores, 4)) as pool:
            return pool.map(_words_of_block, blocks, chunksize=256)
    except (OSError, pickle.PicklingError):  # no processes to be had
        logging.getLogger(__name__).debug("segmenting in processes failed", exc_info=True)
        return None


def prepare_segments(texts: Iterable[str]) -> int:
    """Segment the distinct blocks of ``texts`` that :func:`segment` does not remember yet, in parallel.

    With jieba (not rjieba), at least :data:`PARALLEL_BLOCKS` of them and more than one core, a pool
    of forked processes (one per core) segments them and :func:`segment` remembers the words (up to
    :data:`SEGMENT_CACHE_SIZE` blocks); otherwise nothing happens and :func:`segment` segments as it
    goes. Either way :func:`segment` then returns the same words. Returns the number of blocks
    segmented here.
    """
    if _cores() < 2 or _native() is not None:
        return 0
    split = _blocks().split
    new = list({block for text in texts for block in split(text) if block and block not in _SEGMENTED})
    new = new[: max(0, SEGMENT_CACHE_SIZE - len(_SEGMENTED))]
    segmented = _segment_in_processes(new)
    if segmented is None:
        return 0
    _SEGMENTED.update(zip(new, segmented, strict=True))
    return len(new)


def text_blocks(text: str) -> list[str]:
    """The blocks jieba segments ``text`` in, each on its own: runs of Chinese characters, letters and
    digits, and what lies between them. ``segment(text)`` is the words of each block, in order."""
    return [block for block in _blocks().split(text) if block]


def segment_blocks(blocks: Sequence[str]) -> list[tuple[str, ...]]:
    """The words :func:`segment` gives each of ``blocks`` (from :func:`text_blocks`; best distinct).

    Blocks :func:`segment` remembers are not segmented again; new ones are remembered while the memory
    has room (it is not emptied here). With jieba and many new blocks they are segmented in parallel.
    """
    words: list[tuple[str, ...] | None] = [_SEGMENTED.get(block) for block in blocks]
    missing = [number for number, found in enumerate(words) if found is None]
    new = [blocks[number] for number in missing]
    segmented = _segment_in_processes(new)
    if segmented is None:
        segmented = [_words_of_block(block) for block in new]
    room = max(0, SEGMENT_CACHE_SIZE - len(_SEGMENTED))
    for number, block, found in zip(missing, new, segmented, strict=True):
        words[number] = found
        if room > 0:
            _SEGMENTED[block] = found
            room -= 1
    return words  # type: ignore[return-value]


def segment(text: str) -> list[str]:
    """Segment normalised ``text`` into words (:func:`segmenter`: jieba-rs or jieba, with the social-work
    user dictionary).

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
