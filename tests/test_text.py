"""Normalisation and segmentation of messy Chinese input."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.segmenters import data_texts
from matcher.config import SEGMENTER_ENV
from matcher.inputs.cells import split_list
from matcher.text import normalise as normalise_module
from matcher.text import processes
from matcher.text import segment as text_module
from matcher.text.normalise import normalise
from matcher.text.scripts import script_views
from matcher.text.segment import segment, segment_blocks, text_blocks, tokenize
from tests.conftest import SHARED, requires_shared


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("首頁(yè)", "首页"),
        ("導(dǎo)航", "导航"),
        ("首頁(yè) | 版面導(dǎo)航 | 標(biāo)題導(dǎo)航", "首页 | 版面导航 | 标题导航"),
        (
            "雄安新區(qū):持續(xù)推進(jìn)社會(huì)工作孵化培育體系建設(shè)",
            "雄安新区:持续推进社会工作孵化培育体系建设",
        ),
        ("社會(huì)工作服務(wù)機(jī)構(gòu)從1家增加至24家", "社会工作服务机构从1家增加至24家"),
        ("個案管理和小組工作", "个案管理和小组工作"),
        ("ＳＷＯＴ分析，ＮＧＯ２０２３", "swot分析,ngo2023"),
        ("全角\u3000空格\t和\n换行   ", "全角 空格 和 换行"),
        ("社会组织(NGO)与(SWOT)", "社会组织(ngo)与(swot)"),  # bracketed Latin that is not pinyin stays
        ("行(xing2)为", "行为"),  # tone-number pinyin annotation
        ("Case Management", "case management"),
        ("", ""),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_normalise_is_idempotent() -> None:
    text = "容城縣容善社工服務(wù)中心成立於2020年5月，是較早一批成立的社會(huì)工作服務(wù)機(jī)構(gòu)之一。"
    once = normalise(text)
    assert normalise(once) == once
    assert once == "容城县容善社工服务中心成立于2020年5月,是较早一批成立的社会工作服务机构之一。"


def test_normalise_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="expects a string"):
        normalise(None)  # type: ignore[arg-type]


@requires_shared("seed/xiongan-incubation-base-article.txt")
def test_seed_article_loses_every_pinyin_annotation() -> None:
    article = (SHARED / "seed/xiongan-incubation-base-article.txt").read_text(encoding="utf-8")
    text = normalise(article)
    assert "(yè)" not in text and "(huì)" not in text
    assert "雄安新区:持续推进社会工作孵化培育体系建设" in text
    assert "个案管理" in text and "小组工作实务工作坊" in text
    assert "《河北雄安新区社会工作服务站建设和运营手册(民政部门参考版)" in text  # real brackets kept


def test_segment_keeps_domain_terms_whole() -> None:
    words = segment(normalise("社工站開展個案管理與小組工作，服務征遷安置居民"))
    for term in ("社工站", "个案管理", "小组工作", "征迁安置"):
        assert term in words
    assert "," not in words and "与" not in words  # punctuation and stop words dropped


def test_segment_english_into_words() -> None:
    assert segment(normalise("Case management and group work, for elderly care.")) == [
        "case",
        "management",
        "group",
        "work",
        "elderly",
        "care",
    ]


@pytest.mark.parametrize(
    "raw",
    [
        "社工站開展個案管理與小組工作，服務征遷安置居民。社工站開展個案管理與小組工作",
        "我们机构刚成立,分不清个案工作和个案管理 ,想请专家指导转介流程!!",
        "Case management and group work, for elderly care.  老年人 照护 2024年12月",
        "雄县 容城县、安新县；社会组织(NGO)与(SWOT)分析 c++ 3.5% a-b_c",
        "  ",
        "",
    ],
)
def test_segment_by_remembered_blocks_equals_tokenize(raw: str) -> None:
    text = normalise(raw)
    expected = [word for word, _, _ in tokenize(text)]
    assert segment(text) == expected
    assert segment(text) == expected  # the second time from the remembered blocks


def test_tokenize_spans_index_the_text() -> None:
    text = normalise("我们想学习个案管理")
    for word, start, end in tokenize(text):
        assert text[start:end] == word


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("个案管理;小组工作", ["个案管理", "小组工作"]),
        ("个案管理；小组工作", ["个案管理", "小组工作"]),
        ("个案管理、 小组工作 ", ["个案管理", "小组工作"]),
        ("", []),
        (None, []),
        (["a", " ", "b"], ["a", "b"]),
    ],
)
def test_split_list(cell, expected) -> None:
    assert split_list(cell) == expected


def test_prepare_segments_in_processes_gives_the_same_words() -> None:
    """Run in a fresh interpreter: a pool is forked only where no other thread runs (earlier tests start some)."""
    if processes.usable_cores() < 2:
        pytest.skip("one core here: no pool to test")
    code = """
