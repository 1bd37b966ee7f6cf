"""Chinese word segmentation: one normalised string in, its words out (jieba's, cut by jieba-rs where it can).

``segment`` is what the vectoriser's word block counts and ``tokenize`` gives the same words with their
character spans. Both cut with jieba's dictionary, its HMM for unknown words and the social-work user
dictionary (``matcher/text/dict/social_work.txt``), spaces, punctuation and stop words dropped.
jieba cuts a text into blocks and segments each block on its own, so the words of each block are
remembered (:data:`SEGMENT_MEMORY`) and large inputs may be segmented in forked processes
(:func:`prepare_segments`). ``segment`` is a module-level function so that estimators holding it can be
pickled.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import metadata, resources

import jieba

from matcher.config import Settings
from matcher.text.processes import fork_cores, fork_map

try:
    import rjieba
except ImportError:  # no wheel for this platform: jieba alone
    rjieba = None

__all__ = [
    "PARALLEL_BLOCKS",
    "SEGMENTERS",
    "SEGMENT_CACHE_SIZE",
    "SEGMENT_MEMORY",
    "SegmentMemory",
    "prepare_segments",
    "segment",
    "segment_blocks",
    "segmenter",
    "text_blocks",
    "tokenize",
]

logger = logging.getLogger(__name__)

#: The word segmenters, in the order they are tried: jieba-rs through its binding ``rjieba`` (native
#: code, about five times faster), then jieba itself. Both cut with jieba's dictionary, its HMM for
#: unknown words and the social-work user dictionary, and give the same words (see :func:`segmenter`).
SEGMENTERS = ("rjieba", "jieba")
#: Distinct text blocks whose words :func:`segment` remembers (per process).
SEGMENT_CACHE_SIZE = 1 << 17
#: Distinct new blocks from which :func:`prepare_segments` segments them in parallel processes (jieba only).
PARALLEL_BLOCKS = 4000

# Tokens that are only punctuation, symbols or spaces carry no meaning for matching.
_MEANINGLESS = re.compile(r"^[\W_]+$")
#: jieba's own block pattern: it segments each run of these characters independently of the rest.
_BLOCKS: re.Pattern[str] = jieba.re_han_default
_SKIP = re.compile(r"(\r\n|\s)")
# In a block that holds Latin letters or the symbols of jieba's block pattern (``9.5``, ``a-b``), jieba
# and jieba-rs group them differently; blocks of Chinese characters and digits only are cut alike.
_NOT_NATIVE = re.compile(r"[^\u4e00-\u9fd50-9]")
#: A word no text can hold (a private-use character: never inside one of jieba's blocks).
_PADDING_WORD = "\ue000"

_tokenizer_lock = threading.Lock()


class SegmentMemory(dict[str, tuple[str, ...]]):
    """The words of the text blocks segmented in this process: block -> words, at most ``limit`` blocks.

    A dict (so that looking a block up costs what a dict lookup costs), owned by this module as
    :data:`SEGMENT_MEMORY` on purpose: pools forked to segment or to count inherit it, copy-on-write,
    without pickling it. :meth:`remember` empties it when it is full rather than let it grow without
    bound; :meth:`room` says how many blocks may still be added without emptying it. ``clear()``
    forgets everything (the words are a pure function of the block, so forgetting never changes them).
    """

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def room(self) -> int:
        """How many more blocks fit before the memory is full."""
        return max(0, self.limit - len(self))

    def remember(self, block: str, words: tuple[str, ...]) -> None:
        """Remember the ``words`` of ``block``, emptying the memory first when it is full (limit 0: remember nothing)."""
        if len(self) >= self.limit:  # full: start again rather than grow without bound
            self.clear()
            if self.limit <= 0:
                return
        self[block] = words


#: The words of every block :func:`segment` has cut in this process (and its forked children).
SEGMENT_MEMORY = SegmentMemory(SEGMENT_CACHE_SIZE)


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
def _tokenizer() -> jieba.Tokenizer:
    """A private jieba tokenizer with the social-work user dictionary, built on first use."""
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


@lru_cache(maxsize=1)
def _native():
    """A jieba-rs tokenizer (``rjieba``) cutting as :func:`_tokenizer` does, or None where it cannot.

    None when rjieba is not installed, when ``MATCHER_SEGMENTER=jieba``, or when a user word has no
    frequency (jieba and jieba-rs suggest one differently). jieba adds a user word's frequency to its
    dictionary total even when the word was already in its dictionary, where jieba-rs replaces the old
    frequency; the difference is added as a word no text can contain, so that both totals, and so
    both segmentations, agree.
    """
    if Settings.from_env().segmenter == "jieba" or rjieba is None:
        return None
    words = _user_words()
    if any(freq is None for _, freq in words):
        logger.warning("a user word has no frequency: segmenting with jieba, not rjieba")
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

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    name = "rjieba" if _native() is not None else "jieba"
    return {"name": name, "version": version(name), "jieba": version("jieba")}


def _native_cut(text: str) -> list[str]:
    """The words of jieba's ``cut(text)`` (default mode, HMM), by jieba-rs.

    jieba-rs takes a few more characters than jieba as Chinese (CJK extension A, U+9FD6 to U+9FFF,
    compatibility and supplementary ideographs), so the text is cut into jieba's own blocks first:
    jieba-rs segments each block of Chinese characters and digits, jieba the blocks that also hold
    Latin letters or symbols (which the two group differently: ``9.5``, ``a-b``), and the rest is cut
    as jieba cuts it (each whitespace, each other character alone). The texts the vectoriser segments
    (the CJK runs of a text, :func:`matcher.text.scripts.script_views`) hold no Latin letters or symbols.
    """
    native = _native()
    words: list[str] = []
    for number, block in enumerate(_BLOCKS.split(text)):
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
    """The Chinese stop words (``matcher/text/dict/stop_words.txt``) that segmentation drops."""
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


def _words_of_block(block: str) -> tuple[str, ...]:
    """The words of :func:`tokenize` in one of jieba's blocks."""
    native = _native()
    if native is not None and _NOT_NATIVE.search(block) is None:  # Chinese and digits: every word means something
        stop = _stop_words()
        return tuple(word for word in native.cut(block, True) if word not in stop)
    return tuple(word for word, _, _ in tokenize(block))