from matcher.text import segment as text_module
from matcher.text.normalise import normalise
texts = [normalise(f"第{i}家社工机构想做个案管理,小组工作第{i}期;Case {i} management") for i in range(40)]
expected = [[word for word, _, _ in text_module.tokenize(t)] for t in texts]
text_module._native = lambda: None  # the pool is for jieba only
text_module.PARALLEL_BLOCKS = 1
text_module.SEGMENT_MEMORY = memory = text_module.SegmentMemory(text_module.SEGMENT_CACHE_SIZE)
done = text_module.prepare_segments(texts)
assert len(memory) == done > 40, (len(memory), done)  # a pool segmented them and the memory holds their words
assert [text_module.segment(t) for t in texts] == expected
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_the_segment_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = text_module.SegmentMemory(3)
    monkeypatch.setattr(text_module, "SEGMENT_MEMORY", memory)
    text = normalise("个案管理 小组工作 社区服务 督导")
    words = segment(text)
    assert 0 < len(memory) <= 3 and words == [w for w, _, _ in tokenize(text)]
    assert segment(text) == words
    assert memory.room() == 3 - len(memory)
    memory.clear()
    assert len(memory) == 0 and memory.room() == 3 and segment(text) == words


def test_normalise_many_in_processes_equals_normalise(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = ["首頁(yè)", "ＳＷＯＴ分析，ＮＧＯ２０２３", "個案管理和小組工作", "", "全角\u3000空格"] * 10
    monkeypatch.setattr(normalise_module, "PARALLEL_TEXTS", 1)
    assert normalise_module.normalise_many(raw) == [normalise(t) for t in raw]


def test_no_processes_are_forked_while_other_threads_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread could hold a lock at the fork (jieba's, logging's) and hang the child: segment in-process."""
    import threading

    texts = [normalise(f"第{i}期督导小组,社区{i}号") for i in range(30)]
    monkeypatch.setattr(text_module, "PARALLEL_BLOCKS", 1)
    monkeypatch.setattr(normalise_module, "PARALLEL_TEXTS", 1)
    monkeypatch.setattr(text_module, "SEGMENT_MEMORY", text_module.SegmentMemory(text_module.SEGMENT_CACHE_SIZE))
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert processes.fork_cores() == 1
        assert text_module.prepare_segments(texts) == 0
        assert normalise_module.normalise_many(texts) == [normalise(t) for t in texts]
    finally:
        release.set()
        other.join()
    assert [segment(t) for t in texts] == [[word for word, _, _ in tokenize(t)] for t in texts]


# ------------------------------------------------------------------ the native segmenter
def _jieba_words(text: str) -> list[tuple[str, int, int]]:
    """jieba's own ``tokenize`` with the user dictionary, filtered as :func:`tokenize` filters."""
    stop = text_module._stop_words()
    return [
        (w, s, e) for w, s, e in text_module._tokenizer().tokenize(text) if w not in stop and not text_module._MEANINGLESS.match(w)
    ]


def _random_texts(n: int, seed: int = 0) -> list[str]:
    """Chinese characters with digits, Latin letters, jieba's block symbols, punctuation, whitespace, and
    the characters jieba-rs counts as Chinese where jieba does not (extension A, U+9FD6-, compatibility,
    supplementary), kana and Hangul."""
    rng = random.Random(seed)
    common = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果社工个案管理小组督导服务站孵化基地征迁安置"
    rare = "㐀㐁㑇鿖鿗鿿豈更丽𠀀𠀁ぁアㄱ한ä"
    other = "abcXYZ019 +#&._%-，。、；：！？（）()·—“”‘’\n\t\r\u3000"
    pools = [common] * 10 + [rare, other, other]
    return ["".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 80))) for _ in range(n)]