def _segment_block(block: str) -> tuple[str, ...]:
    words = SEGMENT_MEMORY.get(block)
    if words is None:
        words = _words_of_block(block)
        SEGMENT_MEMORY.remember(block, words)
    return words


def _segment_in_processes(blocks: list[str]) -> list[tuple[str, ...]] | None:
    """The words of ``blocks`` from a pool of forked processes (one per core), or None where none can be had.

    Only for jieba, and only for many blocks: jieba-rs cuts faster than processes pass the words back.
    """
    cores = fork_cores()
    if cores < 2 or len(blocks) < PARALLEL_BLOCKS or _native() is not None:
        return None
    _tokenizer()  # loaded once, before the fork, and shared by the processes
    return fork_map(_words_of_block, blocks, cores=cores, chunksize=256, doing="segmenting")


def prepare_segments(texts: Iterable[str]) -> int:
    """Segment the distinct blocks of ``texts`` that :func:`segment` does not remember yet, in parallel.

    With jieba (not rjieba), at least :data:`PARALLEL_BLOCKS` of them and more than one core, a pool
    of forked processes (one per core) segments them and :func:`segment` remembers the words (while
    :data:`SEGMENT_MEMORY` has room); otherwise nothing happens and :func:`segment` segments as it
    goes. Either way :func:`segment` then returns the same words. Returns the number of blocks
    segmented here.
    """
    if fork_cores() < 2 or _native() is not None:
        return 0
    split = _BLOCKS.split
    new = list({block for text in texts for block in split(text) if block and block not in SEGMENT_MEMORY})
    new = new[: SEGMENT_MEMORY.room()]
    segmented = _segment_in_processes(new)
    if segmented is None:
        return 0
    SEGMENT_MEMORY.update(zip(new, segmented, strict=True))
    return len(new)


def text_blocks(text: str) -> list[str]:
    """The blocks jieba segments ``text`` in, each on its own: runs of Chinese characters, letters and
    digits, and what lies between them. ``segment(text)`` is the words of each block, in order."""
    return [block for block in _BLOCKS.split(text) if block]


def segment_blocks(blocks: Sequence[str]) -> list[tuple[str, ...]]:
    """The words :func:`segment` gives each of ``blocks`` (from :func:`text_blocks`; best distinct).

    Blocks :func:`segment` remembers are not segmented again; new ones are remembered while the memory
    has room (it is not emptied here). With jieba and many new blocks they are segmented in parallel.
    """
    words: list[tuple[str, ...] | None] = [SEGMENT_MEMORY.get(block) for block in blocks]
    missing = [number for number, found in enumerate(words) if found is None]
    new = [blocks[number] for number in missing]
    segmented = _segment_in_processes(new)
    if segmented is None:
        segmented = [_words_of_block(block) for block in new]
    room = SEGMENT_MEMORY.room()
    for number, block, found in zip(missing, new, segmented, strict=True):
        words[number] = found
        if room > 0:
            SEGMENT_MEMORY[block] = found
            room -= 1
    return words  # type: ignore[return-value]


def segment(text: str) -> list[str]:
    """Segment normalised ``text`` into words (:func:`segmenter`: jieba-rs or jieba, with the social-work
    user dictionary).

    jieba cuts a text into blocks (runs of Chinese characters, letters and digits, and what lies
    between them) and segments each block on its own, so the words of a block are remembered
    (:data:`SEGMENT_MEMORY`, up to :data:`SEGMENT_CACHE_SIZE` blocks): phrases that recur across
    profiles and needs are segmented once (the memory is emptied when full). The words are exactly
    those of :func:`tokenize`.
    """
    words: list[str] = []
    for block in _BLOCKS.split(text):
        if block:
            words.extend(_segment_block(block))
    return words