requires_native = pytest.mark.skipif(text_module._native() is None, reason="rjieba is not installed here")


@requires_native
@pytest.mark.parametrize("source", ["libraries", "random"])
def test_native_segmenter_cuts_as_jieba(source: str) -> None:
    texts = data_texts() if source == "libraries" else _random_texts(3000)
    assert len(texts) > 1000
    views = [normalise(t) for t in texts]
    views += [script_views(v)[0] for v in views]  # what the vectoriser segments
    for view in texts + views:
        expected = _jieba_words(view)
        assert tokenize(view) == expected, view
        assert segment(view) == [w for w, _, _ in expected], view
    blocks = list(dict.fromkeys(b for v in views for b in text_blocks(v)))
    assert segment_blocks(blocks) == [tuple(w for w, _, _ in _jieba_words(b)) for b in blocks]


@requires_shared("bench/perf/gen.py")
@requires_native
def test_native_segmenter_cuts_the_perf_corpus_as_jieba(tmp_path: Path) -> None:
    generate = [sys.executable, str(SHARED / "bench/perf/gen.py"), "small", "--out", str(tmp_path)]
    subprocess.run(generate, check=True, capture_output=True, timeout=300)
    texts = []
    for name in ("experts.txt", "needs.txt"):
        texts += (tmp_path / "small" / name).read_text(encoding="utf-8").splitlines()
    blocks = list(dict.fromkeys(b for t in texts for v in (normalise(t),) for b in text_blocks(script_views(v)[0])))
    assert len(blocks) > 10_000
    assert [text_module._native_cut(b) for b in blocks] == [list(text_module._tokenizer().cut(b)) for b in blocks]


def test_segmenter_can_be_forced_to_jieba(monkeypatch: pytest.MonkeyPatch) -> None:
    text = normalise("社工站開展個案管理與小組工作，服務征遷安置居民 2023年")
    words = segment(text)
    monkeypatch.setenv(SEGMENTER_ENV, "jieba")
    text_module._native.cache_clear()
    text_module.segmenter.cache_clear()
    try:
        assert text_module.segmenter()["name"] == "jieba"
        assert text_module.segmenter()["version"] == text_module.segmenter()["jieba"] != "not installed"
        assert tokenize(text) == _jieba_words(text) and [w for w, _, _ in tokenize(text)] == words
    finally:
        monkeypatch.delenv(SEGMENTER_ENV)
        text_module._native.cache_clear()
        text_module.segmenter.cache_clear()
    assert text_module.segmenter()["name"] in text_module.SEGMENTERS


def test_every_user_word_has_a_frequency() -> None:
    # rjieba is used only where every user word has one (jieba and jieba-rs suggest missing ones differently)
    words = text_module._user_words()
    assert words and all(freq is not None and freq > 0 for _, freq in words)
    assert len({w for w, _ in words}) == len(words)


def test_parallelism_bounds_the_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(normalise_module, "PARALLEL_TEXTS", 4)
    texts = ["個案管理與小組工作", "ＳＷＯＴ分析", "全角\u3000空格", "社會工作", "首頁(yè)"] * 3
    with processes.parallelism(1):
        assert processes.fork_cores() == 1
        serial = normalise_module.normalise_many(texts)
    with processes.parallelism(None):
        assert processes.fork_cores() == min(processes.usable_cores(), processes.fork_cores())
        assert normalise_module.normalise_many(texts) == serial == [normalise(t) for t in texts]
